//! Recovery on real files: round trip, torn tails cut and reported, damage and strangers
//! refused with one line naming the file and byte offset, snapshots and truncation.

mod common;

use std::fs::{self, OpenOptions};

use common::*;
use storage::{Error, Identity, Log, Options, RealFs, payload as codec};

#[test]
fn records_round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 100);
    let (log, recovered) = open_real(dir.path()).unwrap();
    let indices: Vec<u64> = recovered.records.iter().map(|r| r.index).collect();
    assert_eq!(indices, (1..=100).collect::<Vec<_>>());
    for record in &recovered.records {
        assert_eq!(record.payload, payload(record.index));
    }
    assert!(!recovered.summary.fresh);
    assert_eq!(recovered.summary.torn_tail, None);
    assert_eq!(log.next_index(), 101);
}

#[test]
fn serde_values_round_trip() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    enum Entry {
        Promise {
            instance: u64,
            ballot: (u64, String),
        },
        Accepted {
            instance: u64,
            value: Vec<u8>,
        },
    }
    let dir = tempfile::tempdir().unwrap();
    let entries = vec![
        Entry::Promise {
            instance: 7,
            ballot: (3, "s2".into()),
        },
        Entry::Accepted {
            instance: 7,
            value: b"put k v".to_vec(),
        },
    ];
    {
        let (mut log, _) = open_real(dir.path()).unwrap();
        let payloads: Vec<Vec<u8>> = entries.iter().map(|e| codec::encode(e).unwrap()).collect();
        log.append_durable(&payloads).unwrap();
    }
    let (_, recovered) = open_real(dir.path()).unwrap();
    let back: Vec<Entry> = recovered
        .records
        .iter()
        .map(|r| r.decode().unwrap())
        .collect();
    assert_eq!(back, entries);
    // Bytes that do not decode are an error, not a panic.
    let cut = &recovered.records[1].payload[..3];
    assert!(matches!(
        codec::decode::<Entry>(cut),
        Err(Error::Payload(_))
    ));
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 10);
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = fs::read(&segment).unwrap();
    let last = *frame_offsets(&bytes, header_len()).last().unwrap();
    // A crash in the middle of the last append: half of its bytes reached the disk.
    let cut_at = last + (bytes.len() - last) / 2;
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(cut_at as u64)
        .unwrap();

    let (mut log, recovered) = open_real(dir.path()).unwrap();
    assert_eq!(recovered.records.len(), 9);
    let torn = recovered
        .summary
        .torn_tail
        .clone()
        .expect("torn tail reported");
    assert_eq!(torn.file, segment);
    assert_eq!(torn.offset, last as u64);
    assert_eq!(torn.discarded_bytes, (cut_at - last) as u64);
    assert!(torn.reason.contains("incomplete"), "{}", torn.reason);
    assert_eq!(fs::metadata(&segment).unwrap().len(), last as u64, "cut");
    // The log carries on after the cut, at the index of the lost record.
    assert_eq!(log.append_durable(&[b"after"]).unwrap(), 10..11);
    drop(log);
    let (_, again) = open_real(dir.path()).unwrap();
    assert_eq!(again.summary.torn_tail, None);
    assert_eq!(again.records.len(), 10);
    assert_eq!(again.records[9].payload, b"after");
}

#[test]
fn zero_filled_tail_is_a_torn_tail() {
    // After a crash a file can be longer than its data: the tail reads as zeros.
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 5);
    let segment = segments(dir.path()).pop().unwrap();
    let len = fs::metadata(&segment).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len + 4096)
        .unwrap();
    let (_, recovered) = open_real(dir.path()).unwrap();
    assert_eq!(recovered.records.len(), 5);
    let torn = recovered.summary.torn_tail.expect("zeros reported as torn");
    assert_eq!((torn.offset, torn.discarded_bytes), (len, 4096));
}

fn flip_bit(path: &std::path::Path, offset: usize, bit: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 1 << bit;
    fs::write(path, bytes).unwrap();
}

