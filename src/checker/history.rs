//! The history format: one JSON object per line for each completed or timed-out client
//! operation (the `paxoskv client --pipe` output plus client id and call/return times),
//! parsed into [`Operation`]s and written back the same way. See `docs/history-format.md`.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use super::CheckError;

/// The kind of a key-value operation (the service's own type), spelt in JSON as `read`,
/// `write` or `write-hash`.
pub use kv_app::ops::OpKind;

/// How an operation ended, as far as its client knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The client got an answer `result` at time `at`.
    Returned { result: String, at: u64 },
    /// The client got no answer (`error` is usually `"timeout"`): the operation may have
    /// taken effect at any time after its call, or never. `gave_up_at` is when the client
    /// stopped waiting, if recorded; the checker does not use it.
    Unknown {
        error: String,
        gave_up_at: Option<u64>,
    },
}

/// One client operation of a history. Times are microseconds from any monotonic origin
/// shared by every client of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Who ran it (only shown in reports).
    pub client: u64,
    pub kind: OpKind,
    pub key: String,
    /// The argument of a write or write-hash; empty for a read.
    pub value: String,
    /// When the client sent it.
    pub call: u64,
    pub outcome: Outcome,
}

impl Operation {
    /// The time the operation is known to have finished by, if it finished.
    pub fn return_time(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Returned { at, .. } => Some(at),
            Outcome::Unknown { .. } => None,
        }
    }

    /// The answer the client got, if it got one.
    pub fn result(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Returned { result, .. } => Some(result),
            Outcome::Unknown { .. } => None,
        }
    }

    /// Checks what a well-formed history needs: an answer never comes before its call.
    pub fn validate(&self) -> Result<(), String> {
        if let Outcome::Returned { at, .. } = self.outcome
            && at < self.call
        {
            return Err(format!(
                "\"return\" ({at}) is earlier than \"call\" ({})",
                self.call
            ));
        }
        Ok(())
    }

    /// This operation as one line of the history format (no trailing newline).
    pub fn to_json_line(&self) -> String {
        let (ok, result, error, returned) = match &self.outcome {
            Outcome::Returned { result, at } => (true, Some(result.clone()), None, Some(*at)),
            Outcome::Unknown { error, gave_up_at } => {
                (false, None, Some(error.clone()), *gave_up_at)
            }
        };
        let line = HistoryLine {
            client: self.client,
            op: self.kind,
            key: self.key.clone(),
            value: (self.kind != OpKind::Read).then(|| self.value.clone()),
            ok,
            result,
            error,
            call: self.call,
            returned,
        };
        // A struct of strings, integers and booleans always serializes.
        serde_json::to_string(&line).unwrap_or_default()
    }
}

/// The JSON shape of one history line.
#[derive(Serialize, Deserialize)]
struct HistoryLine {
    client: u64,
    op: OpKind,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    call: u64,
    #[serde(rename = "return", default, skip_serializing_if = "Option::is_none")]
    returned: Option<u64>,
}

/// Parses one line of the history format (without its newline).
pub fn parse_line(text: &str) -> Result<Operation, String> {
    let line: HistoryLine = serde_json::from_str(text).map_err(describe_json_error)?;
    let value = match (line.op, line.value) {
        (OpKind::Read, _) => String::new(),
        (_, Some(value)) => value,
        (kind, None) => return Err(format!("a {kind} needs a \"value\"")),
    };
    let outcome = if line.ok {
        let result = line
            .result
            .ok_or_else(|| "an operation with \"ok\":true needs a \"result\"".to_string())?;
        let at = line
            .returned
            .ok_or_else(|| "an operation with \"ok\":true needs a \"return\" time".to_string())?;
        Outcome::Returned { result, at }
    } else {
        Outcome::Unknown {
            error: line.error.unwrap_or_else(|| "unknown".to_string()),
            gave_up_at: line.returned,
        }
    };
    let operation = Operation {
        client: line.client,
        kind: line.op,
        key: line.key,
        value,
        call: line.call,
        outcome,
    };
    operation.validate()?;
    Ok(operation)
}

