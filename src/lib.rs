//! Library part of paxoskv: the pieces the command line and the end-to-end tests share,
//! starting with the linearizability checker for recorded client histories.

pub mod checker;
