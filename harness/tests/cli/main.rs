//! The `syncbench` binary end to end: real processes, real git
//! repositories in temp dirs, real SQLite files.

mod ab;
mod alarms;
mod command;
mod comment;
mod exact;
mod first_use;
pub(crate) mod golden;
mod history;
mod ingest;
mod load;
mod postgres;
mod queue;
mod report;
mod store;
mod support;
mod sync;
