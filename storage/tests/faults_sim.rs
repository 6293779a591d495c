//! Storage faults on the simulated disk: crashes lose exactly what was not synced, full
//! disks and write errors fail the append and leave a clean file, fsync errors poison
//! the log, read-only and missing data dirs are refused; and a seeded random mix of all
//! of them never loses an acknowledged record nor invents one.

mod common;

use std::collections::BTreeMap;
use std::io;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use storage::{Error, Log, Options, SimFs, payload as codec};

const DIR: &str = "/node/s1";

fn open_sim(sim: &SimFs) -> storage::Result<(Log<SimFs>, storage::Recovered)> {
    Log::open(sim.clone(), DIR, identity(), options())
}

fn segment_len(sim: &SimFs) -> u64 {
    let seg = std::path::Path::new(DIR).join(format!("wal-{:020}.log", 1));
    sim.file_bytes(&seg).unwrap().len() as u64
}

#[test]
fn a_crash_loses_exactly_the_unsynced_records() {
    let sim = SimFs::new(11);
    let (mut log, _) = open_sim(&sim).unwrap();
    let durable: Vec<Vec<u8>> = (1..=10).map(payload).collect();
    log.append_durable(&durable).unwrap();
    log.append(&(11..=15).map(payload).collect::<Vec<_>>())
        .unwrap();
    assert!(log.has_unsynced());
    sim.crash();
    let counters = sim.counters();
    assert_eq!(counters.crashes, 1);
    assert!(
        counters.bytes_lost > 0,
        "the crash threw unsynced bytes away"
    );
    // The old handle is dead, as the process would be.
    assert!(log.sync().is_err());

    let (log, recovered) = open_sim(&sim).unwrap();
    let indices: Vec<u64> = recovered.records.iter().map(|r| r.index).collect();
    assert_eq!(indices, (1..=10).collect::<Vec<_>>());
    assert_eq!(
        recovered.summary.torn_tail, None,
        "nothing torn without tearing"
    );
    assert_eq!(log.next_index(), 11);
}

#[test]
fn a_torn_unsynced_write_is_cut_at_recovery() {
    // Find a seed whose crash tears (keeps part of the unsynced bytes): the disk's
    // choices are seeded, so this is the same seed every run.
    for seed in 0..64 {
        let sim = SimFs::new(seed);
        sim.set_tear_on_crash(true);
        let (mut log, _) = open_sim(&sim).unwrap();
        log.append_durable(&[payload(1), payload(2)]).unwrap();
        log.append(&[payload(3), payload(4), payload(5)]).unwrap();
        sim.crash();
        if sim.counters().torn_writes == 0 {
            continue;
        }
        let (_, recovered) = open_sim(&sim).unwrap();
        let n = recovered.records.len();
        assert!((2..=5).contains(&n), "seed {seed}: {n} records");
        assert!(
            recovered
                .records
                .iter()
                .all(|r| r.payload == payload(r.index))
        );
        if n < 5 {
            assert!(
                recovered.summary.torn_tail.is_some() || n == 2,
                "seed {seed}: a partial record must be reported"
            );
        }
        return;
    }
    panic!("no seed in 0..64 tore a write");
}

#[test]
fn a_full_disk_fails_the_append_and_leaves_no_corrupt_file() {
    let sim = SimFs::new(12);
    let (mut log, _) = open_sim(&sim).unwrap();
    log.append_durable(&(1..=5).map(payload).collect::<Vec<_>>())
        .unwrap();
    let good_len = segment_len(&sim);
    sim.set_capacity(Some(sim.used_bytes() + 40));

    let err = log
        .append(&[payload(6), payload(7)])
        .expect_err("the disk is full");
    match &err {
        Error::Write { kind, offset, .. } => {
            assert_eq!(*kind, io::ErrorKind::StorageFull);
            assert_eq!(*offset, good_len);
        }
        other => panic!("expected a write error, got {other:?}"),
    }
    assert_one_line(&err.to_string());
    assert!(err.to_string().contains("nothing acknowledged"), "{err}");
    assert_eq!(sim.counters().disk_full_errors, 1, "the fault happened");
    assert_eq!(log.stats().write_errors, 1);
    assert_eq!(segment_len(&sim), good_len, "partial write cut back");
    assert_eq!(log.next_index(), 6, "no index was used");
    assert!(log.poisoned().is_none(), "a full disk is not a lost fsync");

    // Once space is freed the log carries on where it was.
    sim.set_capacity(None);
    assert_eq!(log.append_durable(&[payload(6)]).unwrap(), 6..7);
    sim.crash();
    let (_, recovered) = open_sim(&sim).unwrap();
    assert_eq!(recovered.records.len(), 6);
    assert_eq!(recovered.summary.torn_tail, None);
    assert!(
        recovered
            .records
            .iter()
            .all(|r| r.payload == payload(r.index))
    );
}

