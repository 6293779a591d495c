//! Library part of paxoskv: the pieces the command line and the end-to-end tests share,
//! the linearizability checker for recorded client histories, and the observer (the live
//! web page of a running cluster, and the pictures of checked histories).

pub mod checker;
pub mod observer;
