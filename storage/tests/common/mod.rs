//! Helpers shared by the storage tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use storage::{Identity, Log, Options, RealFs, Recovered, Result};

pub fn identity() -> Identity {
    Identity::new("s1", "cluster-a")
}

pub fn options() -> Options {
    Options {
        create_dir: true,
        ..Options::default()
    }
}

/// A payload that differs per index, so a record in the wrong place is noticed.
pub fn payload(index: u64) -> Vec<u8> {
    let len = 8 + (index * 7919 % 90) as usize;
    (0..len)
        .map(|i| (index as usize * 31 + i * 17) as u8)
        .collect()
}

pub fn open_real(dir: &Path) -> Result<(Log<RealFs>, Recovered)> {
    Log::open(RealFs, dir, identity(), options())
}

/// Appends records `1..=n` durably to a fresh log in `dir`, in batches of 3.
pub fn write_records(dir: &Path, n: u64) {
    let (mut log, recovered) = open_real(dir).expect("open");
    assert!(recovered.summary.fresh);
    let all: Vec<Vec<u8>> = (1..=n).map(payload).collect();
    for chunk in all.chunks(3) {
        log.append_durable(chunk).expect("append");
    }
}

/// The log segments in a directory, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    found.sort();
    found
}

/// Byte offsets where each record frame starts in a segment (header length given by
/// the first frame: records are found by walking the frames).
pub fn frame_offsets(bytes: &[u8], header_len: usize) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = header_len;
    while at + 16 <= bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 16 + len;
    }
    offsets
}

/// The header length of a segment written for [`identity`].
pub fn header_len() -> usize {
    36 + 2 + identity().node.len() + 2 + identity().cluster.len() + 4
}

pub fn assert_one_line(message: &str) {
    assert!(!message.contains('\n'), "not one line: {message}");
}
