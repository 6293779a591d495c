//! The bytes on disk: the segment header, the record frame and the snapshot header
//! (drawn in docs/storage.md). Encoding is pure; decoding checks everything and says
//! what is wrong and at which offset, leaving to the caller whether that is a torn tail
//! or corruption.

use std::path::Path;

use crate::error::{Error, show_name};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The first bytes of a log segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"PXKV-WAL";
/// The first bytes of a snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"PXKV-SNP";
/// Bytes of a record frame before its payload: length, checksum, index.
pub const FRAME_HEADER_LEN: usize = 16;

/// Who owns a data dir: the node's name and the cluster's identity, both as bytes. Every
/// file records them and a node refuses files that are not its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub node: Vec<u8>,
    pub cluster: Vec<u8>,
}

impl Identity {
    pub fn new(node: impl Into<Vec<u8>>, cluster: impl Into<Vec<u8>>) -> Identity {
        Identity {
            node: node.into(),
            cluster: cluster.into(),
        }
    }
}

fn crc(parts: &[&[u8]]) -> u32 {
    parts
        .iter()
        .fold(0, |acc, part| crc32c::crc32c_append(acc, part))
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The common header of segments and snapshots:
///
/// ```text
/// 0   magic        8 bytes
/// 8   version      u32
/// 12  header_len   u32   (all of the header, checksum included)
/// 16  position     u64   (segment: index of its first record; snapshot: records below it are in it)
/// 24  body_len     u64   (snapshot: payload length; segment: 0)
/// 32  body_crc     u32   (snapshot: CRC-32C of the payload; segment: 0)
/// 36  node_len     u16, node bytes
/// ..  cluster_len  u16, cluster bytes
/// ..  header_crc   u32   (CRC-32C of every header byte before it)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    pub position: u64,
    pub body_len: u64,
    pub body_crc: u32,
}

const FIXED_HEADER_LEN: usize = 36;
const NODE_FIELD_OFFSET: u64 = FIXED_HEADER_LEN as u64;

/// Encodes a file header.
pub fn encode_header(magic: [u8; 8], identity: &Identity, header: &FileHeader) -> Vec<u8> {
    let node = &identity.node[..identity.node.len().min(u16::MAX as usize)];
    let cluster = &identity.cluster[..identity.cluster.len().min(u16::MAX as usize)];
    let len = FIXED_HEADER_LEN + 2 + node.len() + 2 + cluster.len() + 4;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&header.position.to_le_bytes());
    out.extend_from_slice(&header.body_len.to_le_bytes());
    out.extend_from_slice(&header.body_crc.to_le_bytes());
    out.extend_from_slice(&(node.len() as u16).to_le_bytes());
    out.extend_from_slice(node);
    out.extend_from_slice(&(cluster.len() as u16).to_le_bytes());
    out.extend_from_slice(cluster);
    let sum = crc(&[&out]);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Decodes and checks a file header: magic, version, checksum, then identity, in that
/// order (a newer version may lay the rest out differently; a damaged header must be
/// reported as damage, not as a stranger). Returns the header and its length.
pub fn decode_header(
    file: &Path,
    bytes: &[u8],
    magic: [u8; 8],
    identity: &Identity,
) -> Result<(FileHeader, usize), Error> {
    let what = if magic == SEGMENT_MAGIC {
        "log segment"
    } else {
        "snapshot"
    };
    if bytes.len() < 12 {
        return Err(Error::corrupt(
            file,
            0,
            format!("{} bytes is too short for a {what} header", bytes.len()),
        ));
    }
    if bytes[..8] != magic {
        return Err(Error::corrupt(
            file,
            0,
            format!("not a paxoskv {what} (magic {:?})", show_name(&bytes[..8])),
        ));
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(Error::UnknownVersion {
            file: file.to_path_buf(),
            offset: 8,
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < FIXED_HEADER_LEN + 8 {
        return Err(Error::corrupt(
            file,
            0,
            format!("{} bytes is too short for a {what} header", bytes.len()),
        ));
    }
    let len = u32_at(bytes, 12) as usize;
    if len < FIXED_HEADER_LEN + 8 || len > bytes.len() {
        return Err(Error::corrupt(
            file,
            12,
            format!(
                "header length {len} does not fit the file of {} bytes",
                bytes.len()
            ),
        ));
    }
    let stored = u32_at(bytes, len - 4);
    if crc(&[&bytes[..len - 4]]) != stored {
        return Err(Error::corrupt(
            file,
            0,
            format!("{what} header checksum mismatch"),
        ));
    }
    // The checksum holds, so the length fields inside are the ones that were written.
    let node_len = u16_at(bytes, FIXED_HEADER_LEN) as usize;
    let node_at = FIXED_HEADER_LEN + 2;
    let cluster_len_at = node_at + node_len;
    if cluster_len_at + 2 > len - 4 {
        return Err(Error::corrupt(
            file,
            NODE_FIELD_OFFSET,
            "bad node name length",
        ));
    }
    let cluster_len = u16_at(bytes, cluster_len_at) as usize;
    let cluster_at = cluster_len_at + 2;
    if cluster_at + cluster_len != len - 4 {
        return Err(Error::corrupt(
            file,
            cluster_len_at as u64,
            "bad cluster identity length",
        ));
    }
    let node = &bytes[node_at..node_at + node_len];
    let cluster = &bytes[cluster_at..cluster_at + cluster_len];
    if cluster != identity.cluster.as_slice() {
        return Err(Error::WrongCluster {
            file: file.to_path_buf(),
            offset: cluster_len_at as u64,
            found: show_name(cluster),
            expected: show_name(&identity.cluster),
        });
    }
    if node != identity.node.as_slice() {
        return Err(Error::WrongNode {
            file: file.to_path_buf(),
            offset: NODE_FIELD_OFFSET,
            found: show_name(node),
            expected: show_name(&identity.node),
        });
    }
    Ok((
        FileHeader {
            position: u64_at(bytes, 16),
            body_len: u64_at(bytes, 24),
            body_crc: u32_at(bytes, 32),
        },
        len,
    ))
}

/// The CRC-32C of a snapshot payload.
pub fn body_crc(body: &[u8]) -> u32 {
    crc(&[body])
}

/// Appends one record frame to `out`:
///
/// ```text
/// 0   payload_len  u32
/// 4   crc          u32   CRC-32C of bytes 0..4, 8..16 and the payload
/// 8   index        u64   the record's position in the log
/// 16  payload      payload_len bytes
/// ```
pub fn encode_frame(out: &mut Vec<u8>, index: u64, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    let index = index.to_le_bytes();
    let sum = crc(&[&len, &index, payload]);
    out.extend_from_slice(&len);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(payload);
}

/// Why the bytes at an offset are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadFrame {
    /// The file ends inside the frame.
    Incomplete { needed: usize, have: usize },
    /// The length is larger than any record may be.
    TooLong { len: u32 },
    /// The checksum does not match.
    Checksum,
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFrame::Incomplete { needed, have } => write!(
                f,
                "incomplete record ({have} of {needed} bytes before the end of the file)"
            ),
            BadFrame::TooLong { len } => write!(f, "record length {len} is beyond the maximum"),
            BadFrame::Checksum => write!(f, "record checksum mismatch"),
        }
    }
}

