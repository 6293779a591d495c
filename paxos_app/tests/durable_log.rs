//! The Paxos peer's durable log on real files: a peer restored from it after the log was
//! closed keeps its promises and acceptances (a lower ballot is refused, the accepted
//! value is still there), the storage thread calls back only after an fsync, and a raised
//! forgetting floor becomes a snapshot that a restart reads instead of the old records.

use paxos_app::PaxosLog;
use paxos_app::core::{Ballot, Body, Message, Peer, PeerConfig, Record, Role};
use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::time::Duration;
use storage::Identity;

fn fresh_dir(what: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{what}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn identity() -> Identity {
    Identity::new("s2", "test-cluster")
}

fn from(peer: usize, body: Body<u32>) -> Message<u32> {
    Message {
        from: peer,
        done: 0,
        max: 0,
        min: 0,
        body,
    }
}

/// Persists `records` and waits for the storage thread's callback.
fn persist(log: &mut PaxosLog<u32>, records: &[Record<u32>]) {
    let (tx, rx) = channel();
    log.persist_then(
        records,
        Box::new(move |result| {
            let _ = tx.send(result.map_err(|e| e.to_string()));
        }),
    );
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the storage thread calls back")
        .expect("durable");
}

#[test]
fn a_peer_restored_from_its_log_keeps_its_promises_and_acceptances() {
    let dir = fresh_dir("paxos-log-promises");
    let high = Ballot::new(5, 2);
    {
        let opened = PaxosLog::<u32>::open(&dir, identity()).expect("open a fresh log");
        assert!(opened.records.is_empty() && opened.summary.fresh);
        let mut log = opened.log;
        let mut peer: Peer<u32> = Peer::new(PeerConfig::new(1, 3));
        peer.step(
            Role::Acceptor,
            from(
                2,
                Body::Prepare {
                    seq: 1,
                    ballot: high,
                },
            ),
            0,
        );
        peer.step(
            Role::Acceptor,
            from(
                2,
                Body::Accept {
                    seq: 2,
                    ballot: high,
                    value: 22,
                },
            ),
            0,
        );
        let ready = peer.take_ready();
        assert_eq!(ready.persist.len(), 2, "{:?}", ready.persist);
        persist(&mut log, &ready.persist);
        let stats = log.stats();
        assert!(
            stats.log_fsyncs >= 1 && stats.records_durable == 2,
            "{stats:?}"
        );
    }

    let opened = PaxosLog::<u32>::open(&dir, identity()).expect("reopen");
    assert_eq!(opened.summary.records_replayed, 2);
    let mut restored = Peer::restore(PeerConfig::new(1, 3), opened.records);
    let low = Ballot::new(4, 0);
    restored.step(
        Role::Acceptor,
        from(
            0,
            Body::Prepare {
                seq: 1,
                ballot: low,
            },
        ),
        0,
    );
    restored.step(
        Role::Acceptor,
        from(
            0,
            Body::Prepare {
                seq: 2,
                ballot: low,
            },
        ),
        0,
    );
    let replies: Vec<Body<u32>> = restored
        .take_ready()
        .messages
        .into_iter()
        .map(|o| o.msg.body)
        .collect();
    assert_eq!(
        replies,
        vec![
            Body::Reject {
                seq: 1,
                ballot: low,
                promised: high
            },
            Body::Reject {
                seq: 2,
                ballot: low,
                promised: high
            },
        ]
    );
    assert_eq!(restored.acceptor().accepted(2), Some(&(high, 22)));

    // A log of another node is refused.
    drop(opened.log);
    let err = PaxosLog::<u32>::open(&dir, Identity::new("s3", "test-cluster"))
        .err()
        .expect("another node's dir is refused");
    assert!(err.to_string().contains("wal-"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_raised_floor_compacts_the_log_into_a_snapshot() {
    let dir = fresh_dir("paxos-log-compaction");
    let b = Ballot::new(1, 0);
    {
        let mut log = PaxosLog::<u32>::open(&dir, identity())
            .expect("open")
            .log
            .snapshot_every(1);
        persist(
            &mut log,
            &[
                Record::Promised { seq: 1, ballot: b },
                Record::Accepted {
                    seq: 2,
                    ballot: b,
                    value: 7,
                },
                Record::Accepted {
                    seq: 3,
                    ballot: b,
                    value: 8,
                },
            ],
        );
        persist(&mut log, &[Record::Forgotten { below: 3 }]);
        // The snapshot is queued after the append: one more append waits for both.
        persist(&mut log, &[Record::RoundsReserved { up_to: 10 }]);
        assert_eq!(log.stats().snapshots, 1);
    }
    let opened = PaxosLog::<u32>::open(&dir, identity()).expect("reopen");
    assert_eq!(opened.summary.snapshot_position, 5, "{:?}", opened.summary);
    assert_eq!(
        opened.records,
        vec![
            Record::Accepted {
                seq: 3,
                ballot: b,
                value: 8
            },
            Record::Forgotten { below: 3 },
            Record::RoundsReserved { up_to: 10 },
        ],
        "instances below the floor are gone, the rest is kept in order"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