#[test]
fn flipped_bit_mid_log_is_refused_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 10);
    let segment = segments(dir.path()).pop().unwrap();
    let offsets = frame_offsets(&fs::read(&segment).unwrap(), header_len());
    let fifth = offsets[4];
    flip_bit(&segment, fifth + 16 + 3, 5); // inside record 5's payload

    let err = open_real(dir.path()).err().expect("refused");
    match &err {
        Error::Corrupt { file, offset, .. } => {
            assert_eq!(file, &segment);
            assert_eq!(*offset, fifth as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = err.to_string();
    assert_one_line(&message);
    assert!(
        message.contains(&segment.display().to_string()),
        "{message}"
    );
    assert!(message.contains(&format!("byte {fifth}")), "{message}");
    // Refusing changed nothing: the damaged file is kept for the operator.
    assert_eq!(
        frame_offsets(&fs::read(&segment).unwrap(), header_len()),
        offsets
    );
}

#[test]
fn flipped_bit_in_a_length_field_mid_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 10);
    let segment = segments(dir.path()).pop().unwrap();
    let offsets = frame_offsets(&fs::read(&segment).unwrap(), header_len());
    flip_bit(&segment, offsets[2] + 1, 0);
    let err = open_real(dir.path()).err().expect("refused");
    assert!(
        matches!(&err, Error::Corrupt { offset, .. } if *offset == offsets[2] as u64),
        "{err}"
    );
}

#[test]
fn flipped_bit_in_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 10);
    let segment = segments(dir.path()).pop().unwrap();
    let offsets = frame_offsets(&fs::read(&segment).unwrap(), header_len());
    flip_bit(&segment, offsets[9] + 20, 1);
    let (_, recovered) = open_real(dir.path()).unwrap();
    assert_eq!(recovered.records.len(), 9);
    let torn = recovered.summary.torn_tail.expect("torn tail");
    assert_eq!(torn.offset, offsets[9] as u64);
    assert!(torn.reason.contains("checksum"), "{}", torn.reason);
}

#[test]
fn flipped_bit_in_the_next_to_last_record_is_refused() {
    // The damaged record is followed by a valid one: not a crash, corruption.
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 10);
    let segment = segments(dir.path()).pop().unwrap();
    let offsets = frame_offsets(&fs::read(&segment).unwrap(), header_len());
    flip_bit(&segment, offsets[8] + 20, 1);
    let err = open_real(dir.path()).err().expect("refused");
    let message = err.to_string();
    assert!(
        matches!(&err, Error::Corrupt { offset, .. } if *offset == offsets[8] as u64),
        "{message}"
    );
    assert!(
        message.contains(&format!("valid record follows at byte {}", offsets[9])),
        "{message}"
    );
}

#[test]
fn another_nodes_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 3);
    let temp = dir.path().join("snap-00000000000000000003.snap.tmp");
    fs::write(&temp, b"s1's half-written snapshot").unwrap();
    let err = Log::open(
        RealFs,
        dir.path(),
        Identity::new("s2", "cluster-a"),
        options(),
    )
    .err()
    .expect("refused");
    let message = err.to_string();
    assert!(
        matches!(err, Error::WrongNode { offset: 36, .. }),
        "{message}"
    );
    assert_one_line(&message);
    assert!(message.contains("byte 36"), "{message}");
    assert!(
        message.contains("\"s1\"") && message.contains("\"s2\""),
        "{message}"
    );
    assert!(message.contains(&segments(dir.path())[0].display().to_string()));
    assert!(
        temp.exists(),
        "a refused data dir is left exactly as it was"
    );
}

#[test]
fn another_clusters_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 3);
    let err = Log::open(
        RealFs,
        dir.path(),
        Identity::new("s1", "cluster-b"),
        options(),
    )
    .err()
    .expect("refused");
    let message = err.to_string();
    assert!(matches!(err, Error::WrongCluster { .. }), "{message}");
    assert!(
        message.contains("cluster \"cluster-a\", not \"cluster-b\""),
        "{message}"
    );
    assert_one_line(&message);
}

#[test]
fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 3);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    fs::write(&segment, bytes).unwrap();
    let err = open_real(dir.path()).err().expect("refused");
    let message = err.to_string();
    assert!(
        matches!(
            err,
            Error::UnknownVersion {
                found: 7,
                supported: 1,
                offset: 8,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("byte 8: unknown format version 7"),
        "{message}"
    );
    assert_one_line(&message);
}

#[test]
fn missing_or_non_directory_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let no_create = Options::default();
    let err = Log::open(RealFs, &missing, identity(), no_create.clone())
        .err()
        .expect("missing refused");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!missing.exists());

    let file = dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let err = Log::open(RealFs, &file, identity(), no_create)
        .err()
        .expect("file refused");
    assert!(err.to_string().contains("is not a directory"), "{err}");
    assert_one_line(&err.to_string());

    // With create_dir, a missing dir is made.
    let (_, recovered) = open_real(&missing).unwrap();
    assert!(recovered.summary.fresh && missing.is_dir());
}

