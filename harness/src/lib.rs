//! syncbench, the harness: runs scenarios against the reference sync
//! system built from a tree (or any shell command in any repository),
//! measures every process, and records the results in SQLite or PostgreSQL.
//!
//! This crate is the top of the harness's crates (ARCHITECTURE.md):
//! `syncbench-model` (the vocabulary), `syncbench-analysis` (decisions,
//! no IO), `syncbench-store` (every SQL statement), `syncbench-measure`
//! (running and measuring), `syncbench-site` (the dashboard). Here:
//! `git` and `checkout` (the measured repository and the reusable
//! checkout of its past commits), `github` (pull-request comments), and
//! `ops`, what the commands do, built from the crates below. The binary's
//! `commands/` are the only code of the harness that prints.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod checkout;
pub mod git;
pub mod github;
pub mod ops;

// The crates below this one, under the paths the code has always used.
pub use syncbench_analysis::{abtest, alarms, changepoint, history, profile, stats, text};
pub use syncbench_measure::{ingest, machine, probe, proc, procfs, prometheus, runner};
pub use syncbench_model as model;
pub use syncbench_model::{scenario, secrets};
pub use syncbench_site as site;
pub use syncbench_store as store;
