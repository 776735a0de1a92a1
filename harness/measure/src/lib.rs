//! Measuring: a scenario's point run against a tree (`runner`: the sync
//! system's processes and driver, a command, criterion, callgrind), every
//! process watched (`proc` spawns and reaps, `probe` samples CPU, memory,
//! IO and hardware counters from `/proc` via `procfs` and perf events),
//! the system's own counters (`prometheus`), benchmark output read back
//! (`ingest`), and this machine's fingerprint (`machine`).
//!
//! Invariants (ARCHITECTURE.md): no SQL and no store (results go out as
//! values), no printing (denied below), and the harness's only unsafe
//! code, in `proc.rs`.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod ingest;
pub mod machine;
pub mod probe;
pub mod proc;
pub mod procfs;
pub mod prometheus;
pub mod runner;
