//! The contract between the harness (`syncbench`) and a workload driver
//! (`sync-client bench`): one JSON object per line on the driver's stdout.
//!
//! The harness stays the same across commits while the driver is built
//! from the commit under test, so every event carries the contract version
//! `v`; a harness refuses versions it does not know.
//!
//! ```text
//! {"v":1,"event":"hello","workload":"docs"}
//! {"v":1,"event":"phase_begin","phase":"upload"}
//! {"v":1,"event":"phase_end","phase":"upload","seconds":0.12,"ops":1000,"bytes":10240000}
//! {"v":1,"event":"metric","name":"load.p99","unit":"s","higher_is_better":false,"value":0.004}
//! {"v":1,"event":"done"}
//! ```
//!
//! A driver that does not know the requested workload prints an `error`
//! event with `kind: "unknown_workload"` and exits with status 3.
//!
//! Phase barrier (added within version 1): a harness that wants to read
//! the counters of every process exactly at phase boundaries sets
//! `SYNCBENCH_BARRIER=1` and gives the driver a pipe as stdin. A driver
//! that honours it says `"barrier":true` in its `hello`, and after each
//! `phase_begin` and each `phase_end` waits for one line on stdin (end of
//! input releases it too) before going on. Older drivers say nothing and
//! never wait; their harness reads counters per process, not per phase.

use serde::{Deserialize, Serialize};

pub const DRIVER_CONTRACT_VERSION: u32 = 1;
/// The environment variable that asks a driver for the phase barrier.
pub const BARRIER_ENV: &str = "SYNCBENCH_BARRIER";
/// How many times slower than native the harness runs the driver and the
/// servers (e.g. 50 under valgrind; 1 otherwise): a driver stretches its
/// own deadlines by it. Added within version 1.
pub const TIME_SCALE_ENV: &str = "SYNCBENCH_TIME_SCALE";
/// Exit status of a driver asked for a workload it does not have.
pub const EXIT_UNKNOWN_WORKLOAD: i32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverLine {
    pub v: u32,
    #[serde(flatten)]
    pub event: DriverEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DriverEvent {
    Hello {
        workload: String,
        /// The driver waits at phase boundaries (see the module's docs).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        barrier: bool,
    },
    PhaseBegin {
        phase: String,
    },
    /// `seconds` is the driver's own monotonic measurement of the phase;
    /// `ops` and `bytes` are what the phase did (documents, payload bytes).
    PhaseEnd {
        phase: String,
        seconds: f64,
        ops: u64,
        bytes: u64,
    },
    /// A figure only the driver can measure (latency percentiles, error
    /// counts). `unit` is one of the harness's unit symbols: `s`, `B`,
    /// `MB/s`, `ops/s`, `%`, `count`. Added within version 1: harnesses
    /// before it skip the line.
    Metric {
        name: String,
        unit: String,
        higher_is_better: bool,
        value: f64,
    },
    Done,
    Error {
        kind: String,
        message: String,
    },
}

impl DriverLine {
    pub fn new(event: DriverEvent) -> Self {
        Self {
            v: DRIVER_CONTRACT_VERSION,
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_pinned() {
        let line = DriverLine::new(DriverEvent::PhaseEnd {
            phase: "upload".into(),
            seconds: 0.5,
            ops: 3,
            bytes: 30,
        });
        let s = serde_json::to_string(&line).unwrap();
        assert_eq!(
            s,
            r#"{"v":1,"event":"phase_end","phase":"upload","seconds":0.5,"ops":3,"bytes":30}"#
        );
        assert_eq!(serde_json::from_str::<DriverLine>(&s).unwrap(), line);
    }

    #[test]
    fn hello_without_barrier_is_the_old_line() {
        let old = r#"{"v":1,"event":"hello","workload":"docs"}"#;
        let line = DriverLine::new(DriverEvent::Hello {
            workload: "docs".into(),
            barrier: false,
        });
        assert_eq!(serde_json::to_string(&line).unwrap(), old);
        assert_eq!(serde_json::from_str::<DriverLine>(old).unwrap(), line);
        let new = r#"{"v":1,"event":"hello","workload":"docs","barrier":true}"#;
        assert!(matches!(
            serde_json::from_str::<DriverLine>(new).unwrap().event,
            DriverEvent::Hello { barrier: true, .. }
        ));
    }
}

/// Parses a byte size such as `512`, `10KiB`, `1.5MiB`, `2GB` (binary
/// units for `KiB/MiB/GiB`, decimal for `kB/MB/GB`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 10KiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => {
            return Err(format!(
                "unknown size unit {u:?} in {s:?} (use B, KiB, MiB, GiB, kB, MB, GB)"
            ));
        }
    };
    Ok((num * mult).round() as u64)
}

#[cfg(test)]
mod size_tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("10KiB"), Ok(10240));
        assert_eq!(parse_bytes("1000KiB"), Ok(1_024_000));
        assert_eq!(parse_bytes("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_bytes("2MB"), Ok(2_000_000));
        assert_eq!(parse_bytes("7"), Ok(7));
        assert!(
            parse_bytes("10 furlongs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_bytes("KiB").is_err());
    }
}