/// Parses a whole history; blank lines are skipped. Errors name the 1-based line number.
pub fn parse_history(reader: impl BufRead) -> Result<Vec<Operation>, CheckError> {
    let mut operations = Vec::new();
    for (index, text) in reader.lines().enumerate() {
        let line = index + 1;
        let text = text.map_err(|source| CheckError::Parse {
            line,
            message: format!("cannot read the line: {source}"),
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let operation = parse_line(&text).map_err(|message| CheckError::Parse { line, message })?;
        operations.push(operation);
    }
    Ok(operations)
}

/// serde_json's message without its "at line 1 column N" tail, with the column in front.
fn describe_json_error(error: serde_json::Error) -> String {
    let text = error.to_string();
    let tail = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&tail) {
        Some(message) => format!("column {}: {message}", error.column()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_write_hash_round_trips() {
        let text = r#"{"client":3,"op":"write-hash","key":"k","value":"v","ok":true,"result":"p","call":123456,"return":123789}"#;
        let operation = parse_line(text).unwrap();
        assert_eq!(operation.kind, OpKind::WriteHash);
        assert_eq!(operation.value, "v");
        assert_eq!(operation.result(), Some("p"));
        assert_eq!(operation.return_time(), Some(123789));
        assert_eq!(operation.to_json_line(), text);
    }

    #[test]
    fn a_timeout_is_an_unknown_outcome_with_or_without_return() {
        let without = parse_line(
            r#"{"client":1,"op":"write","key":"k","value":"v","ok":false,"error":"timeout","call":5}"#,
        )
        .unwrap();
        assert_eq!(without.return_time(), None);
        let with = parse_line(
            r#"{"client":1,"op":"write","key":"k","value":"v","ok":false,"error":"timeout","call":5,"return":9}"#,
        )
        .unwrap();
        assert_eq!(
            with.outcome,
            Outcome::Unknown {
                error: "timeout".into(),
                gave_up_at: Some(9)
            }
        );
        assert_eq!(parse_line(&with.to_json_line()).unwrap(), with);
    }

    #[test]
    fn a_read_needs_no_value_and_writes_none() {
        let read = parse_line(
            r#"{"client":2,"op":"read","key":"k","ok":true,"result":"","call":1,"return":2}"#,
        )
        .unwrap();
        assert_eq!(read.value, "");
        assert!(!read.to_json_line().contains("\"value\""));
    }

    #[test]
    fn malformed_lines_are_explained() {
        let cases = [
            (
                r#"{"client":1,"op":"write","key":"k","ok":true,"result":"v","call":1,"return":2}"#,
                "needs a \"value\"",
            ),
            (
                r#"{"client":1,"op":"read","key":"k","ok":true,"call":1,"return":2}"#,
                "needs a \"result\"",
            ),
            (
                r#"{"client":1,"op":"read","key":"k","ok":true,"result":"","call":1}"#,
                "\"return\" time",
            ),
            (
                r#"{"client":1,"op":"read","key":"k","ok":true,"result":"","call":9,"return":2}"#,
                "earlier than",
            ),
            (
                r#"{"client":1,"op":"cas","key":"k","ok":true,"result":"","call":1,"return":2}"#,
                "unknown variant `cas`",
            ),
            (
                r#"{"client":1,"op":"read","key":"k","ok":true,"result":""}"#,
                "missing field `call`",
            ),
            (r#"{"client":1,"op":"read""#, "column"),
        ];
        for (text, expected) in cases {
            let message = parse_line(text).unwrap_err();
            assert!(
                message.contains(expected),
                "{text}: got {message:?}, wanted {expected:?}"
            );
        }
    }

    #[test]
    fn errors_carry_the_line_number_and_blank_lines_are_skipped() {
        let text = "\n{\"client\":1,\"op\":\"read\",\"key\":\"k\",\"ok\":true,\"result\":\"\",\"call\":1,\"return\":2}\n\nnot json\n";
        match parse_history(text.as_bytes()) {
            Err(CheckError::Parse { line, .. }) => assert_eq!(line, 4),
            other => panic!("expected a parse error on line 4, got {other:?}"),
        }
        let good = &text[..text.find("not json").unwrap()];
        assert_eq!(parse_history(good.as_bytes()).unwrap().len(), 1);
    }
}
