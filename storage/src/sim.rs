//! A simulated disk for the deterministic simulation. It keeps, for every file, what was
//! written and what was made durable, separately, and likewise for directory entries;
//! [`SimFs::crash`] throws away everything not made durable (and, if asked, keeps a
//! random prefix of the unsynced bytes: a torn write). Faults are injected on demand:
//! write errors, fsync errors, a full disk, a read-only disk. All randomness comes from
//! the seed, so a run replays exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fs::{FileHandle, FileSystem, PathKind};

/// What the simulated disk did, for tests to check that a fault really happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimCounters {
    pub writes: u64,
    pub file_syncs: u64,
    pub dir_syncs: u64,
    pub crashes: u64,
    /// Unsynced bytes thrown away by crashes.
    pub bytes_lost: u64,
    /// Crashes that kept part of the unsynced bytes of a file.
    pub torn_writes: u64,
    pub injected_write_errors: u64,
    pub injected_sync_errors: u64,
    pub disk_full_errors: u64,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug)]
struct Disk {
    rng: ChaCha8Rng,
    /// Bumped by every crash: handles opened before it fail from then on.
    generation: u64,
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    capacity: Option<u64>,
    failing_writes: u32,
    failing_syncs: u32,
    read_only: bool,
    tear_on_crash: bool,
    /// Mutating operations so far, and after how many the power goes (then every
    /// operation fails until [`SimFs::crash`]).
    operations: u64,
    power_cut_after: Option<u64>,
    powered_off: bool,
    counters: SimCounters,
}

/// A simulated disk (one per simulated node). Clones share the disk.
#[derive(Debug, Clone)]
pub struct SimFs {
    disk: Arc<Mutex<Disk>>,
}

/// A file on a [`SimFs`].
#[derive(Debug)]
pub struct SimFile {
    disk: Arc<Mutex<Disk>>,
    inode: u64,
    generation: u64,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::ReadOnlyFilesystem,
        "read-only file system (simulated)",
    )
}

