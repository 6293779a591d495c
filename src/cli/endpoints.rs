//! Node names and addresses as the command line spells them: `HOST:PORT`,
//! `NAME=HOST:PORT`, and `name@host` names (a bare name gets the address's host).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// A server node as given on the command line: its full name and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `name@host`.
    pub name: String,
    pub addr: SocketAddr,
}

#[cfg(test)]
impl Endpoint {
    /// `name` at 127.0.0.1:`port`, for tests.
    pub fn loopback(name: &str, port: u16) -> Endpoint {
        Endpoint {
            name: name.into(),
            addr: ([127, 0, 0, 1], port).into(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.addr)
    }
}

/// `HOST:PORT`, where HOST is an IP address or a name that resolves (to its first IPv4
/// address when it has one).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !s.contains(':') {
        return Err(format!("bad address '{s}': expected HOST:PORT"));
    }
    let found: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("bad address '{s}': {e}"))?
        .collect();
    // IPv4 first: `localhost` then names the node `name@127.0.0.1` everywhere.
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("bad address '{s}': the host has no address"))
}

/// A node name: `name` or `name@host`, without spaces, commas or `=`.
pub fn parse_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty node name".to_string());
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || *c == ',' || *c == '=')
    {
        return Err(format!("bad node name '{s}': it contains {c:?}"));
    }
    match s.split_once('@') {
        Some((name, host)) if name.is_empty() || host.is_empty() || host.contains('@') => {
            Err(format!("bad node name '{s}': expected NAME or NAME@HOST"))
        }
        _ => Ok(s.to_string()),
    }
}

/// `NAME=HOST:PORT`; a bare NAME becomes `NAME@<IP of the address>`.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("bad node '{s}': expected NAME=HOST:PORT"))?;
    let name = parse_name(name)?;
    let addr = parse_addr(addr)?;
    Ok(Endpoint {
        name: qualify(&name, &addr.ip().to_string()),
        addr,
    })
}

/// `name` becomes `name@host`; a name with a host stays as it is.
pub fn qualify(name: &str, host: &str) -> String {
    if name.contains('@') {
        name.to_string()
    } else {
        format!("{name}@{host}")
    }
}

/// The host part of `name@host` (empty when there is none).
pub fn host_of(name: &str) -> &str {
    name.split_once('@').map(|(_, h)| h).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_addr("127.0.0.1:7101"),
            Ok(([127, 0, 0, 1], 7101).into())
        );
        assert_eq!(
            parse_addr("localhost:7101"),
            Ok(([127, 0, 0, 1], 7101).into())
        );
        let err = parse_addr("nonsense").err().unwrap_or_default();
        assert!(
            err.contains("nonsense") && err.contains("HOST:PORT"),
            "{err}"
        );
        assert!(parse_addr("127.0.0.1:99999").is_err());
        assert!(parse_addr("127.0.0.1:x").is_err());
    }

    #[test]
    fn endpoints_qualify_bare_names_with_the_address() {
        let e = parse_endpoint("s1=127.0.0.1:7101");
        assert_eq!(e, Ok(Endpoint::loopback("s1@127.0.0.1", 7101)));
        let e = parse_endpoint("s1@box=127.0.0.1:7101");
        assert!(e.is_ok_and(|e| e.name == "s1@box"));
        assert!(parse_endpoint("127.0.0.1:7101").is_err());
        assert!(parse_endpoint("=127.0.0.1:7101").is_err());
        assert!(parse_endpoint("s1=").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(parse_name("s1@127.0.0.1"), Ok("s1@127.0.0.1".into()));
        assert!(parse_name("").is_err());
        assert!(parse_name("a b").is_err());
        assert!(parse_name("@host").is_err());
        assert!(parse_name("a@").is_err());
        assert!(parse_name("a@b@c").is_err());
        assert_eq!(qualify("s2", "127.0.0.1"), "s2@127.0.0.1");
        assert_eq!(qualify("s2@h", "127.0.0.1"), "s2@h");
        assert_eq!(host_of("s2@h"), "h");
        assert_eq!(host_of("s2"), "");
    }
}