#[test]
fn a_full_disk_then_a_crash_keeps_exactly_the_acknowledged_records() {
    let sim = SimFs::new(13);
    let (mut log, _) = open_sim(&sim).unwrap();
    let mut acknowledged = 0;
    sim.set_capacity(Some(sim.used_bytes() + 2_000));
    for index in 1.. {
        match log.append_durable(&[payload(index)]) {
            Ok(range) => acknowledged = range.end - 1,
            Err(Error::Write { kind, .. }) => {
                assert_eq!(kind, io::ErrorKind::StorageFull);
                break;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(acknowledged > 5);
    sim.crash();
    sim.set_capacity(None);
    let (_, recovered) = open_sim(&sim).unwrap();
    assert_eq!(recovered.records.len() as u64, acknowledged);
    assert_eq!(recovered.summary.torn_tail, None);
}

#[test]
fn an_injected_write_error_is_cut_back_and_reported() {
    let sim = SimFs::new(14);
    let (mut log, _) = open_sim(&sim).unwrap();
    log.append_durable(&[payload(1)]).unwrap();
    let good_len = segment_len(&sim);
    sim.fail_writes(1);
    let err = log.append(&[payload(2)]).unwrap_err();
    assert!(
        matches!(err, Error::Write { offset, .. } if offset == good_len),
        "{err}"
    );
    assert_eq!(sim.counters().injected_write_errors, 1);
    assert_eq!(segment_len(&sim), good_len);
    assert_eq!(log.append_durable(&[payload(2)]).unwrap(), 2..3);
}

#[test]
fn an_fsync_error_poisons_the_log() {
    let sim = SimFs::new(15);
    let (mut log, _) = open_sim(&sim).unwrap();
    log.append_durable(&[payload(1)]).unwrap();
    log.append(&[payload(2)]).unwrap();
    sim.fail_syncs(1);
    let err = log.sync().unwrap_err();
    assert!(matches!(err, Error::Sync { .. }), "{err}");
    assert_eq!(sim.counters().injected_sync_errors, 1);
    // Never retried and carried on: every later call fails, even though the disk would
    // now sync fine.
    for _ in 0..3 {
        assert!(matches!(log.sync(), Err(Error::Poisoned(_))));
        assert!(matches!(log.append(&[payload(3)]), Err(Error::Poisoned(_))));
        assert!(matches!(log.snapshot(1, b"s"), Err(Error::Poisoned(_))));
    }
    let stats = log.stats();
    assert!(stats.poisoned);
    assert_eq!((stats.fsync_errors, stats.log_fsyncs), (1, 1));
    assert_one_line(&log.poisoned().unwrap().to_string());

    sim.crash();
    let (_, recovered) = open_sim(&sim).unwrap();
    assert_eq!(recovered.records.len(), 1);
}

#[test]
fn read_only_and_missing_data_dirs_are_refused() {
    // Read-only through the simulated disk, which fails every write as a read-only
    // mount does (the real mount is tested in real_mounts.rs).
    let sim = SimFs::new(16);
    open_sim(&sim).unwrap();
    sim.set_read_only(true);
    let err = open_sim(&sim).err().expect("read-only refused");
    assert!(matches!(err, Error::DataDir { .. }), "{err}");
    assert!(err.to_string().contains("not writable"), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_one_line(&err.to_string());

    let fresh = SimFs::new(17);
    let err = Log::open(fresh.clone(), DIR, identity(), Options::default())
        .err()
        .expect("missing refused");
    assert!(
        err.to_string()
            .contains(&format!("data dir {DIR}: does not exist")),
        "{err}"
    );
}

#[test]
fn a_snapshot_that_does_not_fit_changes_nothing() {
    let sim = SimFs::new(18);
    let (mut log, _) = open_sim(&sim).unwrap();
    log.append_durable(&(1..=10).map(payload).collect::<Vec<_>>())
        .unwrap();
    log.snapshot(5, b"small").unwrap();
    sim.set_capacity(Some(sim.used_bytes() + 100));
    let err = log.snapshot(11, &[7; 500]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Write {
                kind: io::ErrorKind::StorageFull,
                ..
            }
        ),
        "{err}"
    );
    assert!(log.poisoned().is_none());
    assert_eq!(log.snapshot_position(), 5);
    sim.set_capacity(None);
    sim.crash();
    let (_, recovered) = open_sim(&sim).unwrap();
    assert_eq!(recovered.snapshot.unwrap().payload, b"small");
    assert_eq!(recovered.records.first().map(|r| r.index), Some(5));
    assert_eq!(recovered.records.len(), 6);
}

/// The recovered state of a log whose snapshots hold every record below their position.
fn state_of(recovered: &storage::Recovered) -> BTreeMap<u64, Vec<u8>> {
    let mut state: BTreeMap<u64, Vec<u8>> = recovered
        .snapshot
        .as_ref()
        .map(|s| codec::decode::<Vec<(u64, Vec<u8>)>>(&s.payload).unwrap())
        .unwrap_or_default()
        .into_iter()
        .collect();
    for record in &recovered.records {
        state.insert(record.index, record.payload.clone());
    }
    state
}

/// One seeded run of random appends, syncs, snapshots, faults and crashes (torn writes
/// on). Returns a trace of every recovery, for the determinism check.
fn random_run(seed: u64, steps: usize) -> Vec<(u64, usize, Option<u64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sim = SimFs::new(seed);
    sim.set_tear_on_crash(true);
    let small = Options {
        segment_bytes: 400,
        ..options()
    };
    let open = |sim: &SimFs| Log::open(sim.clone(), DIR, identity(), small.clone());
    let (mut log, _) = open(&sim).unwrap();
    // What was acknowledged (must survive) and what was written (may survive).
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut written: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut trace = Vec::new();
    for step in 0..=steps {
        let roll = rng.random_range(0..100);
        let crash = step == steps || roll < 8 || log.poisoned().is_some();
        if crash {
            sim.crash();
            sim.set_capacity(None);
            sim.fail_writes(0);
            sim.fail_syncs(0);
            let (reopened, recovered) = open(&sim).unwrap_or_else(|err| {
                panic!(
                    "seed {seed} step {step}: reopen refused: {err} ({})",
                    replay(seed)
                )
            });
            let state = state_of(&recovered);
            let indices: Vec<u64> = state.keys().copied().collect();
            let expected: Vec<u64> = (1..reopened.next_index()).collect();
            assert_eq!(
                indices,
                expected,
                "seed {seed} step {step}: not contiguous ({})",
                replay(seed)
            );
            for (index, payload) in &acked {
                assert_eq!(
                    state.get(index),
                    Some(payload),
                    "seed {seed} step {step}: acknowledged record {index} lost ({})",
                    replay(seed)
                );
            }
            for (index, payload) in &state {
                assert_eq!(
                    written.get(index),
                    Some(payload),
                    "seed {seed} step {step}: record {index} was never written ({})",
                    replay(seed)
                );
            }
            trace.push((
                reopened.next_index(),
                recovered.records.len(),
                recovered.summary.torn_tail.as_ref().map(|t| t.offset),
            ));
            acked = state.clone();
            written = state;
            log = reopened;
            continue;
        }
        match roll {
            8..=11 => sim.fail_writes(1),
            12..=13 => sim.fail_syncs(1),
            14..=16 => sim.set_capacity(Some(sim.used_bytes() + rng.random_range(0..300))),
            17..=19 => sim.set_capacity(None),
            20..=24 => {
                let position = log.next_index();
                let below: Vec<(u64, Vec<u8>)> = written
                    .range(..position)
                    .map(|(i, p)| (*i, p.clone()))
                    .collect();
                let before = written.clone();
                if log
                    .snapshot(position, &codec::encode(&below).unwrap())
                    .is_ok()
                {
                    acked = before;
                }
            }
            25..=44 => {
                if log.sync().is_ok() {
                    acked = written.clone();
                }
            }
            _ => {
                let count = rng.random_range(1..=4);
                let payloads: Vec<Vec<u8>> = (0..count)
                    .map(|_| {
                        let len = rng.random_range(0..120);
                        (0..len).map(|_| rng.random()).collect()
                    })
                    .collect();
                if let Ok(range) = log.append(&payloads) {
                    for (index, payload) in range.zip(payloads) {
                        written.insert(index, payload);
                    }
                }
            }
        }
    }
    trace
}

/// The line that replays one seed of [`random_run`].
fn replay(seed: u64) -> String {
    format!("replay: STORAGE_SEED={seed} cargo test -p storage --test faults_sim random_faults")
}

#[test]
fn random_faults_and_crashes_never_lose_an_acknowledged_record() {
    let count: u64 = std::env::var("STORAGE_SEEDS")
        .map(|n| n.parse().expect("STORAGE_SEEDS is a number"))
        .unwrap_or(300);
    let seeds: Vec<u64> = match std::env::var("STORAGE_SEED") {
        Ok(seed) => vec![seed.parse().expect("STORAGE_SEED is a number")],
        Err(_) => (0..count).collect(),
    };
    let mut crashes_with_a_cut = 0;
    for &seed in &seeds {
        let trace = random_run(seed, 200);
        crashes_with_a_cut += trace.iter().filter(|t| t.2.is_some()).count();
    }
    println!(
        "{} seeds; {crashes_with_a_cut} recoveries cut a torn tail",
        seeds.len()
    );
    assert!(crashes_with_a_cut > 0, "torn tails were exercised");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    for seed in [1, 77, 4242] {
        assert_eq!(random_run(seed, 300), random_run(seed, 300), "seed {seed}");
    }
}

/// A fixed workload that crosses every step of the write order: segment creation and
/// rolls, grouped appends and syncs, snapshots and the removal of segments below them.
/// Returns what was acknowledged before the first error (the power cut).
fn workload(sim: &SimFs, written: &mut BTreeMap<u64, Vec<u8>>) -> BTreeMap<u64, Vec<u8>> {
    let small = Options {
        segment_bytes: 300,
        ..options()
    };
    let mut acked = BTreeMap::new();
    let Ok((mut log, _)) = Log::open(sim.clone(), DIR, identity(), small) else {
        return acked;
    };
    for round in 0..12u64 {
        // Two appends of varying sizes per sync, so a segment fills up with records
        // still unsynced as well as with none.
        for half in 0..2 {
            let first = log.next_index();
            let count = 1 + (round + half) % 3;
            let batch: Vec<Vec<u8>> = (first..first + count).map(payload).collect();
            let Ok(range) = log.append(&batch) else {
                return acked;
            };
            for (index, payload) in range.zip(batch) {
                written.insert(index, payload);
            }
        }
        if log.sync().is_err() {
            return acked;
        }
        acked = written.clone();
        if round % 4 == 3 {
            let position = log.next_index();
            let below: Vec<(u64, Vec<u8>)> = written.iter().map(|(i, p)| (*i, p.clone())).collect();
            if log
                .snapshot(position, &codec::encode(&below).unwrap())
                .is_err()
            {
                return acked;
            }
        }
    }
    acked
}

#[test]
fn a_power_cut_between_any_two_disk_operations_loses_nothing_acknowledged() {
    let full = SimFs::new(0);
    workload(&full, &mut BTreeMap::new());
    let operations = full.operations();
    assert!(operations > 50, "the workload does real work: {operations}");
    for cut in 0..=operations {
        for tear in [false, true] {
            let sim = SimFs::new(cut);
            sim.set_tear_on_crash(tear);
            sim.power_cut_after(cut);
            let mut written = BTreeMap::new();
            let acked = workload(&sim, &mut written);
            sim.crash();
            let context = format!("power cut after operation {cut} of {operations}, tear {tear}");
            let (log, recovered) = Log::open(sim.clone(), DIR, identity(), options())
                .unwrap_or_else(|err| panic!("{context}: restart refused: {err}"));
            let state = state_of(&recovered);
            let indices: Vec<u64> = state.keys().copied().collect();
            assert_eq!(
                indices,
                (1..log.next_index()).collect::<Vec<_>>(),
                "{context}: not contiguous"
            );
            for (index, payload) in &acked {
                assert_eq!(
                    state.get(index),
                    Some(payload),
                    "{context}: record {index} lost"
                );
            }
            for (index, payload) in &state {
                assert_eq!(
                    written.get(index),
                    Some(payload),
                    "{context}: record {index} invented"
                );
            }
        }
    }
}
