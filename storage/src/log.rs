//! The write-ahead log, synchronous and single-owner: open (with recovery), append,
//! sync, snapshot. It is what the deterministic simulation drives directly on a
//! [`crate::SimFs`]; [`crate::GroupCommitLog`] runs it on a thread of its own for the
//! real node. Write order and why it is safe: docs/storage.md.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::{
    self, FileHeader, Identity, SEGMENT_MAGIC, SNAPSHOT_MAGIC, decode_frame, decode_header,
    encode_frame, encode_header, find_valid_frame_after,
};
use crate::fs::{FileHandle, FileSystem, PathKind};
use crate::recovery::{Record, Recovered, RecoverySummary, Snapshot, TornTail};
use crate::stats::StorageStats;

/// How a log is opened and laid out.
#[derive(Debug, Clone)]
pub struct Options {
    /// Create the data dir if it is missing (otherwise a missing dir is refused).
    pub create_dir: bool,
    /// A segment at least this long is closed and a new one started before the next write.
    pub segment_bytes: u64,
    /// The largest payload accepted (recovery treats a longer length field as damage).
    pub max_record_bytes: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            create_dir: false,
            segment_bytes: 64 << 20,
            max_record_bytes: 64 << 20,
        }
    }
}

const SEGMENT_PREFIX: &str = "wal-";
const SEGMENT_SUFFIX: &str = ".log";
const SNAPSHOT_PREFIX: &str = "snap-";
const SNAPSHOT_SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".tmp";

fn segment_name(first_index: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_index:020}{SEGMENT_SUFFIX}")
}

fn snapshot_name(position: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{position:020}{SNAPSHOT_SUFFIX}")
}

fn parse_name(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The segment being appended to.
struct Active<F: FileSystem> {
    path: PathBuf,
    file: F::File,
    first_index: u64,
    /// The end of the last good write: where the next frame goes, and where the file is
    /// cut back to after a failed write.
    len: u64,
}

/// A checksummed, segmented write-ahead log with snapshots.
pub struct Log<F: FileSystem> {
    fs: F,
    dir: PathBuf,
    identity: Identity,
    options: Options,
    active: Active<F>,
    /// Closed segments, oldest first: (first index, path).
    sealed: Vec<(u64, PathBuf)>,
    next_index: u64,
    unsynced_records: u64,
    unsynced_bytes: u64,
    snapshot_position: u64,
    snapshot_file: Option<PathBuf>,
    poisoned: Option<Error>,
    stats: Arc<Mutex<StorageStats>>,
}

/// Checks that the data dir exists (or creates it), is a directory, and is writable.
fn check_data_dir<F: FileSystem>(fs: &F, dir: &Path, create: bool) -> Result<()> {
    let refuse = |reason: String| Error::DataDir {
        dir: dir.to_path_buf(),
        reason,
    };
    match fs.kind(dir) {
        Ok(PathKind::Directory) => {}
        Ok(PathKind::File) => return Err(refuse("is not a directory".into())),
        Ok(PathKind::Missing) if create => {
            // The new directories' own entries must be durable too, or a crash could
            // take the whole data dir, synced log included.
            let missing: Vec<&Path> = dir
                .ancestors()
                .take_while(|path| matches!(fs.kind(path), Ok(PathKind::Missing)))
                .collect();
            fs.create_dir_all(dir)
                .map_err(|err| refuse(format!("cannot be created: {err}")))?;
            for created in missing {
                if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs.sync_dir(parent)
                        .map_err(|err| refuse(format!("cannot be made durable: {err}")))?;
                }
            }
        }
        Ok(PathKind::Missing) => {
            return Err(refuse(
                "does not exist (create it, or point --data-dir at the node's data)".into(),
            ));
        }
        Err(err) => return Err(refuse(format!("cannot be examined: {err}"))),
    }
    fs.check_writable(dir).map_err(|err| {
        if err.kind() == std::io::ErrorKind::StorageFull {
            refuse(format!("is full ({err}); free some space first"))
        } else {
            refuse(format!(
                "is not writable ({err}); a node that cannot write cannot keep its promises"
            ))
        }
    })
}

