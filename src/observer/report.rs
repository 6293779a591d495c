//! `paxoskv check --html`: a recorded history drawn per key as a timeline, Porcupine
//! style — one row per client, each operation a bar from its call to its return — with
//! the linearization the checker found (each bar numbered, its linearization point
//! marked), or, for a key without one, the smallest part that cannot be linearized
//! highlighted. One self-contained HTML file: the data as JSON, drawn by an inlined
//! script that puts every key and value on the page as text.

use super::assets;
use crate::checker::{KeyOutcome, Operation, Outcome};
use serde::Serialize;

/// How many operations of one key the picture draws at most.
pub const MAX_DRAWN: usize = 5000;

#[derive(Serialize)]
struct ReportData<'a> {
    file: &'a str,
    verdict: &'static str,
    keys: Vec<KeyData>,
}

#[derive(Serialize)]
struct KeyData {
    key: String,
    outcome: &'static str,
    /// How many operations the key has (only the first [`MAX_DRAWN`] are drawn).
    total: usize,
    ops: Vec<OpData>,
    /// For a key without a linearization: the longest linearizable prefix's length and
    /// the value it leaves.
    prefix_len: Option<usize>,
    value_after_prefix: Option<String>,
}

#[derive(Serialize)]
struct OpData {
    client: u64,
    kind: String,
    value: String,
    result: Option<String>,
    error: Option<String>,
    call: u64,
    #[serde(rename = "return")]
    ret: Option<u64>,
    /// Position in the linearization found (1-based).
    order: Option<usize>,
    /// In a failing key: `prefix` (end of the longest linearizable prefix), `stuck` (the
    /// operation that cannot follow it), `pending` (the others it was tried with).
    role: Option<&'static str>,
}

fn op_data(op: &Operation) -> OpData {
    let (result, error, ret) = match &op.outcome {
        Outcome::Returned { result, at } => (Some(result.clone()), None, Some(*at)),
        Outcome::Unknown { error, .. } => (None, Some(error.clone()), None),
    };
    OpData {
        client: op.client,
        kind: op.kind.to_string(),
        value: op.value.clone(),
        result,
        error,
        call: op.call,
        ret,
        order: None,
        role: None,
    }
}

/// The report's HTML for `operations` (as read from `file`) and what the checker found
/// for each key.
pub fn render(file: &str, operations: &[Operation], per_key: &[(String, KeyOutcome)]) -> String {
    let mut keys = Vec::new();
    let mut verdict = "linearizable";
    for (key, outcome) in per_key {
        let indices: Vec<usize> = operations
            .iter()
            .enumerate()
            .filter(|(_, op)| &op.key == key)
            .map(|(i, _)| i)
            .collect();
        let mut ops: Vec<OpData> = indices
            .iter()
            .take(MAX_DRAWN)
            .map(|&i| op_data(&operations[i]))
            .collect();
        let position = |i: usize| indices.iter().position(|&j| j == i);
        let mut data = KeyData {
            key: key.clone(),
            outcome: "linearizable",
            total: indices.len(),
            ops: Vec::new(),
            prefix_len: None,
            value_after_prefix: None,
        };
        match outcome {
            KeyOutcome::Linearizable(order) => {
                for (n, &i) in order.iter().enumerate() {
                    if let Some(op) = position(i).and_then(|p| ops.get_mut(p)) {
                        op.order = Some(n + 1);
                    }
                }
            }
            KeyOutcome::NotLinearizable(excerpt) => {
                verdict = "not linearizable";
                data.outcome = "not linearizable";
                data.prefix_len = Some(excerpt.prefix_len);
                data.value_after_prefix = Some(excerpt.value_after_prefix.clone());
                // The prefix's tail is in linearization order: it ends the prefix.
                let first_of_tail = excerpt.prefix_len.saturating_sub(excerpt.prefix_tail.len());
                let roles = excerpt
                    .prefix_tail
                    .iter()
                    .enumerate()
                    .map(|(j, o)| (o, "prefix", Some(first_of_tail + j + 1)))
                    .chain(excerpt.stuck.iter().map(|o| (o, "stuck", None)))
                    .chain(excerpt.pending.iter().map(|o| (o, "pending", None)));
                for (wanted, role, order) in roles {
                    let found = indices
                        .iter()
                        .position(|&i| &operations[i] == wanted)
                        .and_then(|p| ops.get_mut(p));
                    if let Some(op) = found {
                        op.role = Some(role);
                        op.order = order;
                    }
                }
            }
            KeyOutcome::Unknown => {
                if verdict == "linearizable" {
                    verdict = "unknown";
                }
                data.outcome = "unknown";
            }
        }
        data.ops = ops;
        keys.push(data);
    }
    let data = ReportData {
        file,
        verdict,
        keys,
    };
    let json = serde_json::to_string(&data).unwrap_or_else(|_| "{}".to_string());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>paxoskv history</title>\n<style>\n{css}</style>\n</head>\n<body>\n\
         <main id=\"report\"><p>This report needs JavaScript to draw.</p></main>\n\
         <script type=\"application/json\" id=\"history-data\">{data}</script>\n\
         <script>\n{js}</script>\n</body>\n</html>\n",
        css = assets::REPORT_CSS,
        data = script_safe(&json),
        js = assets::REPORT_JS,
    )
}

