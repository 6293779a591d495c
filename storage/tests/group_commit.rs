//! Group commit: appends that arrive together share one write and one fdatasync, every
//! caller learns when its own records are durable, and failures reach every caller of
//! the failed batch.

mod common;

use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use storage::{
    CommitLog, Error, FileHandle, FileSystem, GroupCommitLog, Log, ManualCommitLog, Options,
    PathKind, RealFs, SimFs,
};

/// Generous: only reached if the code under test is broken (a hang), never by timing.
const DEADLINE: Duration = Duration::from_secs(60);

/// A file system whose record fdatasyncs can be held at a gate, so a test can line up
/// appends behind a running fsync without sleeping.
#[derive(Clone)]
struct Gated<F> {
    inner: F,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    waiting: u32,
}

impl Gate {
    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        state.waiting += 1;
        self.changed.notify_all();
        while state.closed {
            state = self.changed.wait(state).unwrap();
        }
        state.waiting -= 1;
    }

    fn set_closed(&self, closed: bool) {
        self.state.lock().unwrap().closed = closed;
        self.changed.notify_all();
    }

    fn wait_for_waiter(&self) {
        let state = self.state.lock().unwrap();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, DEADLINE, |s| s.waiting == 0)
            .unwrap();
        assert!(
            !timeout.timed_out() && state.waiting == 1,
            "nothing reached the gate"
        );
    }
}

struct GatedFile<H> {
    inner: H,
    gate: Arc<Gate>,
}

