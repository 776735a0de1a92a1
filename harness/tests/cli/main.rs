//! The `syncbench` binary end to end: real processes, real git
//! repositories in temp dirs, real SQLite files.

// Tests start the binary under test (and git, servers) with exactly the
// environment they choose; the credential rule is what they check.
#![allow(clippy::disallowed_methods)]

mod ab;
mod alarms;
mod command;
mod comment;
mod exact;
mod first_use;
mod forget;
pub(crate) mod golden;
mod help;
mod history;
mod ingest;
mod load;
mod newcomer;
mod postgres;
mod queue;
mod report;
mod secrets;
mod site_honesty;
mod store;
mod support;
mod sync;
mod tls;
mod variants;