impl<F: FileSystem> Log<F> {
    /// Opens the log in `dir`, recovering what is there: the newest valid snapshot and
    /// the records after it. A torn tail is cut and reported; damage that a crash cannot
    /// explain, or files of another node, cluster or format version, are refused.
    pub fn open(
        fs: F,
        dir: impl Into<PathBuf>,
        identity: Identity,
        options: Options,
    ) -> Result<(Log<F>, Recovered)> {
        let dir = dir.into();
        check_data_dir(&fs, &dir, options.create_dir)?;
        let names = fs
            .list_dir(&dir)
            .map_err(|err| Error::io("cannot list", &dir, &err))?;

        let mut summary = RecoverySummary::default();
        let mut segments = Vec::new();
        let mut snapshots = Vec::new();
        let mut temps = Vec::new();
        for name in names {
            let path = dir.join(&name);
            if name.ends_with(TEMP_SUFFIX) {
                temps.push(path);
            } else if let Some(first) = parse_name(&name, SEGMENT_PREFIX, SEGMENT_SUFFIX) {
                segments.push((first, path));
            } else if let Some(position) = parse_name(&name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
                snapshots.push((position, path));
            } else {
                log::warn!("data dir {}: ignoring unknown file {name}", dir.display());
            }
        }
        segments.sort();
        snapshots.sort();

        let (snapshot, snapshot_file, skipped) = load_newest_snapshot(&fs, &identity, &snapshots)?;
        let snapshot_position = snapshot.as_ref().map_or(0, |snap| snap.position);
        summary.snapshot_position = snapshot_position;
        summary.snapshot_file = snapshot_file.clone();
        summary.skipped_snapshots = skipped.iter().map(ToString::to_string).collect();
        // A gap in the log is explained by a damaged snapshot, if one was skipped.
        let gap = |file: &Path, offset: u64, reason: String| -> Error {
            skipped
                .first()
                .cloned()
                .unwrap_or_else(|| Error::corrupt(file, offset, reason))
        };

        let mut records = Vec::new();
        let mut next_index = snapshot_position.max(1);
        let mut last: Option<(u64, PathBuf, u64)> = None;
        let mut sealed = Vec::new();
        let count = segments.len();
        for (i, (first, path)) in segments.iter().enumerate() {
            let bytes = fs
                .read(path)
                .map_err(|err| Error::io("cannot read", path, &err))?;
            let (header, header_len) = decode_header(path, &bytes, SEGMENT_MAGIC, &identity)?;
            if header.position != *first {
                return Err(Error::corrupt(
                    path,
                    16,
                    format!(
                        "header says first index {}, the file name says {first}",
                        header.position
                    ),
                ));
            }
            // Each segment must start where the previous one ended, unless the gap is
            // below the snapshot (removed segments' records live in the snapshot).
            let expected = if i == 0 {
                snapshot_position.max(1)
            } else {
                next_index
            };
            let gap_below_snapshot = i > 0 && *first > expected && *first <= snapshot_position;
            if (*first > expected || (i > 0 && *first < expected)) && !gap_below_snapshot {
                return Err(gap(
                    path,
                    16,
                    format!(
                        "log segment starts at record {first} but record {expected} was expected"
                    ),
                ));
            }
            next_index = *first;
            let mut at = header_len;
            while at < bytes.len() {
                match decode_frame(&bytes, at, options.max_record_bytes) {
                    Ok(frame) => {
                        if frame.index != next_index {
                            return Err(Error::corrupt(
                                path,
                                at as u64,
                                format!(
                                    "record index {} where {next_index} was expected",
                                    frame.index
                                ),
                            ));
                        }
                        if frame.index >= snapshot_position {
                            records.push(Record {
                                index: frame.index,
                                payload: bytes[frame.payload].to_vec(),
                            });
                        }
                        next_index += 1;
                        at = frame.end;
                    }
                    Err(bad) if i + 1 < count => {
                        return Err(Error::corrupt(
                            path,
                            at as u64,
                            format!("{bad} in a closed segment"),
                        ));
                    }
                    Err(bad) => {
                        if let Some(valid) = find_valid_frame_after(
                            &bytes,
                            at + 1,
                            next_index - 1,
                            options.max_record_bytes,
                        ) {
                            return Err(Error::corrupt(
                                path,
                                at as u64,
                                format!("{bad}, and a valid record follows at byte {valid}"),
                            ));
                        }
                        summary.torn_tail = Some(TornTail {
                            file: path.clone(),
                            offset: at as u64,
                            discarded_bytes: (bytes.len() - at) as u64,
                            reason: bad.to_string(),
                        });
                        break;
                    }
                }
            }
            if i + 1 < count {
                sealed.push((*first, path.clone()));
            }
            last = Some((*first, path.clone(), at as u64));
        }

        // Everything checked out: only now change the data dir (a refusal above leaves
        // it exactly as found, for the operator). Temp files are an interrupted snapshot
        // or segment creation: never renamed, never used.
        for temp in temps {
            fs.remove_file(&temp)
                .map_err(|err| Error::io("cannot remove", &temp, &err))?;
            summary.removed_temp_files.push(temp);
        }
        if !summary.removed_temp_files.is_empty() {
            fs.sync_dir(&dir)
                .map_err(|err| Error::io("cannot sync", &dir, &err))?;
        }

        summary.fresh = segments.is_empty() && snapshot.is_none();
        summary.segments = count;
        summary.records_replayed = records.len() as u64;

        let stats = Arc::new(Mutex::new(StorageStats::default()));
        let active = match last {
            Some((first, path, len)) => {
                let mut file = fs
                    .open(&path)
                    .map_err(|err| Error::io("cannot open", &path, &err))?;
                if let Some(torn) = &summary.torn_tail {
                    file.set_len(len)
                        .map_err(|err| Error::io("cannot cut the torn tail of", &path, &err))?;
                    log::warn!(
                        "{}: cut a torn tail at byte {} ({} bytes: {})",
                        path.display(),
                        torn.offset,
                        torn.discarded_bytes,
                        torn.reason
                    );
                }
                // Makes the cut durable; and what recovery read may be only in the page
                // cache (the process was killed, the machine was not): durable before the
                // node acts on it, so nothing it says after the restart rests on bytes a
                // power cut could still take back.
                file.sync_all()
                    .map_err(|err| Error::io("cannot sync", &path, &err))?;
                stats.lock().unwrap_or_else(|e| e.into_inner()).other_fsyncs += 1;
                Active {
                    path,
                    file,
                    first_index: first,
                    len,
                }
            }
            None => create_segment(&fs, &dir, &identity, next_index, &stats)?,
        };

        let mut log = Log {
            fs,
            dir,
            identity,
            options,
            active,
            sealed,
            next_index,
            unsynced_records: 0,
            unsynced_bytes: 0,
            snapshot_position,
            snapshot_file,
            poisoned: None,
            stats,
        };
        if log.next_index < snapshot_position {
            // The log ends before the snapshot (its tail was torn after the snapshot was
            // taken): continue from the snapshot in a new segment.
            log.next_index = snapshot_position;
            log.roll()?;
        }
        summary.next_index = log.next_index;
        log.publish_stats();
        let recovered = Recovered {
            snapshot,
            records,
            summary,
        };
        Ok((log, recovered))
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The identity every file is stamped with.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The index the next appended record will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Records below this index live only in the newest snapshot.
    pub fn snapshot_position(&self) -> u64 {
        self.snapshot_position
    }

    /// True if records have been appended since the last sync.
    pub fn has_unsynced(&self) -> bool {
        self.unsynced_records > 0
    }

    /// The error that poisoned the log, if any.
    pub fn poisoned(&self) -> Option<&Error> {
        self.poisoned.as_ref()
    }

    /// The largest payload accepted.
    pub fn max_record_bytes(&self) -> u32 {
        self.options.max_record_bytes
    }

    /// A copy of the counters.
    pub fn stats(&self) -> StorageStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The shared counters, for readers on other threads.
    pub(crate) fn stats_handle(&self) -> Arc<Mutex<StorageStats>> {
        Arc::clone(&self.stats)
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(err) => Err(Error::Poisoned(Box::new(err.clone()))),
            None => Ok(()),
        }
    }

