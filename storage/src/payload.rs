//! The serde convenience: payloads as postcard bytes. The log itself only sees bytes,
//! so callers may use any encoding; this one is the project's wire format already.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Serialises a value into a record payload.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|err| Error::Payload(format!("encoding failed: {err}")))
}

/// Deserialises a record payload. Bytes that passed the checksum can still be of another
/// type (a bug, or another version): that is an error, never a panic.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|err| Error::Payload(format!("decoding failed: {err}")))
}
