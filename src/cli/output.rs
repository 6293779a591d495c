//! What the commands print: lines on stdout flushed at once (other programs read them
//! as they come), the `--pipe` JSON objects, and the clock they are stamped with.

use kv_app::ops::OpKind;
use serde::Serialize;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints one line on stdout and flushes it. A closed stdout is reported, not a panic.
pub fn line(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Microseconds since the UNIX epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How one piped operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PipeOutcome {
    Done(String),
    Failed(String),
}

/// One piped operation's JSON line, fields in the contract's order.
#[derive(Serialize)]
struct PipeRecord<'a> {
    client: u64,
    op: String,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    call: u64,
    #[serde(rename = "return")]
    ret: u64,
}

/// One piped operation as its JSON line: op, key, value (not for reads), ok, result or
/// error, and the fields the history checker needs: client, call, return.
pub fn pipe_record(
    client: u64,
    kind: OpKind,
    key: &str,
    value: &str,
    outcome: &PipeOutcome,
    call: u64,
    ret: u64,
) -> String {
    let (result, error) = match outcome {
        PipeOutcome::Done(r) => (Some(r.as_str()), None),
        PipeOutcome::Failed(e) => (None, Some(e.as_str())),
    };
    let record = PipeRecord {
        client,
        op: kind.to_string(),
        key,
        value: (kind != OpKind::Read).then_some(value),
        ok: result.is_some(),
        result,
        error,
        call,
        ret,
    };
    serde_json::to_string(&record).unwrap_or_else(|e| malformed_record(&e.to_string(), key))
}

/// A line that is no operation, as its JSON line.
pub fn malformed_record(error: &str, line: &str) -> String {
    #[derive(Serialize)]
    struct Malformed<'a> {
        ok: bool,
        error: &'a str,
        line: &'a str,
    }
    let record = Malformed {
        ok: false,
        error,
        line,
    };
    serde_json::to_string(&record).unwrap_or_else(|_| r#"{"ok":false}"#.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn records_carry_the_contracts_fields() {
        let done = pipe_record(
            7,
            OpKind::WriteHash,
            "k",
            "v",
            &PipeOutcome::Done("14788753".into()),
            10,
            20,
        );
        let v: Value = serde_json::from_str(&done).expect("json");
        assert!(
            done.starts_with(r#"{"client":7,"op":"write-hash","key":"k","value":"v","ok":true"#)
        );
        assert_eq!(
            v,
            json!({"client":7,"op":"write-hash","key":"k","value":"v","ok":true,
                   "result":"14788753","call":10,"return":20})
        );
        let read = pipe_record(
            1,
            OpKind::Read,
            "k",
            "",
            &PipeOutcome::Failed("timeout".into()),
            1,
            2,
        );
        let v: Value = serde_json::from_str(&read).expect("json");
        assert_eq!(
            v,
            json!({"client":1,"op":"read","key":"k","ok":false,"error":"timeout","call":1,"return":2})
        );
        assert!(!read.contains('\n'));
        let bad: Value =
            serde_json::from_str(&malformed_record("unknown operation", "x\"y")).expect("json");
        assert_eq!(
            bad,
            json!({"ok":false,"error":"unknown operation","line":"x\"y"})
        );
    }

    #[test]
    fn the_clock_is_in_microseconds_since_the_epoch() {
        // 2020-01-01 in microseconds; any sane clock is past it.
        assert!(now_micros() > 1_577_836_800_000_000);
    }
}
