//! Our write-ahead log against redb (an embedded, crash-safe B-tree store) on the
//! measures of issue 12, item 8: fsyncs per batch and the latency of a synced write, one
//! caller and many. Figures are indicative (a shared, loaded machine); see
//! docs/storage.md for the command and the results.
//!
//! ```text
//! cargo run --release -p storage --example compare_redb -- [--dir DIR] [--records N] [--threads T]
//! ```
//!
//! DIR must be on the disk to measure (default: a temp dir in the current directory,
//! not /tmp, which may be a tmpfs where fsync costs nothing).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redb::{Database, StorageBackend, TableDefinition, backends::FileBackend};
use storage::{CommitLog, GroupCommitLog, Identity, Log, Options, RealFs};

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const PAYLOAD: usize = 100;

/// redb's file backend, counting its fsyncs.
#[derive(Debug)]
struct Counting {
    inner: FileBackend,
    syncs: Arc<AtomicU64>,
}

impl StorageBackend for Counting {
    fn len(&self) -> Result<u64, redb::BackendError> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), redb::BackendError> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), redb::BackendError> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), redb::BackendError> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), redb::BackendError> {
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), redb::BackendError> {
        self.inner.close()
    }
}

struct Row {
    /// The fsync latency our own counters saw (p50, p99 bucket bounds in µs), if ours.
    fsync_us: Option<(u64, u64)>,
    store: &'static str,
    callers: usize,
    records: u64,
    fsyncs: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
        write!(
            f,
            "| {} | {} | {} | {:.3} | {:.0} | {:.0} | {:.0} |",
            self.store,
            self.callers,
            self.records,
            self.fsyncs as f64 / self.records as f64,
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            self.records as f64 / self.elapsed.as_secs_f64(),
        )?;
        if let Some((p50, p99)) = self.fsync_us {
            write!(f, " fsync p50 <= {p50} µs, p99 <= {p99} µs |")?;
        } else {
            write!(f, " |")?;
        }
        Ok(())
    }
}

fn fsync_bounds(stats: &storage::StorageStats) -> Option<(u64, u64)> {
    let histogram = &stats.log_fsync_latency;
    Some((
        histogram.quantile_upper_bound_us(0.5)?,
        histogram.quantile_upper_bound_us(0.99)?,
    ))
}

fn payload(i: u64) -> Vec<u8> {
    let mut bytes = vec![(i % 251) as u8; PAYLOAD];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    bytes
}

fn identity() -> Identity {
    Identity::new("bench", "compare")
}

fn log_one_caller(dir: &Path, records: u64) -> Row {
    let options = Options {
        create_dir: true,
        ..Options::default()
    };
    let (mut log, _) = Log::open(RealFs, dir, identity(), options).expect("open log");
    let before = log.stats().log_fsyncs;
    let started = Instant::now();
    let latencies = (0..records)
        .map(|i| {
            let t = Instant::now();
            log.append_durable(&[payload(i)]).expect("append");
            t.elapsed()
        })
        .collect();
    let stats = log.stats();
    Row {
        fsync_us: fsync_bounds(&stats),
        store: "paxoskv storage (Log)",
        callers: 1,
        records,
        fsyncs: log.stats().log_fsyncs - before,
        latencies,
        elapsed: started.elapsed(),
    }
}

fn log_many_callers(dir: &Path, records: u64, callers: usize) -> Row {
    let options = Options {
        create_dir: true,
        ..Options::default()
    };
    let (wal, _) = GroupCommitLog::open(RealFs, dir, identity(), options).expect("open log");
    let wal = Arc::new(wal);
    let before = wal.stats().log_fsyncs;
    let each = records / callers as u64;
    let started = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|c| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                (0..each)
                    .map(|i| {
                        let t = Instant::now();
                        wal.append(vec![payload(c as u64 * each + i)])
                            .wait()
                            .expect("append");
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let latencies = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    let elapsed = started.elapsed();
    let stats = wal.stats();
    Row {
        fsync_us: fsync_bounds(&stats),
        store: "paxoskv storage (GroupCommitLog)",
        callers,
        records: each * callers as u64,
        fsyncs: wal.stats().log_fsyncs - before,
        latencies,
        elapsed,
    }
}

fn open_redb(path: &Path) -> (Database, Arc<AtomicU64>) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open redb file");
    let syncs = Arc::new(AtomicU64::new(0));
    let backend = Counting {
        inner: FileBackend::new(file),
        syncs: Arc::clone(&syncs),
    };
    let db = Database::builder()
        .create_with_backend(backend)
        .expect("create redb");
    (db, syncs)
}

fn redb_write(db: &Database, key: u64) {
    // One durable transaction per record: redb's default durability is Immediate.
    let tx = db.begin_write().expect("begin");
    {
        let mut table = tx.open_table(TABLE).expect("table");
        table.insert(key, payload(key).as_slice()).expect("insert");
    }
    tx.commit().expect("commit");
}

fn redb_callers(path: &Path, records: u64, callers: usize) -> Row {
    let (db, syncs) = open_redb(path);
    let db = Arc::new(db);
    let before = syncs.load(Ordering::Relaxed);
    let each = records / callers as u64;
    let started = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|c| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                (0..each)
                    .map(|i| {
                        let t = Instant::now();
                        redb_write(&db, c as u64 * each + i);
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let latencies = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    let elapsed = started.elapsed();
    Row {
        fsync_us: None,
        store: "redb 5 (a transaction per record)",
        callers,
        records: each * callers as u64,
        fsyncs: syncs.load(Ordering::Relaxed) - before,
        latencies,
        elapsed,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let mut records = 2000u64;
    let mut callers = 16usize;
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match arg.as_str() {
            "--dir" => dir = Some(PathBuf::from(value())),
            "--records" => records = value().parse().expect("--records N"),
            "--threads" => callers = value().parse().expect("--threads T"),
            other => panic!("unknown argument {other}"),
        }
    }
    let base = dir.unwrap_or_else(|| std::env::current_dir().expect("cwd"));
    let scratch = tempfile::tempdir_in(&base).expect("temp dir");
    let root = scratch.path();
    println!(
        "{records} records of {PAYLOAD} bytes, in {}",
        root.display()
    );
    println!(
        "| store | callers | records | fsyncs/record | p50 µs | p99 µs | records/s | fsync latency (our counters) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!("{}", log_one_caller(&root.join("log-1"), records));
    println!("{}", redb_callers(&root.join("redb-1.redb"), records, 1));
    println!(
        "{}",
        log_many_callers(&root.join("log-n"), records, callers)
    );
    println!(
        "{}",
        redb_callers(&root.join("redb-n.redb"), records, callers)
    );
}
