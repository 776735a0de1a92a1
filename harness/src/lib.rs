//! syncbench, the harness: runs scenarios against the reference sync
//! system built from a tree (or any shell command in any repository),
//! measures every process, and records the results in SQLite or PostgreSQL.
//!
//! Layers, from the edges in: `model` (the vocabulary as types),
//! `scenario` and `env` (what to measure, where), `runner` (measuring),
//! `store` (every SQL statement), `analysis`, `stats`, `changepoint` and
//! `abtest` (deciding), `ops` (what the commands do), `site` and `text`
//! (what people read). The binary's `commands/` are the only code that
//! prints.

pub mod checkout;
pub mod env;
pub mod github;
pub mod ingest;
pub mod ops;
pub mod probe;
pub mod proc;
pub mod procfs;
pub mod prometheus;
pub mod runner;

// The crates below this one, under the paths the code has always used.
pub use syncbench_analysis::{abtest, alarms, changepoint, history, profile, stats, text};
pub use syncbench_model as model;
pub use syncbench_model::{scenario, secrets};
pub use syncbench_site as site;
pub use syncbench_store as store;