impl<F: FileSystem> FileSystem for Gated<F> {
    type File = GatedFile<F::File>;
    fn kind(&self, path: &Path) -> io::Result<PathKind> {
        self.inner.kind(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Self::File> {
        Ok(GatedFile {
            inner: self.inner.create(path)?,
            gate: Arc::clone(&self.gate),
        })
    }
    fn open(&self, path: &Path) -> io::Result<Self::File> {
        Ok(GatedFile {
            inner: self.inner.open(path)?,
            gate: Arc::clone(&self.gate),
        })
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn check_writable(&self, dir: &Path) -> io::Result<()> {
        self.inner.check_writable(dir)
    }
}

impl<H: FileHandle> FileHandle for GatedFile<H> {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all_at(offset, buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.gate.pass();
        self.inner.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.inner.sync_all()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}

#[test]
fn appends_queued_behind_a_running_fsync_share_the_next_one() {
    let sim = SimFs::new(1);
    let gate = Arc::new(Gate::default());
    let fs = Gated {
        inner: sim.clone(),
        gate: Arc::clone(&gate),
    };
    let (wal, _) = GroupCommitLog::open(fs, "/data", identity(), options()).unwrap();

    gate.set_closed(true);
    let first = wal.append(vec![payload(1)]);
    gate.wait_for_waiter(); // the storage thread is inside the first fdatasync
    let callers = 50u64;
    let queued: Vec<_> = (0..callers)
        .map(|i| wal.append(vec![payload(2 + 2 * i), payload(3 + 2 * i)]))
        .collect();
    assert!(!first.is_done(), "durable before its fdatasync finished");
    gate.set_closed(false);

    assert_eq!(first.wait().unwrap(), 1..2);
    for (i, completion) in queued.into_iter().enumerate() {
        let start = 2 + 2 * i as u64;
        assert_eq!(completion.wait().unwrap(), start..start + 2);
    }
    let stats = wal.stats();
    let records = 1 + 2 * callers;
    assert_eq!(stats.records_durable, records);
    assert_eq!(
        stats.log_fsyncs, 2,
        "one fsync for the first, one for all the rest"
    );
    assert_eq!(stats.record_writes, 2, "one write per batch");
    assert_eq!(stats.log_fsync_latency.samples, 2);
    drop(wal);

    sim.crash();
    let (_, recovered) = Log::open(sim, "/data", identity(), options()).unwrap();
    assert_eq!(recovered.records.len() as u64, records);
    assert!(
        recovered
            .records
            .iter()
            .all(|r| r.payload == payload(r.index))
    );
}

#[test]
fn concurrent_appenders_on_the_real_disk_need_far_fewer_fsyncs_than_records() {
    // Under target/, on the build's disk: /tmp may be a tmpfs, where an fsync costs
    // nothing and there would be nothing to group.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (wal, _) = GroupCommitLog::open(RealFs, dir.path(), identity(), options()).unwrap();
    let wal = Arc::new(wal);
    let (threads, each) = (16u64, 30u64);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..each {
                    // Each caller waits for durability before its next append, as a
                    // Paxos acceptor waits before replying.
                    let range = wal
                        .append(vec![format!("t{t}-{i}").into_bytes()])
                        .wait()
                        .unwrap();
                    mine.push(range.start);
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    let records = threads * each;
    assert_eq!(all, (1..=records).collect::<Vec<_>>(), "every index once");
    let stats = wal.stats();
    println!(
        "{records} records, {} fsyncs, fsync p50 <= {:?} us",
        stats.log_fsyncs,
        stats.log_fsync_latency.quantile_upper_bound_us(0.5)
    );
    assert_eq!(stats.records_durable, records);
    // Sixteen callers, one fsync at a time: while one runs the others queue. Even a
    // fast disk leaves a wide margin below one fsync per record.
    assert!(
        stats.log_fsyncs * 2 <= records,
        "{} fsyncs for {records} records",
        stats.log_fsyncs
    );
    drop(wal);
    let (_, recovered) = open_real(dir.path()).unwrap();
    assert_eq!(recovered.records.len() as u64, records);
}

#[test]
fn callbacks_run_once_durable_in_append_order() {
    let sim = SimFs::new(2);
    let (wal, _) = GroupCommitLog::open(sim.clone(), "/data", identity(), options()).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 1..=20u64 {
        let tx = tx.clone();
        let sim = sim.clone();
        wal.append_then(
            vec![payload(i)],
            Box::new(move |result| {
                // Durable means: in the simulated disk's synced bytes, which a crash keeps.
                let synced = sim.counters().file_syncs;
                tx.send((result.unwrap(), synced)).unwrap();
            }),
        );
    }
    let mut seen = Vec::new();
    for _ in 0..20 {
        let (range, synced) = rx.recv_timeout(DEADLINE).unwrap();
        assert!(synced >= 1);
        seen.push(range.start);
    }
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
}

#[test]
fn a_completion_can_be_awaited_without_a_runtime() {
    let sim = SimFs::new(3);
    let (wal, _) = GroupCommitLog::open(sim, "/data", identity(), options()).unwrap();
    let range = futures::executor::block_on(wal.append(vec![b"a".to_vec(), b"b".to_vec()]));
    assert_eq!(range.unwrap(), 1..3);
    let values = wal.append_values(&[(1u8, "x"), (2u8, "y")]).unwrap();
    assert_eq!(futures::executor::block_on(values).unwrap(), 3..5);
}

#[test]
fn closing_finishes_what_is_queued() {
    let sim = SimFs::new(4);
    let (wal, _) = GroupCommitLog::open(sim.clone(), "/data", identity(), options()).unwrap();
    let pending: Vec<_> = (1..=100).map(|i| wal.append(vec![payload(i)])).collect();
    wal.close();
    for completion in pending {
        completion.wait().unwrap();
    }
    sim.crash();
    let (_, recovered) = Log::open(sim, "/data", identity(), options()).unwrap();
    assert_eq!(recovered.records.len(), 100);
}

#[test]
fn an_oversized_record_is_refused_alone() {
    let sim = SimFs::new(5);
    let small = Options {
        max_record_bytes: 100,
        ..options()
    };
    let (wal, _) = GroupCommitLog::open(sim, "/data", identity(), small).unwrap();
    let too_big = wal.append(vec![vec![0; 101]]);
    let fine = wal.append(vec![vec![0; 100]]);
    assert!(matches!(
        too_big.wait(),
        Err(Error::RecordTooLarge {
            size: 101,
            max: 100
        })
    ));
    assert_eq!(fine.wait().unwrap(), 1..2);
}

#[test]
fn an_fsync_error_fails_the_whole_batch_and_poisons_the_log() {
    let sim = SimFs::new(6);
    let gate = Arc::new(Gate::default());
    let fs = Gated {
        inner: sim.clone(),
        gate: Arc::clone(&gate),
    };
    let (wal, _) = GroupCommitLog::open(fs, "/data", identity(), options()).unwrap();
    wal.append(vec![payload(1)]).wait().unwrap();

    gate.set_closed(true);
    let held = wal.append(vec![payload(2)]);
    gate.wait_for_waiter();
    sim.fail_syncs(1); // the held fsync and nothing after it
    let batch: Vec<_> = (3..=7).map(|i| wal.append(vec![payload(i)])).collect();
    gate.set_closed(false);
    assert!(matches!(held.wait(), Err(Error::Sync { .. })));
    for completion in batch {
        let err = completion.wait().unwrap_err();
        assert!(err.is_poisoned(), "{err}");
    }
    let later = wal.append(vec![payload(8)]).wait().unwrap_err();
    assert!(matches!(later, Error::Poisoned(_)), "{later}");
    let stats = wal.stats();
    assert!(stats.poisoned);
    assert_eq!(stats.fsync_errors, 1);
    assert_eq!(sim.counters().injected_sync_errors, 1);
    assert_eq!(stats.records_durable, 1);

    drop(wal);
    sim.crash();
    let (_, recovered) = Log::open(sim, "/data", identity(), options()).unwrap();
    assert_eq!(recovered.records.len(), 1, "only the acknowledged record");
}

#[test]
fn snapshots_are_ordered_after_earlier_appends() {
    let sim = SimFs::new(7);
    let (wal, _) = GroupCommitLog::open(sim.clone(), "/data", identity(), options()).unwrap();
    let appended: Vec<_> = (1..=10).map(|i| wal.append(vec![payload(i)])).collect();
    let snapshot = wal.snapshot(11, b"everything".to_vec());
    let after = wal.append(vec![payload(11)]);
    snapshot.wait().unwrap();
    assert_eq!(after.wait().unwrap(), 11..12);
    for completion in appended {
        completion.wait().unwrap();
    }
    assert_eq!(wal.stats().snapshot_position, 11);
    drop(wal);
    sim.crash();
    let (_, recovered) = Log::open(sim, "/data", identity(), options()).unwrap();
    assert_eq!(recovered.snapshot.unwrap().payload, b"everything");
    assert_eq!(recovered.records.len(), 1);
    assert_eq!(recovered.records[0].index, 11);
}

#[test]
fn a_panicking_callback_does_not_stop_the_storage_thread() {
    let sim = SimFs::new(8);
    let (wal, _) = GroupCommitLog::open(sim, "/data", identity(), options()).unwrap();
    wal.append_then(vec![payload(1)], Box::new(|_| panic!("a caller's bug")));
    assert_eq!(wal.append(vec![payload(2)]).wait().unwrap(), 2..3);
    assert_eq!(wal.stats().records_durable, 2);
}

#[test]
fn manual_commit_groups_what_is_queued_and_a_crash_before_it_runs_no_callback() {
    let sim = SimFs::new(9);
    let (wal, _) = ManualCommitLog::open(sim.clone(), "/data", identity(), options()).unwrap();
    let told = Arc::new(Mutex::new(Vec::new()));
    for i in 1..=10u64 {
        let told = Arc::clone(&told);
        wal.append_then(
            vec![payload(i)],
            Box::new(move |result| told.lock().unwrap().push(result.unwrap().start)),
        );
    }
    assert_eq!(wal.pending(), 10);
    assert!(
        told.lock().unwrap().is_empty(),
        "nothing is told before the commit"
    );
    assert_eq!(wal.commit_pending(), 10);
    assert_eq!(*told.lock().unwrap(), (1..=10).collect::<Vec<_>>());
    let stats = wal.stats();
    assert_eq!((stats.log_fsyncs, stats.records_durable), (1, 10));

    // Queued, never committed, then the node crashes: no callback, no record.
    let late = Arc::clone(&told);
    wal.append_then(
        vec![payload(11)],
        Box::new(move |_| late.lock().unwrap().push(11)),
    );
    let completion = wal.append(vec![payload(12)]);
    sim.crash();
    drop(wal);
    assert_eq!(told.lock().unwrap().len(), 10);
    assert!(matches!(completion.wait(), Err(Error::Stopped)));
    let (_, recovered) = Log::open(sim, "/data", identity(), options()).unwrap();
    assert_eq!(recovered.records.len(), 10);
}

#[test]
fn a_driver_is_written_once_for_both_commit_logs() {
    /// What a peer driver does with its output batch: persist, then send.
    fn persist_then_send(log: &dyn CommitLog, records: Vec<Vec<u8>>, sent: mpsc::Sender<u64>) {
        log.append_then(
            records,
            Box::new(move |result| {
                if let Ok(range) = result {
                    sent.send(range.end).unwrap();
                }
            }),
        );
    }
    let (tx, rx) = mpsc::channel();
    let sim = SimFs::new(10);
    let (manual, _) = ManualCommitLog::open(sim.clone(), "/a", identity(), options()).unwrap();
    persist_then_send(&manual, vec![payload(1)], tx.clone());
    assert!(rx.try_recv().is_err(), "not sent before the fsync");
    manual.commit_pending();
    assert_eq!(rx.try_recv().unwrap(), 2);

    let (threaded, _) = GroupCommitLog::open(sim, "/b", identity(), options()).unwrap();
    persist_then_send(&threaded, vec![payload(1), payload(2)], tx);
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), 3);
}
