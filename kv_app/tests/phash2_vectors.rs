//! Checks `phash2_string` and `write_hash_value` against values computed by real Erlang.

use kv_app::phash2::{phash2_string, write_hash_value};

/// The vectors (a copy of the design's `shared/seed/phash2-vectors.tsv`, computed with real
/// Erlang), kept in the repository so that the suite runs on a fresh clone.
const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/phash2-vectors.tsv");

#[test]
fn every_shared_vector_matches_erlang() {
    let text = std::fs::read_to_string(VECTORS_PATH)
        .unwrap_or_else(|error| panic!("cannot read {VECTORS_PATH}: {error}"));
    let mut checked = 0;
    for (line_number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (encoded, expected) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("line {line_number}: no tab in {line:?}"));
        let bytes = decode_base64(encoded)
            .unwrap_or_else(|| panic!("line {line_number}: bad base64 {encoded:?}"));
        let string = String::from_utf8(bytes)
            .unwrap_or_else(|error| panic!("line {line_number}: not UTF-8: {error}"));
        let expected: u32 = expected
            .trim()
            .parse()
            .unwrap_or_else(|error| panic!("line {line_number}: bad value {expected:?}: {error}"));
        assert_eq!(
            phash2_string(&string),
            expected,
            "line {line_number}: phash2({string:?})"
        );
        checked += 1;
    }
    assert!(
        checked >= 15,
        "only {checked} vectors found in {VECTORS_PATH}"
    );
}

/// Vectors beyond the shared file, for code points above 255 and 65535 and long strings.
/// Computed with Erlang/OTP 25 (erlang-nox on Debian): each string was UTF-8 encoded,
/// base64-decoded in `erl` and hashed with
/// `erlang:phash2(unicode:characters_to_list(base64:decode(B64)))`.
#[test]
fn extra_vectors_computed_with_erlang_match() {
    let cases: [(&str, String, u32); 16] = [
        ("nul inside", "a\u{0}b".into(), 106_425_291),
        ("255 then 256", "\u{ff}\u{100}".into(), 56_036_776),
        ("one wide", "\u{100}".into(), 73_608_398),
        ("euro", "\u{20ac}".into(), 111_755_814),
        ("cjk", "\u{65e5}\u{672c}\u{8a9e}".into(), 130_064_290),
        ("65535 then 65536", "\u{ffff}\u{10000}".into(), 63_279_430),
        ("emoji", "\u{1f600}".into(), 116_492_589),
        ("max code point", "\u{10ffff}".into(), 7_896_493),
        ("byte then emoji", "a\u{1f600}".into(), 40_431_248),
        ("four bytes then wide", "abcd\u{20ac}".into(), 108_773_321),
        ("five bytes then wide", "abcde\u{20ac}f".into(), 35_892_539),
        ("runs split", "abc\u{20ac}defgh\u{20ac}".into(), 49_771_575),
        (
            "mixed sentence",
            "h\u{e9}llo w\u{f6}rld \u{2014} \u{f1}and\u{fa} \u{1d11e}".into(),
            6_760_059,
        ),
        ("1000 x a", "a".repeat(1000), 11_623_538),
        ("1000 x euro", "\u{20ac}".repeat(1000), 94_628_663),
        ("2000 mixed", formula_string(2000), 49_342_222),
    ];
    for (name, string, expected) in cases {
        assert_eq!(
            phash2_string(&string),
            expected,
            "{name}: phash2({string:?})"
        );
    }
}

/// The long mixed string of the extra vectors: code point `i` is an emoji when `i % 7 == 0`,
/// else `0x100 + i` when `i % 5 == 0`, else printable ASCII `0x20 + i % 90`.
fn formula_string(length: u32) -> String {
    (0..length)
        .map(|i| {
            let code_point = if i % 7 == 0 {
                0x1f600 + i % 80
            } else if i % 5 == 0 {
                0x100 + i
            } else {
                0x20 + i % 90
            };
            char::from_u32(code_point).unwrap_or_else(|| panic!("bad code point {code_point:#x}"))
        })
        .collect()
}

#[test]
fn write_hash_chain_from_empty_matches_erlang() {
    let mut stored = String::new();
    for (value, expected) in [("0", "14788753"), ("1", "91417210"), ("2", "107295499")] {
        stored = write_hash_value(&stored, value);
        assert_eq!(stored, expected, "after write_hash of {value:?}");
    }
    assert_eq!(write_hash_value("", "x"), "113605034");
}

/// Decodes standard base64 (with `=` padding); `None` on anything malformed.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let chunks = text.trim().as_bytes().chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    let mut bytes = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in chunks {
        let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 {
            return None;
        }
        let mut group: u32 = 0;
        for &symbol in &chunk[..4 - padding] {
            group = (group << 6) | base64_digit(symbol)?;
        }
        group <<= 6 * padding;
        let decoded = [(group >> 16) as u8, (group >> 8) as u8, group as u8];
        bytes.extend_from_slice(&decoded[..3 - padding]);
    }
    Some(bytes)
}

fn base64_digit(symbol: u8) -> Option<u32> {
    let digit = match symbol {
        b'A'..=b'Z' => symbol - b'A',
        b'a'..=b'z' => symbol - b'a' + 26,
        b'0'..=b'9' => symbol - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(digit))
}

#[test]
fn base64_helper_decodes_known_text() {
    assert_eq!(decode_base64(""), Some(Vec::new()));
    assert_eq!(decode_base64("eA=="), Some(b"x".to_vec()));
    assert_eq!(decode_base64("YWI="), Some(b"ab".to_vec()));
    assert_eq!(decode_base64("YWJj"), Some(b"abc".to_vec()));
    assert_eq!(
        decode_base64("ZXNwYcOxYQ=="),
        Some("españa".as_bytes().to_vec())
    );
    assert_eq!(decode_base64("YW?j"), None);
    assert_eq!(decode_base64("YWJ"), None);
}