#[test]
fn snapshot_truncates_the_log_and_recovery_starts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let small = Options {
        segment_bytes: 300,
        ..options()
    };
    let (mut log, _) = Log::open(RealFs, dir.path(), identity(), small.clone()).unwrap();
    for index in 1..=60 {
        log.append_durable(&[payload(index)]).unwrap();
    }
    let before = segments(dir.path());
    assert!(before.len() > 5, "small segments roll: {}", before.len());

    let outcome = log.snapshot(40, b"state below 40").unwrap();
    assert!(outcome.segments_removed > 0);
    let after = segments(dir.path());
    assert_eq!(
        before.len() - after.len(),
        outcome.segments_removed as usize
    );
    assert_eq!(log.stats().segments_removed, outcome.segments_removed);
    // Every segment left holds a record at or above 40: none wholly below it was kept,
    // and the one holding 40 was not removed.
    let firsts: Vec<u64> = after
        .iter()
        .map(|p| {
            p.file_stem().unwrap().to_str().unwrap()[4..]
                .parse()
                .unwrap()
        })
        .collect();
    assert!(firsts[0] <= 40 && firsts.get(1).is_none_or(|&second| second > 40));

    for index in 61..=65 {
        log.append_durable(&[payload(index)]).unwrap();
    }
    drop(log);

    let (mut log, recovered) = Log::open(RealFs, dir.path(), identity(), small.clone()).unwrap();
    let snapshot = recovered.snapshot.expect("snapshot loaded");
    assert_eq!(snapshot.position, 40);
    assert_eq!(snapshot.payload, b"state below 40");
    let indices: Vec<u64> = recovered.records.iter().map(|r| r.index).collect();
    assert_eq!(indices, (40..=65).collect::<Vec<_>>());
    assert!(
        recovered
            .records
            .iter()
            .all(|r| r.payload == payload(r.index))
    );

    // A second snapshot replaces the first file.
    log.snapshot(66, b"state below 66").unwrap();
    let snaps: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".snap"))
        .collect();
    assert_eq!(snaps, vec![format!("snap-{:020}.snap", 66)]);
    drop(log);
    let (log, recovered) = Log::open(RealFs, dir.path(), identity(), small).unwrap();
    assert_eq!(recovered.snapshot.unwrap().position, 66);
    assert!(recovered.records.is_empty());
    assert_eq!(log.next_index(), 66);
}

#[test]
fn damaged_newest_snapshot_without_the_log_below_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let small = Options {
        segment_bytes: 200,
        ..options()
    };
    let (mut log, _) = Log::open(RealFs, dir.path(), identity(), small.clone()).unwrap();
    for index in 1..=30 {
        log.append_durable(&[payload(index)]).unwrap();
    }
    log.snapshot(25, b"the state").unwrap();
    drop(log);
    let snap = dir.path().join(format!("snap-{:020}.snap", 25));
    let len = fs::read(&snap).unwrap().len();
    flip_bit(&snap, len - 2, 0);
    let err = Log::open(RealFs, dir.path(), identity(), small)
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        matches!(&err, Error::Corrupt { file, .. } if *file == snap),
        "{message}"
    );
    assert!(
        message.contains("snapshot payload checksum mismatch"),
        "{message}"
    );
}

#[test]
fn leftover_temp_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 2);
    let temp = dir.path().join(format!("snap-{:020}.snap.tmp", 2));
    fs::write(&temp, b"half a snapshot").unwrap();
    let (_, recovered) = open_real(dir.path()).unwrap();
    assert_eq!(recovered.summary.removed_temp_files, vec![temp.clone()]);
    assert!(!temp.exists());
    assert_eq!(recovered.snapshot, None);
    assert_eq!(recovered.records.len(), 2);
}

#[test]
fn damage_in_a_closed_segment_is_refused_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let small = Options {
        segment_bytes: 200,
        ..options()
    };
    let (mut log, _) = Log::open(RealFs, dir.path(), identity(), small.clone()).unwrap();
    for index in 1..=20 {
        log.append_durable(&[payload(index)]).unwrap();
    }
    drop(log);
    let first = segments(dir.path())[0].clone();
    let bytes = fs::read(&first).unwrap();
    let last = *frame_offsets(&bytes, header_len()).last().unwrap();
    flip_bit(&first, last + 17, 2);
    let err = Log::open(RealFs, dir.path(), identity(), small)
        .err()
        .expect("refused");
    assert!(
        matches!(&err, Error::Corrupt { file, offset, .. } if *file == first && *offset == last as u64),
        "{err}"
    );
    assert!(err.to_string().contains("closed segment"), "{err}");
}