impl SimFs {
    /// An empty disk whose random choices (torn-write lengths) come from `seed`.
    pub fn new(seed: u64) -> SimFs {
        let mut dirs = BTreeSet::new();
        dirs.insert(PathBuf::from("/"));
        SimFs {
            disk: Arc::new(Mutex::new(Disk {
                rng: ChaCha8Rng::seed_from_u64(seed),
                generation: 0,
                dirs,
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                inodes: HashMap::new(),
                next_inode: 1,
                capacity: None,
                failing_writes: 0,
                failing_syncs: 0,
                read_only: false,
                tear_on_crash: false,
                operations: 0,
                power_cut_after: None,
                powered_off: false,
                counters: SimCounters::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node crashes: unsynced data and directory changes are lost. With
    /// [`SimFs::set_tear_on_crash`], a file with unsynced appended bytes may keep a
    /// random prefix of them. Files opened before the crash cannot be used after it.
    pub fn crash(&self) {
        let mut disk = self.lock();
        let disk = &mut *disk;
        disk.generation += 1;
        disk.counters.crashes += 1;
        disk.power_cut_after = None;
        disk.powered_off = false;
        disk.names = disk.durable_names.clone();
        let live: BTreeSet<u64> = disk.names.values().copied().collect();
        disk.inodes.retain(|id, _| live.contains(id));
        let mut ids: Vec<u64> = disk.inodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let inode = disk.inodes.get_mut(&id).expect("listed");
            if inode.data == inode.durable {
                continue;
            }
            let appended =
                inode.data.len() > inode.durable.len() && inode.data.starts_with(&inode.durable);
            let lost = inode.data.len().abs_diff(inode.durable.len()).max(1) as u64;
            if disk.tear_on_crash && appended && disk.rng.random_bool(0.5) {
                let extra = inode.data.len() - inode.durable.len();
                let keep = disk.rng.random_range(0..extra);
                let mut torn = inode.durable.clone();
                torn.extend_from_slice(&inode.data[inode.durable.len()..][..keep]);
                inode.data = torn;
                disk.counters.torn_writes += 1;
                disk.counters.bytes_lost += (extra - keep) as u64;
            } else {
                inode.data = inode.durable.clone();
                disk.counters.bytes_lost += lost;
            }
            inode.durable = inode.data.clone();
        }
    }

    /// The power goes after `operations` more mutating operations (writes, syncs,
    /// truncations, creations, renames, removals): from then on every operation fails,
    /// as the machine is off, until [`SimFs::crash`] restarts it. Lets a test stop a
    /// node between any two steps of the write order.
    pub fn power_cut_after(&self, operations: u64) {
        let mut disk = self.lock();
        disk.power_cut_after = Some(disk.operations + operations);
    }

    /// Mutating operations done so far (to size a [`SimFs::power_cut_after`] sweep).
    pub fn operations(&self) -> u64 {
        self.lock().operations
    }

    /// After a crash, keep a random prefix of unsynced appends (half the time).
    pub fn set_tear_on_crash(&self, tear: bool) {
        self.lock().tear_on_crash = tear;
    }

    /// The next `count` writes fail with an I/O error, after writing half their bytes.
    pub fn fail_writes(&self, count: u32) {
        self.lock().failing_writes = count;
    }

    /// The next `count` fsyncs (file or directory) fail.
    pub fn fail_syncs(&self, count: u32) {
        self.lock().failing_syncs = count;
    }

    /// The disk holds at most `bytes` of file data; a write beyond fails with "no space"
    /// after writing what fits. `None`: unlimited.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Bytes of file data on the disk now (what counts against the capacity).
    pub fn used_bytes(&self) -> u64 {
        self.lock()
            .inodes
            .values()
            .map(|i| i.data.len() as u64)
            .sum()
    }

    /// Every write, create, rename and remove fails as on a read-only mount.
    pub fn set_read_only(&self, read_only: bool) {
        self.lock().read_only = read_only;
    }

    /// What the disk did so far.
    pub fn counters(&self) -> SimCounters {
        self.lock().counters.clone()
    }

    /// Direct access for tests: the current content of a file.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.lock();
        let id = disk.names.get(path)?;
        Some(disk.inodes[id].data.clone())
    }

    /// Direct access for tests: replaces a file's content, durably (a bit flip on the
    /// platter, say).
    pub fn overwrite_file(&self, path: &Path, bytes: Vec<u8>) {
        let mut disk = self.lock();
        let id = disk.names[path];
        let inode = disk.inodes.get_mut(&id).expect("named inode");
        inode.data = bytes.clone();
        inode.durable = bytes;
    }
}

impl Disk {
    /// Counts one mutating operation, failing it if the power is (or just went) off.
    fn mutate(&mut self) -> io::Result<()> {
        if self
            .power_cut_after
            .is_some_and(|limit| self.operations >= limit)
        {
            self.powered_off = true;
        }
        if self.powered_off {
            return Err(io::Error::other("power cut (simulated)"));
        }
        self.operations += 1;
        Ok(())
    }

    /// Drops inodes no name (current or durable) refers to any more.
    fn collect_garbage(&mut self) {
        let live: BTreeSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        self.inodes.retain(|id, _| live.contains(id));
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) if self.dirs.contains(parent) => Ok(()),
            _ => Err(not_found(path)),
        }
    }
}

impl FileSystem for SimFs {
    type File = SimFile;

