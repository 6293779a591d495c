//! One operation written as a line, as `client --pipe` and the shell read it:
//! `read KEY`, `write KEY VALUE`, `write-hash KEY VALUE`, where VALUE is the rest of the
//! line after KEY and one space (so `write k ` writes the empty string).

use kv_app::ops::OpKind;

/// A parsed operation line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpLine {
    pub kind: OpKind,
    pub key: String,
    /// Empty for reads.
    pub value: String,
}

/// The operation a word names.
pub fn kind_of(word: &str) -> Option<OpKind> {
    match word {
        "read" => Some(OpKind::Read),
        "write" => Some(OpKind::Write),
        "write-hash" => Some(OpKind::WriteHash),
        _ => None,
    }
}

/// Parses one line (without its line end), or says what is wrong with it.
pub fn parse(line: &str) -> Result<OpLine, String> {
    if line.trim().is_empty() {
        return Err(
            "empty line: expected read KEY, write KEY VALUE or write-hash KEY VALUE".into(),
        );
    }
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let kind = kind_of(word)
        .ok_or_else(|| format!("unknown operation '{word}': expected read, write or write-hash"))?;
    parse_args(kind, rest)
}

/// Parses what follows the operation's name: `KEY` for reads, `KEY VALUE` otherwise.
pub fn parse_args(kind: OpKind, rest: &str) -> Result<OpLine, String> {
    let (key, value) = match rest.split_once(' ') {
        Some((key, value)) => (key, Some(value)),
        None => (rest, None),
    };
    if key.is_empty() {
        return Err(format!("{kind} needs a KEY"));
    }
    let value = match (kind, value) {
        (OpKind::Read, None) => String::new(),
        (OpKind::Read, Some(v)) if v.trim().is_empty() => String::new(),
        (OpKind::Read, Some(_)) => return Err("read takes a KEY only".into()),
        (_, None) => return Err(format!("{kind} needs a KEY and a VALUE")),
        (_, Some(v)) => v.to_string(),
    };
    Ok(OpLine {
        kind,
        key: key.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, key: &str, value: &str) -> Result<OpLine, String> {
        Ok(OpLine {
            kind,
            key: key.into(),
            value: value.into(),
        })
    }

    #[test]
    fn the_value_is_the_rest_of_the_line_after_one_space() {
        assert_eq!(parse("read k"), op(OpKind::Read, "k", ""));
        assert_eq!(parse("write k v"), op(OpKind::Write, "k", "v"));
        assert_eq!(parse("write k "), op(OpKind::Write, "k", ""));
        assert_eq!(
            parse("write k  two  spaces "),
            op(OpKind::Write, "k", " two  spaces ")
        );
        assert_eq!(parse("write-hash k 0"), op(OpKind::WriteHash, "k", "0"));
        assert_eq!(parse("write k é ü"), op(OpKind::Write, "k", "é ü"));
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let err = |l: &str| parse(l).err().unwrap_or_default();
        assert!(err("").contains("empty line"));
        assert!(err("delete k").contains("unknown operation 'delete'"));
        assert!(err("write k").contains("needs a KEY and a VALUE"));
        assert!(err("write-hash").contains("needs a KEY"));
        assert!(err("read").contains("needs a KEY"));
        assert!(err("read  k").contains("needs a KEY"));
        assert!(err("read k v").contains("KEY only"));
        assert!(err("READ k").contains("unknown operation"));
    }
}