    fn poison(&mut self, err: Error) -> Error {
        log::error!("{err}");
        self.poisoned = Some(err.clone());
        self.update_stats(|stats| stats.poisoned = true);
        err
    }

    fn update_stats(&self, f: impl FnOnce(&mut StorageStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn publish_stats(&self) {
        let (next, position, segments) = (
            self.next_index,
            self.snapshot_position,
            self.sealed.len() as u64 + 1,
        );
        self.update_stats(|stats| {
            stats.next_index = next;
            stats.snapshot_position = position;
            stats.segments = segments;
        });
    }

    /// Writes records after the last one, in one write, without syncing them: they are
    /// durable only after [`Log::sync`]. Returns their indices. On a failed write (a full
    /// disk) nothing is appended and the file is cut back to where it was.
    pub fn append<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<Range<u64>> {
        self.check_poisoned()?;
        let max = self.options.max_record_bytes;
        if let Some(big) = payloads.iter().find(|p| p.as_ref().len() > max as usize) {
            return Err(Error::RecordTooLarge {
                size: big.as_ref().len(),
                max,
            });
        }
        if payloads.is_empty() {
            return Ok(self.next_index..self.next_index);
        }
        if self.active.len >= self.options.segment_bytes
            && self.next_index > self.active.first_index
        {
            self.roll()?;
        }
        let first = self.next_index;
        let mut buf = Vec::with_capacity(
            payloads
                .iter()
                .map(|p| p.as_ref().len() + format::FRAME_HEADER_LEN)
                .sum(),
        );
        for (i, payload) in payloads.iter().enumerate() {
            encode_frame(&mut buf, first + i as u64, payload.as_ref());
        }
        let offset = self.active.len;
        if let Err(err) = self.active.file.write_all_at(offset, &buf) {
            self.update_stats(|stats| stats.write_errors += 1);
            let failed = Error::Write {
                file: self.active.path.clone(),
                offset,
                kind: err.kind(),
                message: err.to_string(),
            };
            log::error!("{failed}");
            // Leave no partial record behind, so the file stays a clean log.
            if let Err(cut) = self.active.file.set_len(offset) {
                let cut = Error::io(
                    "cannot cut back after a failed write",
                    &self.active.path,
                    &cut,
                );
                return Err(self.poison(cut));
            }
            return Err(failed);
        }
        let n = payloads.len() as u64;
        self.active.len += buf.len() as u64;
        self.next_index += n;
        self.unsynced_records += n;
        self.unsynced_bytes += buf.len() as u64;
        let (next, bytes) = (self.next_index, buf.len() as u64);
        self.update_stats(|stats| {
            stats.records_appended += n;
            stats.record_writes += 1;
            stats.bytes_written += bytes;
            stats.next_index = next;
        });
        Ok(first..first + n)
    }

    /// Makes every record appended so far durable with one `fdatasync` (none if nothing
    /// is pending). A failure poisons the log: the kernel may have dropped the dirty
    /// pages, so retrying could report success for data that is gone.
    pub fn sync(&mut self) -> Result<()> {
        self.check_poisoned()?;
        if self.unsynced_records == 0 && self.unsynced_bytes == 0 {
            return Ok(());
        }
        let started = Instant::now();
        match self.active.file.sync_data() {
            Ok(()) => {
                let latency = started.elapsed();
                let records = self.unsynced_records;
                self.unsynced_records = 0;
                self.unsynced_bytes = 0;
                self.update_stats(|stats| {
                    stats.log_fsyncs += 1;
                    stats.records_durable += records;
                    stats.log_fsync_latency.record(latency);
                });
                Ok(())
            }
            Err(err) => {
                self.update_stats(|stats| stats.fsync_errors += 1);
                let failed = Error::Sync {
                    file: self.active.path.clone(),
                    kind: err.kind(),
                    message: err.to_string(),
                };
                Err(self.poison(failed))
            }
        }
    }

    /// Appends and syncs: the records are durable when this returns `Ok`.
    pub fn append_durable<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<Range<u64>> {
        let range = self.append(payloads)?;
        self.sync()?;
        Ok(range)
    }

    /// Closes the active segment (after syncing it) and starts a new one at the next index.
    fn roll(&mut self) -> Result<()> {
        self.sync()?;
        let next = create_segment(
            &self.fs,
            &self.dir,
            &self.identity,
            self.next_index,
            &self.stats,
        )
        .map_err(|err| self.poison_if_sync(err))?;
        let old = std::mem::replace(&mut self.active, next);
        self.sealed.push((old.first_index, old.path));
        self.publish_stats();
        Ok(())
    }

    fn poison_if_sync(&mut self, err: Error) -> Error {
        if matches!(err, Error::Sync { .. }) {
            self.poison(err)
        } else {
            err
        }
    }

    /// Writes a snapshot holding everything below `position`, then removes the older
    /// snapshot and every segment whose records are all below `position`. The snapshot
    /// is durable (temp file, fsync, rename, directory fsync) before anything is removed.
    pub fn snapshot(&mut self, position: u64, payload: &[u8]) -> Result<SnapshotOutcome> {
        self.check_poisoned()?;
        if position < self.snapshot_position || position > self.next_index {
            return Err(Error::BadSnapshotPosition {
                position,
                current: self.snapshot_position,
                next: self.next_index,
            });
        }
        self.sync()?;
        let path = self.dir.join(snapshot_name(position));
        write_durably(
            &self.fs,
            &self.dir,
            &path,
            &[
                &encode_header(
                    SNAPSHOT_MAGIC,
                    &self.identity,
                    &FileHeader {
                        position,
                        body_len: payload.len() as u64,
                        body_crc: format::body_crc(payload),
                    },
                ),
                payload,
            ],
            &self.stats,
        )
        .map_err(|err| self.poison_if_sync(err))?;
        let previous = self.snapshot_file.replace(path.clone());
        self.snapshot_position = position;

        // Forgetting below the snapshot: only now that it is durable.
        let mut outcome = SnapshotOutcome::default();
        if let Some(old) = previous.filter(|old| *old != path) {
            self.fs
                .remove_file(&old)
                .map_err(|err| Error::io("cannot remove", &old, &err))?;
        }
        while let Some((_, path)) = self.sealed.first() {
            let next_first = self
                .sealed
                .get(1)
                .map_or(self.active.first_index, |(first, _)| *first);
            if next_first > position {
                break;
            }
            self.fs
                .remove_file(path)
                .map_err(|err| Error::io("cannot remove", path, &err))?;
            outcome.segments_removed += 1;
            self.sealed.remove(0);
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|err| Error::Sync {
                file: self.dir.clone(),
                kind: err.kind(),
                message: err.to_string(),
            })
            .map_err(|err| self.poison(err))?;
        let removed = outcome.segments_removed;
        self.update_stats(|stats| {
            stats.snapshots += 1;
            stats.segments_removed += removed;
            stats.other_fsyncs += 1;
        });
        self.publish_stats();
        Ok(outcome)
    }
}

/// What a snapshot removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotOutcome {
    pub segments_removed: u64,
}

/// Creates a segment whose header is durable before its name appears: written to a temp
/// file, fsynced, renamed, directory fsynced. So a `wal-*.log` always has a whole header.
fn create_segment<F: FileSystem>(
    fs: &F,
    dir: &Path,
    identity: &Identity,
    first_index: u64,
    stats: &Arc<Mutex<StorageStats>>,
) -> Result<Active<F>> {
    let path = dir.join(segment_name(first_index));
    let header = encode_header(
        SEGMENT_MAGIC,
        identity,
        &FileHeader {
            position: first_index,
            body_len: 0,
            body_crc: 0,
        },
    );
    write_durably(fs, dir, &path, &[&header], stats)?;
    let file = fs
        .open(&path)
        .map_err(|err| Error::io("cannot open", &path, &err))?;
    Ok(Active {
        path,
        file,
        first_index,
        len: header.len() as u64,
    })
}

/// Writes `parts` to `path` atomically and durably: temp file, write, fsync, rename,
/// directory fsync. On a failed write the temp file is removed and the target untouched.
fn write_durably<F: FileSystem>(
    fs: &F,
    dir: &Path,
    path: &Path,
    parts: &[&[u8]],
    stats: &Arc<Mutex<StorageStats>>,
) -> Result<()> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(TEMP_SUFFIX);
    let temp = PathBuf::from(temp_name);
    let count_fsync = || stats.lock().unwrap_or_else(|e| e.into_inner()).other_fsyncs += 1;
    let written = (|| {
        let mut file = fs.create(&temp).map_err(|err| (0, err))?;
        let mut offset = 0u64;
        for part in parts {
            file.write_all_at(offset, part)
                .map_err(|err| (offset, err))?;
            offset += part.len() as u64;
        }
        Ok(file)
    })();
    let mut file = match written {
        Ok(file) => file,
        Err((offset, err)) => {
            stats.lock().unwrap_or_else(|e| e.into_inner()).write_errors += 1;
            // Best effort: a leftover temp file is removed at the next open anyway.
            let _ = fs.remove_file(&temp);
            return Err(Error::Write {
                file: temp,
                offset,
                kind: err.kind(),
                message: err.to_string(),
            });
        }
    };
    let sync_error = |file: &Path, err: std::io::Error| Error::Sync {
        file: file.to_path_buf(),
        kind: err.kind(),
        message: err.to_string(),
    };
    file.sync_all().map_err(|err| sync_error(&temp, err))?;
    count_fsync();
    drop(file);
    fs.rename(&temp, path)
        .map_err(|err| Error::io("cannot rename into", path, &err))?;
    fs.sync_dir(dir).map_err(|err| sync_error(dir, err))?;
    count_fsync();
    Ok(())
}

