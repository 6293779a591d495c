//! The file-system operations the log needs, as a trait, so the same log code runs on
//! the real disk ([`RealFs`]) and on the simulated disk of the deterministic simulation
//! ([`crate::SimFs`]). The trait is deliberately small: positioned writes, `fdatasync`,
//! truncation, whole-file reads (recovery), rename, remove, and a directory fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    File,
    Directory,
}

/// A file system the log can live on.
pub trait FileSystem: Send + Sync + 'static {
    /// An open file.
    type File: FileHandle;

    /// What is at `path` (symlinks followed).
    fn kind(&self, path: &Path) -> io::Result<PathKind>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of a directory (not paths), in any order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a file, or empties an existing one, for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames a file, replacing any file at `to` (atomic on a POSIX file system).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Fails if files cannot be created in `dir` (a read-only mount, no permission).
    fn check_writable(&self, dir: &Path) -> io::Result<()>;
}

/// An open file of a [`FileSystem`].
pub trait FileHandle: Send + 'static {
    /// Writes all of `buf` at `offset`. On error part of it may have been written.
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync`: the data and the metadata needed to read it back are durable.
    fn sync_data(&mut self) -> io::Result<()>;
    /// `fsync`: data and all metadata durable.
    fn sync_all(&mut self) -> io::Result<()>;
    /// Cuts (or extends with zeros) the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// The file's length in bytes.
    fn size(&self) -> io::Result<u64>;
}

/// The real file system, through `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

/// A file of the real file system.
#[derive(Debug)]
pub struct RealFile {
    file: File,
}

/// The name of the file [`RealFs::check_writable`] creates and removes.
const PROBE_NAME: &str = ".paxoskv-write-probe";

impl FileSystem for RealFs {
    type File = RealFile;

    fn kind(&self, path: &Path) -> io::Result<PathKind> {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Ok(PathKind::Directory),
            Ok(_) => Ok(PathKind::File),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(PathKind::Missing),
            Err(err) => Err(err),
        }
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            // A name that is not UTF-8 is not one of ours; skipping it is safe.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<RealFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(RealFile { file })
    }

    fn open(&self, path: &Path) -> io::Result<RealFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(RealFile { file })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn check_writable(&self, dir: &Path) -> io::Result<()> {
        // Permission bits say little (root ignores them) and nothing about a read-only
        // mount: really create, write and remove a file.
        let probe: PathBuf = dir.join(PROBE_NAME);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)?;
        let written = file.write_all(b"probe");
        drop(file);
        let removed = fs::remove_file(&probe);
        written?;
        removed
    }
}

impl FileHandle for RealFile {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}