    fn kind(&self, path: &Path) -> io::Result<PathKind> {
        let disk = self.lock();
        Ok(if disk.dirs.contains(path) {
            PathKind::Directory
        } else if disk.names.contains_key(path) {
            PathKind::File
        } else {
            PathKind::Missing
        })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        if disk.read_only {
            return Err(read_only());
        }
        disk.mutate()?;
        // Directories are durable at once: the log never depends on a new directory
        // surviving a crash before its first file is synced.
        for ancestor in path.ancestors() {
            if disk.names.contains_key(ancestor) {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is a file", ancestor.display()),
                ));
            }
            disk.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.lock();
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(disk
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(String::from))
            .collect())
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut disk = self.lock();
        if disk.read_only {
            return Err(read_only());
        }
        disk.mutate()?;
        disk.check_parent(path)?;
        let id = match disk.names.get(path) {
            Some(&id) => {
                disk.inodes.get_mut(&id).expect("named inode").data.clear();
                id
            }
            None => {
                let id = disk.next_inode;
                disk.next_inode += 1;
                disk.inodes.insert(id, Inode::default());
                disk.names.insert(path.to_path_buf(), id);
                id
            }
        };
        Ok(SimFile {
            disk: Arc::clone(&self.disk),
            inode: id,
            generation: disk.generation,
        })
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let disk = self.lock();
        if disk.read_only {
            return Err(read_only());
        }
        let id = *disk.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(SimFile {
            disk: Arc::clone(&self.disk),
            inode: id,
            generation: disk.generation,
        })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.file_bytes(path).ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        if disk.read_only {
            return Err(read_only());
        }
        disk.mutate()?;
        disk.check_parent(to)?;
        let id = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        disk.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        if disk.read_only {
            return Err(read_only());
        }
        disk.mutate()?;
        disk.names.remove(path).ok_or_else(|| not_found(path))?;
        disk.collect_garbage();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        let disk = &mut *disk;
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        disk.mutate()?;
        if disk.failing_syncs > 0 {
            disk.failing_syncs -= 1;
            disk.counters.injected_sync_errors += 1;
            return Err(io::Error::other("fsync failed (injected)"));
        }
        disk.counters.dir_syncs += 1;
        disk.durable_names
            .retain(|path, _| path.parent() != Some(dir));
        for (path, id) in &disk.names {
            if path.parent() == Some(dir) {
                disk.durable_names.insert(path.clone(), *id);
            }
        }
        disk.collect_garbage();
        Ok(())
    }

    fn check_writable(&self, _dir: &Path) -> io::Result<()> {
        if self.lock().read_only {
            Err(read_only())
        } else {
            Ok(())
        }
    }
}

impl SimFile {
    fn lock(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if disk.generation != self.generation {
            return Err(io::Error::other(
                "the simulated node crashed; this file handle is gone",
            ));
        }
        Ok(disk)
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut disk = self.lock()?;
        disk.mutate()?;
        if disk.failing_syncs > 0 {
            disk.failing_syncs -= 1;
            disk.counters.injected_sync_errors += 1;
            return Err(io::Error::other("fsync failed (injected)"));
        }
        disk.counters.file_syncs += 1;
        let inode = disk
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file removed"))?;
        inode.durable = inode.data.clone();
        Ok(())
    }
}

impl FileHandle for SimFile {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut disk = self.lock()?;
        let disk = &mut *disk;
        if disk.read_only {
            return Err(read_only());
        }
        disk.mutate()?;
        disk.counters.writes += 1;
        let used: u64 = disk.inodes.values().map(|i| i.data.len() as u64).sum();
        let inode = disk
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file removed"))?;
        let offset = offset as usize;
        let growth = (offset + buf.len()).saturating_sub(inode.data.len()) as u64;
        let (fits, error) = if disk.failing_writes > 0 {
            disk.failing_writes -= 1;
            disk.counters.injected_write_errors += 1;
            (
                buf.len() / 2,
                Some(io::Error::other("write failed (injected)")),
            )
        } else if let Some(capacity) = disk.capacity.filter(|&cap| used + growth > cap) {
            disk.counters.disk_full_errors += 1;
            let room = capacity.saturating_sub(used) as usize;
            let fits = (inode.data.len() + room)
                .saturating_sub(offset)
                .min(buf.len());
            (
                fits,
                Some(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "no space left on device (simulated)",
                )),
            )
        } else {
            (buf.len(), None)
        };
        let end = offset + fits;
        if inode.data.len() < end {
            inode.data.resize(end, 0);
        }
        inode.data[offset..end].copy_from_slice(&buf[..fits]);
        match error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut disk = self.lock()?;
        if disk.read_only {
            return Err(read_only());
        }
        disk.mutate()?;
        let inode = disk
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file removed"))?;
        inode.data.resize(len as usize, 0);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let disk = self.lock()?;
        let inode = disk
            .inodes
            .get(&self.inode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file removed"))?;
        Ok(inode.data.len() as u64)
    }
}