/// Loads the newest snapshot that checks out. A snapshot of another node, cluster or
/// version is refused outright; a damaged one is passed over (and returned as the reason,
/// in case the log does not reach back to the older snapshot).
fn load_newest_snapshot<F: FileSystem>(
    fs: &F,
    identity: &Identity,
    snapshots: &[(u64, PathBuf)],
) -> Result<(Option<Snapshot>, Option<PathBuf>, Vec<Error>)> {
    let mut skipped = Vec::new();
    for (position, path) in snapshots.iter().rev() {
        let bytes = fs
            .read(path)
            .map_err(|err| Error::io("cannot read", path, &err))?;
        let (header, header_len) = match decode_header(path, &bytes, SNAPSHOT_MAGIC, identity) {
            Ok(found) => found,
            Err(err @ Error::Corrupt { .. }) => {
                log::warn!("passing over a damaged snapshot: {err}");
                skipped.push(err);
                continue;
            }
            Err(refused) => return Err(refused),
        };
        let body = &bytes[header_len..];
        let damage = if header.position != *position {
            Some((
                16,
                "snapshot position does not match its file name".to_string(),
            ))
        } else if body.len() as u64 != header.body_len {
            Some((
                header_len as u64,
                format!(
                    "snapshot payload is {} bytes, the header says {}",
                    body.len(),
                    header.body_len
                ),
            ))
        } else if format::body_crc(body) != header.body_crc {
            Some((
                header_len as u64,
                "snapshot payload checksum mismatch".into(),
            ))
        } else {
            None
        };
        if let Some((offset, reason)) = damage {
            let err = Error::corrupt(path, offset, reason);
            log::warn!("passing over a damaged snapshot: {err}");
            skipped.push(err);
            continue;
        }
        return Ok((
            Some(Snapshot {
                position: *position,
                payload: body.to_vec(),
            }),
            Some(path.clone()),
            skipped,
        ));
    }
    Ok((None, None, skipped))
}
