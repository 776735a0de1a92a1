//! syncbench, the harness: runs scenarios against the reference sync
//! system built from a tree (or any shell command in any repository),
//! measures every process, and records the results in SQLite.

pub mod abtest;
pub mod analysis;
pub mod changepoint;
pub mod chart;
pub mod env;
pub mod history;
pub mod ingest;
pub mod metric;
pub mod probe;
pub mod proc;
pub mod proxy;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod site;
pub mod stats;
pub mod store;