/// JSON that cannot end the `<script>` element holding it: `<`, `>` and `&` only occur
/// inside JSON strings, where their `\u` escapes mean the same.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{DEFAULT_STEP_BUDGET, check_per_key, parse_history};

    fn report(history: &str) -> String {
        let ops = parse_history(history.as_bytes()).expect("parses");
        let hash = |prev: &str, v: &str| format!("{prev}{v}");
        let per_key = check_per_key(&ops, hash, DEFAULT_STEP_BUDGET).expect("checks");
        render("h.jsonl", &ops, &per_key)
    }

    fn data_of(html: &str) -> serde_json::Value {
        let start = html.find("id=\"history-data\">").expect("data") + 18;
        let end = start + html[start..].find("</script>").expect("end");
        serde_json::from_str(&html[start..end]).expect("json")
    }

    #[test]
    fn a_linearizable_history_numbers_its_operations_in_order() {
        let html = report(concat!(
            r#"{"client":1,"op":"write","key":"k","value":"a","ok":true,"result":"a","call":0,"return":10}"#,
            "\n",
            r#"{"client":2,"op":"read","key":"k","ok":true,"result":"a","call":5,"return":20}"#,
            "\n",
        ));
        let d = data_of(&html);
        assert_eq!(d["verdict"], "linearizable");
        assert_eq!(d["keys"][0]["ops"][0]["order"], 1);
        assert_eq!(d["keys"][0]["ops"][1]["order"], 2);
    }

    #[test]
    fn a_violation_marks_the_stuck_operation_and_markup_stays_inside_strings() {
        let html = report(concat!(
            r#"{"client":1,"op":"write","key":"<script>alert(1)</script>","value":"a","ok":true,"result":"a","call":0,"return":10}"#,
            "\n",
            r#"{"client":2,"op":"read","key":"<script>alert(1)</script>","ok":true,"result":"b","call":11,"return":20}"#,
            "\n",
        ));
        assert!(
            !html.contains("<script>alert"),
            "the key escaped its string"
        );
        let d = data_of(&html);
        assert_eq!(d["verdict"], "not linearizable");
        let key = &d["keys"][0];
        assert_eq!(key["key"], "<script>alert(1)</script>");
        assert_eq!(key["ops"][1]["role"], "stuck");
        assert_eq!(key["ops"][0]["role"], "prefix");
        assert_eq!(key["ops"][0]["order"], 1, "the prefix keeps its order");
    }
}
