//! Storage faults on real file systems made for the test: a tmpfs mounted read-only, and
//! a tiny tmpfs that fills up. Mounting needs root (the test suite runs as root here and
//! in CI); without it each test says so and stops early.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use storage::{Error, Log, Options, RealFs};

/// A tmpfs mounted for one test, unmounted when dropped (even if the test panics).
struct Mount {
    point: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(options: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("mnt");
        std::fs::create_dir(&point).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&point)
            .status();
        match status {
            Ok(status) if status.success() => Some(Mount { point, _dir: dir }),
            other => {
                eprintln!("SKIPPED: cannot mount a tmpfs here (needs root): {other:?}");
                None
            }
        }
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.point)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }

    fn path(&self) -> &Path {
        &self.point
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.point).status();
    }
}

#[test]
fn a_read_only_mount_is_refused_at_open() {
    let Some(mount) = Mount::tmpfs("size=1m") else {
        return;
    };
    let dir = mount.path().join("s1");
    write_records(&dir, 3);
    mount.remount("ro");
    // Root ignores permission bits, not a read-only mount.
    let err = open_real(&dir).err().expect("read-only refused");
    let message = err.to_string();
    assert!(matches!(err, Error::DataDir { .. }), "{message}");
    assert!(message.contains("not writable"), "{message}");
    assert!(message.contains("Read-only file system"), "{message}");
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert_one_line(&message);
    mount.remount("rw");
    let (_, recovered) = open_real(&dir).unwrap();
    assert_eq!(recovered.records.len(), 3, "refusing changed nothing");
}

#[test]
fn a_full_tmpfs_fails_the_append_cleanly_and_reopen_sees_the_acknowledged_records() {
    let Some(mount) = Mount::tmpfs("size=64k") else {
        return;
    };
    let dir = mount.path().join("s1");
    let (mut log, _) = Log::open(RealFs, &dir, identity(), options()).unwrap();
    let record = vec![0x5A; 1000];
    let mut acknowledged = 0;
    let segment = segments(&dir).pop().unwrap();
    let mut good_len = 0;
    let err = loop {
        match log.append_durable(std::slice::from_ref(&record)) {
            Ok(range) => {
                acknowledged = range.end - 1;
                good_len = std::fs::metadata(&segment).unwrap().len();
            }
            Err(err) => break err,
        }
        assert!(acknowledged < 1000, "64 KiB never filled up");
    };
    let message = err.to_string();
    assert!(
        matches!(
            err,
            Error::Write {
                kind: io::ErrorKind::StorageFull,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("No space left on device"), "{message}");
    assert_one_line(&message);
    assert!(acknowledged > 10, "{acknowledged}");
    assert_eq!(log.stats().write_errors, 1);
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        good_len,
        "the partial record was cut back"
    );
    // Still full: fails again, cleanly, and the log is not poisoned.
    assert!(log.append_durable(std::slice::from_ref(&record)).is_err());
    assert!(log.poisoned().is_none());
    drop(log);

    // Restarting on the full disk is refused, with the reason.
    let refused = open_real(&dir).err().expect("a full data dir is refused");
    assert!(refused.to_string().contains("is full"), "{refused}");
    // The operator frees space; the node starts with exactly what was acknowledged.
    mount.remount("size=1m");
    let (_, recovered) = Log::open(RealFs, &dir, identity(), Options::default()).unwrap();
    assert_eq!(recovered.records.len() as u64, acknowledged);
    assert_eq!(recovered.summary.torn_tail, None, "no corrupt file left");
}
