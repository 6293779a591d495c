//! Messages: what a mailbox holds. A message sent to a local process travels as a boxed
//! value (no copy, no encoding); one that crosses nodes travels as postcard bytes tagged
//! with its type, and is decoded when the receiver asks for that type.

use crate::pid::Pid;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};

/// Anything that can be sent: serialisable (so it may cross nodes), owned and `Send`.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// The tag that names a message type on the wire: a 64-bit FNV-1a hash of its type name.
/// Every node runs the same build, so the same type has the same tag everywhere.
pub fn type_tag<M: 'static>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::any::type_name::<M>().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The body of a message: a local value, or bytes from another node.
pub(crate) enum Payload {
    Local(Box<dyn Any + Send>),
    Remote { tag: u64, bytes: Vec<u8> },
}

/// One message in a mailbox, with its sender when known.
pub struct Envelope {
    pub(crate) from: Option<Pid>,
    pub(crate) payload: Payload,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.payload {
            Payload::Local(_) => write!(f, "Envelope(local from {:?})", self.from),
            Payload::Remote { tag, bytes } => write!(
                f,
                "Envelope(remote tag {tag:x}, {} bytes, from {:?})",
                bytes.len(),
                self.from
            ),
        }
    }
}

impl Envelope {
    /// Wraps a local value.
    pub fn local<M: Message>(from: Option<Pid>, msg: M) -> Self {
        Envelope {
            from,
            payload: Payload::Local(Box::new(msg)),
        }
    }

    /// The sender, when the message was sent from a process.
    pub fn from(&self) -> Option<&Pid> {
        self.from.as_ref()
    }

    /// Whether this message is of type `M` (without decoding it).
    pub fn is<M: Message>(&self) -> bool {
        match &self.payload {
            Payload::Local(b) => (**b).type_id() == TypeId::of::<M>(),
            Payload::Remote { tag, .. } => *tag == type_tag::<M>(),
        }
    }

    /// Takes the message as an `M`, or gives the envelope back untouched when it is not
    /// one. Remote bytes with the right tag that fail to decode are logged and also given
    /// back, so the caller treats them as an unknown message.
    pub fn downcast<M: Message>(self) -> Result<M, Envelope> {
        match self.payload {
            Payload::Local(b) => match b.downcast::<M>() {
                Ok(m) => Ok(*m),
                Err(b) => Err(Envelope {
                    from: self.from,
                    payload: Payload::Local(b),
                }),
            },
            Payload::Remote { tag, bytes } => {
                if tag == type_tag::<M>() {
                    match postcard::from_bytes::<M>(&bytes) {
                        Ok(m) => return Ok(m),
                        Err(e) => log::warn!(
                            "malformed {} from {:?}: {e}",
                            std::any::type_name::<M>(),
                            self.from
                        ),
                    }
                }
                Err(Envelope {
                    from: self.from,
                    payload: Payload::Remote { tag, bytes },
                })
            }
        }
    }

    /// A reference to the value when it is a local `M` (remote bytes need `take`).
    pub fn peek_local<M: Message>(&self) -> Option<&M> {
        match &self.payload {
            Payload::Local(b) => b.downcast_ref::<M>(),
            Payload::Remote { .. } => None,
        }
    }

    /// Decodes a copy of the message as an `M` without consuming it (local values are cloned).
    pub fn peek<M: Message + Clone>(&self) -> Option<M> {
        match &self.payload {
            Payload::Local(b) => b.downcast_ref::<M>().cloned(),
            Payload::Remote { tag, bytes } => {
                if *tag == type_tag::<M>() {
                    postcard::from_bytes::<M>(bytes).ok()
                } else {
                    None
                }
            }
        }
    }
}
