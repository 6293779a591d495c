//! The kv service's messages, in the original's shapes (see `docs/port-map.md`):
//! client -> server `{Operación, Clave, IPCliente, Referencia}` and `{borrar_ref, Referencia,
//! IPCliente}`; server -> client `Ok` / `caído`; operation manager -> DB manager
//! `{actualizar_bd, NumInstancia, PidGestionador}` and back `{actualizado, ...}`;
//! operation manager -> client `{respuesta_escritura, V}` / `{respuesta_lectura, V}`;
//! API -> client process `{get servidores, From}` -> `{servidores cliente, Servidores}`.
//! Not in the original: the batchers' `Propose` / `Proposed`, and `Forward` /
//! `ForwardedAt` between a follower's batcher and the distinguished proposer's.

use crate::ops::{OpRef, Operation};
use runtime::{NodeName, Pid};
use serde::{Deserialize, Serialize};

/// The name every server node registers its server process under.
pub const KV_SERVER: &str = "kv_server";
/// The name of the proposal batcher.
pub const BATCHER: &str = "kv_batcher";
/// The name of the DB manager.
pub const DB_MANAGER: &str = "db_manager";
/// The name of the node's top supervisor (kv_sup and node_ctl under it).
pub const NODE_SUP: &str = "node_sup";
/// The name of the kv application's supervisor.
pub const KV_SUP: &str = "kv_sup";
/// The name of the client process on a client node.
pub const KV_CLIENT: &str = "kv_client";

/// Client -> server: carry out this operation and answer `client`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Request {
    pub op: Operation,
    pub client: Pid,
}

/// Server -> client: whether the server took the operation (`Ok`) or Paxos is down.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum RequestAnswer {
    Ok(OpRef),
    Down(OpRef),
    /// The operation is over the server's limits: refused, it will never take effect.
    TooLarge(OpRef, crate::limits::TooLarge),
}

/// Client -> server: the answer arrived, the reference may be deleted (through Paxos).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeleteRef {
    pub reference: OpRef,
    pub client: Pid,
}

/// Operation manager -> batcher: propose this entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Propose {
    pub entry: crate::ops::LogEntry,
    pub manager: Pid,
}

/// Batcher -> operation manager: your entry is proposed at instance `seq`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Proposed {
    pub seq: u64,
}

/// Follower batcher -> the distinguished proposer's batcher: propose these entries (one
/// message per forwarded batch); `batcher` is told where they went.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Forward {
    pub entries: Vec<crate::ops::LogEntry>,
    pub batcher: Pid,
}

/// The distinguished proposer's batcher -> follower batcher: these of your forwarded
/// entries are proposed at instance `seq` (a forward may be answered in several parts).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ForwardedAt {
    pub seq: u64,
    pub entries: Vec<crate::ops::LogEntry>,
}

/// Operation manager -> DB manager: bring the data up to `instance`, then tell me the
/// result of my operation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UpdateDb {
    pub instance: u64,
    pub reference: OpRef,
    pub manager: Pid,
}

/// DB manager -> operation manager: updated; the operation's result when still held
/// (`None` when the client already has its answer and deleted the reference).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Updated {
    pub reference: OpRef,
    pub result: Option<String>,
}

/// Operation manager -> client: the result of an operation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Answer {
    /// `{respuesta_escritura, V}`: for write (the value written) and write_hash (the
    /// previous value).
    Write { reference: OpRef, value: String },
    /// `{respuesta_lectura, V}`.
    Read { reference: OpRef, value: String },
}

impl Answer {
    pub fn reference(&self) -> OpRef {
        match self {
            Answer::Write { reference, .. } | Answer::Read { reference, .. } => *reference,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Answer::Write { value, .. } | Answer::Read { value, .. } => value,
        }
    }
}

/// API -> client process: which servers do you know?
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GetServers {
    pub from: Pid,
}

/// Client process -> API: the servers it knows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClientServers(pub Vec<NodeName>);