/// A frame that checks out: its index and the range of its payload in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub index: u64,
    pub payload: std::ops::Range<usize>,
    pub end: usize,
}

/// Decodes the frame starting at `at`.
pub fn decode_frame(bytes: &[u8], at: usize, max_record: u32) -> Result<Frame, BadFrame> {
    let have = bytes.len().saturating_sub(at);
    if have < FRAME_HEADER_LEN {
        return Err(BadFrame::Incomplete {
            needed: FRAME_HEADER_LEN,
            have,
        });
    }
    let len = u32_at(bytes, at);
    if len > max_record {
        return Err(BadFrame::TooLong { len });
    }
    let needed = FRAME_HEADER_LEN + len as usize;
    if have < needed {
        return Err(BadFrame::Incomplete { needed, have });
    }
    let stored = u32_at(bytes, at + 4);
    let payload = at + FRAME_HEADER_LEN..at + needed;
    if crc(&[
        &bytes[at..at + 4],
        &bytes[at + 8..at + 16],
        &bytes[payload.clone()],
    ]) != stored
    {
        return Err(BadFrame::Checksum);
    }
    Ok(Frame {
        index: u64_at(bytes, at + 8),
        payload,
        end: at + needed,
    })
}

/// The first offset after `from` where a valid frame with an index above `after_index`
/// starts, if any. Recovery uses it to tell a torn tail (nothing valid follows the bad
/// record) from corruption in the middle of the log (something valid follows).
pub fn find_valid_frame_after(
    bytes: &[u8],
    from: usize,
    after_index: u64,
    max_record: u32,
) -> Option<usize> {
    (from..bytes.len().saturating_sub(FRAME_HEADER_LEN - 1)).find(
        |&at| matches!(decode_frame(bytes, at, max_record), Ok(frame) if frame.index > after_index),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity::new("s1", "cluster-a")
    }

    #[test]
    fn header_round_trip() {
        let header = FileHeader {
            position: 42,
            body_len: 7,
            body_crc: 9,
        };
        let bytes = encode_header(SEGMENT_MAGIC, &id(), &header);
        let (back, len) = decode_header(Path::new("f"), &bytes, SEGMENT_MAGIC, &id()).unwrap();
        assert_eq!(back, header);
        assert_eq!(len, bytes.len());
    }

    #[test]
    fn every_flipped_header_bit_is_refused() {
        let bytes = encode_header(
            SEGMENT_MAGIC,
            &id(),
            &FileHeader {
                position: 1,
                body_len: 0,
                body_crc: 0,
            },
        );
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_header(Path::new("f"), &damaged, SEGMENT_MAGIC, &id()).is_err(),
                "bit {bit} flipped went unnoticed"
            );
        }
    }

    #[test]
    fn frame_round_trip_and_every_flipped_bit_is_caught() {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, 5, b"hello");
        let frame = decode_frame(&bytes, 0, 1024).unwrap();
        assert_eq!(frame.index, 5);
        assert_eq!(&bytes[frame.payload.clone()], b"hello");
        assert_eq!(frame.end, bytes.len());
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_frame(&damaged, 0, 1024).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn zeros_are_not_a_frame() {
        // A crash can leave a zero-filled tail (the size grew, the data never came).
        let zeros = vec![0u8; 64];
        assert_eq!(decode_frame(&zeros, 0, 1024), Err(BadFrame::Checksum));
        assert_eq!(find_valid_frame_after(&zeros, 0, 0, 1024), None);
    }

    #[test]
    fn a_valid_frame_after_garbage_is_found() {
        let mut bytes = vec![0xAB; 23];
        encode_frame(&mut bytes, 9, b"x");
        assert_eq!(find_valid_frame_after(&bytes, 0, 8, 1024), Some(23));
        assert_eq!(find_valid_frame_after(&bytes, 0, 9, 1024), None);
    }
}
