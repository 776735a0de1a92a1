//! What the harness decides from values it is given: robust summaries and
//! two-sample tests (`stats`), change points (`changepoint`), sequential
//! A/B estimates (`abtest`), a series' history along the first-parent line
//! with its thresholds and changes (`history`), confirmed alarms
//! (`alarms`), profile comparisons (`profile`), and the text tables people
//! read (`text`).
//!
//! Invariants (see ARCHITECTURE.md): no IO (files, processes, network,
//! environment), no clock, no printing. Values come in as arguments and
//! decisions go out as values; `clippy.toml` disallows the methods that
//! would break this and `print_stdout`/`print_stderr` are denied below.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod abtest;
pub mod alarms;
pub mod changepoint;
pub mod history;
pub mod profile;
pub mod stats;
pub mod text;
