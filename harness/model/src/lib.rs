//! The harness's vocabulary as types: units and directions of metrics,
//! statuses of runs, verdicts of comparisons, series keys, phases. Their
//! strings (database columns, JSON, CLI output) are defined here and
//! nowhere else; everything past the edges works with the enums.
//!
//! The bottom of the harness's crates: what a scenario declares
//! (`scenario`), what is recorded (`records`), which environment
//! variables reach measured code (`secrets`), and what a metric's name
//! means (here). Nothing in this crate prints, spawns a process or opens
//! a connection; it reads files only to load scenarios.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod hash;
pub mod records;
pub mod scenario;
pub mod secrets;
pub mod variant;

use serde::{Serialize, Serializer};
use std::time::{SystemTime, UNIX_EPOCH};

/// An error with its whole chain of causes, as a run's error is recorded
/// (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message = format!("{message}: {c}");
        cause = c.source();
    }
    message
}

/// Seconds since the epoch, for the record: the one clock every stored
/// time is read from.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Seconds,
    Bytes,
    /// Megabytes (10^6) per second.
    MegabytesPerSecond,
    OpsPerSecond,
    /// Percent of one core.
    Percent,
    Count,
}

const UNITS: [Unit; 6] = [
    Unit::Seconds,
    Unit::Bytes,
    Unit::MegabytesPerSecond,
    Unit::OpsPerSecond,
    Unit::Percent,
    Unit::Count,
];

impl Unit {
    /// The symbol stored in the database and printed in tables (`s`, `B`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Bytes => "B",
            Unit::MegabytesPerSecond => "MB/s",
            Unit::OpsPerSecond => "ops/s",
            Unit::Percent => "%",
            Unit::Count => "count",
        }
    }

    pub fn parse(s: &str) -> Option<Unit> {
        UNITS.into_iter().find(|u| u.as_str() == s)
    }

    /// What the unit is, in words (axis titles).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Bytes => "bytes",
            Unit::MegabytesPerSecond => "MB/s",
            Unit::OpsPerSecond => "operations per second",
            Unit::Percent => "percent of one core",
            Unit::Count => "counts",
        }
    }

    /// Serializes as the symbol (`"s"`), where a JSON output carries it so.
    pub fn serialize_symbol<S: Serializer>(u: &Unit, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(u.as_str())
    }

    /// The scale to show values of about `magnitude` at: its divisor and
    /// symbol, from picoseconds to hours and from bytes to TiB. A scale is
    /// taken from 0.9995 of its divisor on, so 999.96 ms shows as 1.00 s.
    pub fn scale(self, magnitude: f64) -> (f64, &'static str) {
        /// A scale: shown from `from` on, as multiples of `div`.
        struct Scale {
            from: f64,
            div: f64,
            symbol: &'static str,
        }
        /// From a little below its divisor, so rounding never shows 1000.
        const fn at(div: f64, symbol: &'static str) -> Scale {
            Scale {
                from: div * 0.9995,
                div,
                symbol,
            }
        }
        const TIME: &[Scale] = &[
            at(3600.0, "h"),
            at(60.0, "min"),
            at(1.0, "s"),
            at(1e-3, "ms"),
            at(1e-6, "µs"),
            at(1e-9, "ns"),
            at(1e-12, "ps"),
        ];
        const BYTES: &[Scale] = &[
            at(1_099_511_627_776.0, "TiB"),
            at(1_073_741_824.0, "GiB"),
            at(1_048_576.0, "MiB"),
            at(1024.0, "KiB"),
            at(1.0, "B"),
        ];
        const RATE: &[Scale] = &[at(1e3, "GB/s"), at(1.0, "MB/s"), at(1e-3, "kB/s")];
        // Counts and rates stay whole below ten thousand (a change of one
        // request shows), then go in thousands.
        const THOUSANDS: f64 = 1e4;
        const OPS: &[Scale] = &[
            at(1e6, "M ops/s"),
            Scale {
                from: THOUSANDS,
                div: 1e3,
                symbol: "k ops/s",
            },
            at(1.0, "ops/s"),
        ];
        const COUNT: &[Scale] = &[
            at(1e12, "T"),
            at(1e9, "G"),
            at(1e6, "M"),
            Scale {
                from: THOUSANDS,
                div: 1e3,
                symbol: "k",
            },
            at(1.0, ""),
        ];
        const PERCENT: &[Scale] = &[at(1.0, "%")];
        let scales = match self {
            Unit::Seconds => TIME,
            Unit::Bytes => BYTES,
            Unit::MegabytesPerSecond => RATE,
            Unit::OpsPerSecond => OPS,
            Unit::Count => COUNT,
            Unit::Percent => PERCENT,
        };
        let m = magnitude.abs();
        let chosen = if m == 0.0 || !m.is_finite() {
            scales.iter().find(|s| s.div == 1.0)
        } else {
            scales.iter().find(|s| m >= s.from)
        };
        let s = chosen.unwrap_or(&scales[scales.len() - 1]);
        (s.div, s.symbol)
    }

    /// The value in human units, three significant digits: 12.3 ms,
    /// 4.56 MiB, 789 MB/s, 3.20 ns, 1.50 min. Whole bytes and counts stay
    /// whole; a value that is not a number shows as "n/a".
    pub fn human(self, v: f64) -> String {
        if !v.is_finite() {
            return "n/a".into();
        }
        let (div, sym) = self.scale(v);
        let x = v / div;
        let whole = matches!(self, Unit::Bytes | Unit::Count | Unit::OpsPerSecond);
        let text = if div == 1.0 && whole || x == 0.0 {
            format!("{x:.0}")
        } else {
            sig3(x)
        };
        if sym.is_empty() {
            text
        } else {
            format!("{text} {sym}")
        }
    }
}

/// A number with three significant digits (12.3, 1.23, 123), the way
/// [`Unit::human`] shows a value in its scale.
pub fn sig3(x: f64) -> String {
    let a = x.abs();
    let decimals = if a >= 99.95 {
        0
    } else if a >= 9.995 {
        1
    } else {
        2
    };
    format!("{x:.decimals$}")
}

/// Which way of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::LowerIsBetter => "lower_is_better",
            Direction::HigherIsBetter => "higher_is_better",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        [Direction::LowerIsBetter, Direction::HigherIsBetter]
            .into_iter()
            .find(|d| d.as_str() == s)
    }

    pub fn from_higher_is_better(higher: bool) -> Direction {
        if higher {
            Direction::HigherIsBetter
        } else {
            Direction::LowerIsBetter
        }
    }

    /// Whether a relative change (`new / old - 1`) makes this metric worse.
    pub fn is_worse(self, change: f64) -> bool {
        match self {
            Direction::LowerIsBetter => change > 0.0,
            Direction::HigherIsBetter => change < 0.0,
        }
    }

    /// In words, for pages.
    pub fn describe(self) -> &'static str {
        match self {
            Direction::LowerIsBetter => "lower is better",
            Direction::HigherIsBetter => "higher is better",
        }
    }

    /// Serializes as `"lower_is_better"`, where a JSON output carries it so.
    pub fn serialize_str<S: Serializer>(d: &Direction, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(d.as_str())
    }
}

/// How a run ended; stored with every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Ok,
    Failed,
    Timeout,
    Interrupted,
    BuildFailed,
    /// The commit's driver has no such workload.
    Unsupported,
}

const STATUSES: [RunStatus; 6] = [
    RunStatus::Ok,
    RunStatus::Failed,
    RunStatus::Timeout,
    RunStatus::Interrupted,
    RunStatus::BuildFailed,
    RunStatus::Unsupported,
];

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Timeout => "timeout",
            RunStatus::Interrupted => "interrupted",
            RunStatus::BuildFailed => "build_failed",
            RunStatus::Unsupported => "unsupported",
        }
    }

    /// A stored status; an unknown one (a newer harness's) reads as failed.
    pub fn parse(s: &str) -> RunStatus {
        STATUSES
            .into_iter()
            .find(|st| st.as_str() == s)
            .unwrap_or(RunStatus::Failed)
    }

    pub fn is_ok(self) -> bool {
        self == RunStatus::Ok
    }

    /// An answer that measuring again would not change: measured, or
    /// known not to build or not to have the workload.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Ok | RunStatus::BuildFailed | RunStatus::Unsupported
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RunStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a comparison concluded about a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Regression,
    Improvement,
    /// Within noise or the threshold.
    Unchanged,
    NoBaseline,
    /// The harness's own metrics: shown, never gated on.
    Informational,
    /// An A/B run that stopped before the answer was clear.
    Inconclusive,
    /// An A/B run that could not measure.
    Failed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
            Verdict::Unchanged => "unchanged",
            Verdict::NoBaseline => "no_baseline",
            Verdict::Informational => "informational",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        [
            Verdict::Regression,
            Verdict::Improvement,
            Verdict::Unchanged,
            Verdict::NoBaseline,
            Verdict::Informational,
            Verdict::Inconclusive,
            Verdict::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// A change judged real, by the metric's direction.
    pub fn of_change(direction: Direction, change: f64) -> Verdict {
        if direction.is_worse(change) {
            Verdict::Regression
        } else {
            Verdict::Improvement
        }
    }

    /// The mark in text tables after a run.
    pub fn table_mark(self) -> &'static str {
        match self {
            Verdict::Regression => "  REGRESSION",
            Verdict::Improvement => "  improvement",
            Verdict::Informational => "  (shown, not gated)",
            Verdict::Inconclusive => "  (too few values to tell)",
            _ => "  (within noise)",
        }
    }

    /// The mark in Markdown summaries.
    pub fn markdown_mark(self) -> &'static str {
        match self {
            Verdict::Regression => "🔴 regression",
            Verdict::Improvement => "🟢 improvement",
            Verdict::Inconclusive => "❔ too few values to tell",
            _ => "within noise",
        }
    }

    /// The CSS class of a change on pages: up is worse, down better.
    pub fn css_class(self) -> &'static str {
        match self {
            Verdict::Regression => "up",
            Verdict::Improvement => "down",
            _ => "flat",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metrics the harness reports about itself: shown, never gated on.
pub fn is_harness_metric(name: &str) -> bool {
    name.starts_with("harness.")
}

/// How closely repeated instruction counts of the same work agree
/// (relative): the server's under callgrind spread 0.1–0.3% between runs
/// (buffers grow by what each read returns), the driver's under 0.03%.
pub const INSTRUCTION_RESOLUTION: f64 = 0.003;

/// Whether a metric is an instruction count (of a process or a phase).
pub fn is_instruction_metric(name: &str) -> bool {
    name.ends_with(".instructions")
}

/// Metrics shown but never gated (no verdict, no change points): the
/// harness's own cost, and counts that move with timing rather than with
/// the code. System calls: how many writes a socket takes depends on
/// backpressure (6% between runs of concurrent mail delivery). A server's
/// reads: which pooled SQLite connection's page cache served a query
/// decides what is read again. A server's writes per phase: it
/// checkpoints its WAL when it can, so whichever phase comes next may pay
/// for the last one's (the whole run's writes are stable and gated).
/// Group commit and lock waits: they measure contention itself. Reads
/// from storage: whatever the page cache no longer holds.
pub fn is_informational(name: &str) -> bool {
    if is_harness_metric(name)
        || name.ends_with(".io.syscr")
        || name.ends_with(".io.syscw")
        || name.ends_with(".io.read_bytes")
        || name.contains(".server.counter.group_commit_")
        || name.contains(".server.counter.sqlite_lock_waits")
    {
        return true;
    }
    let parts: Vec<&str> = name.split('.').collect();
    // [PHASE.]server[N].io.FIELD
    let Some(i) = parts.iter().position(|p| p.starts_with("server")) else {
        return false;
    };
    if parts.get(i + 1) != Some(&"io") {
        return false;
    }
    let read_side = matches!(parts.get(i + 2), Some(&("rchar" | "syscr" | "read_bytes")));
    i > 0 || read_side
}

/// The smallest absolute change of a metric that can count, whatever
/// its relative size: below it, fixed costs that move between phases or
/// runs (a pooled connection opened, ~0.5M instructions; a system call
/// more or less; the kernel's CPU accounting of a short process, 0 or
/// 0.3 ms of system time from run to run) would alarm on small counts.
pub fn absolute_floor(name: &str) -> f64 {
    let last = name.rsplit('.').next().unwrap_or(name);
    if name.ends_with(".instructions") {
        1e6
    } else if last == "cpu_user" || last == "cpu_sys" {
        1e-3
    } else if name.ends_with(".syscr") || name.ends_with(".syscw") {
        32.0
    } else if name.contains(".io.") {
        64.0 * 1024.0
    } else {
        0.0
    }
}

/// One metric's values over the recorded repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub name: String,
    pub unit: Unit,
    pub direction: Direction,
    pub values: Vec<f64>,
}

/// One value of one metric, as a repetition measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub name: String,
    pub unit: Unit,
    pub direction: Direction,
    pub value: f64,
}

/// Where the confirmation of a change point stands (`syncbench confirm`:
/// the commits either side of it measured again, interleaved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// Not measured again (yet).
    Unconfirmed,
    /// Claimed by a `confirm` that is measuring it now.
    Pending,
    /// The interleaved run found the change, the same way.
    Confirmed,
    /// The interleaved run found no change at the threshold (or one the
    /// other way).
    Refuted,
    /// No answer: the budget ran out, or a commit no longer builds.
    Inconclusive,
}

impl Confirmation {
    pub fn as_str(self) -> &'static str {
        match self {
            Confirmation::Unconfirmed => "unconfirmed",
            Confirmation::Pending => "pending",
            Confirmation::Confirmed => "confirmed",
            Confirmation::Refuted => "refuted",
            Confirmation::Inconclusive => "inconclusive",
        }
    }

    pub fn parse(s: &str) -> Option<Confirmation> {
        [
            Confirmation::Unconfirmed,
            Confirmation::Pending,
            Confirmation::Confirmed,
            Confirmation::Refuted,
            Confirmation::Inconclusive,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Whether a `confirm` has its answer (another run leaves it alone).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Confirmation::Confirmed | Confirmation::Refuted | Confirmation::Inconclusive
        )
    }
}

/// What a person decided about an alarm (`syncbench triage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Triage {
    /// Real and accepted (the price of a feature): CI does not fail on it
    /// again.
    Acknowledged,
    /// Not real: a false alarm. Counts against the alarms' precision.
    Invalid,
    /// Real, and fixed by a later commit.
    Fixed,
}

impl Triage {
    pub fn as_str(self) -> &'static str {
        match self {
            Triage::Acknowledged => "acknowledged",
            Triage::Invalid => "invalid",
            Triage::Fixed => "fixed",
        }
    }

    pub fn parse(s: &str) -> Option<Triage> {
        [Triage::Acknowledged, Triage::Invalid, Triage::Fixed]
            .into_iter()
            .find(|t| t.as_str() == s)
    }

    /// Whether the alarm should stop failing `check`.
    pub fn silences(self) -> bool {
        matches!(self, Triage::Acknowledged | Triage::Invalid)
    }
}

/// A driver phase on a repetition's clock (milliseconds since its start).
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub repetition: u32,
    pub name: String,
    pub start_ms: f64,
    pub end_ms: f64,
}

/// A series: machine × scenario point × metric, over commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The machine's fingerprint.
    pub machine: String,
    pub scenario: String,
    pub point: String,
    pub metric: String,
}

/// A scenario point on a machine: the runs a series' values come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PointKey {
    pub machine: String,
    pub scenario: String,
    pub point: String,
}

impl PointKey {
    pub fn metric(&self, metric: &str) -> SeriesKey {
        SeriesKey {
            machine: self.machine.clone(),
            scenario: self.scenario.clone(),
            point: self.point.clone(),
            metric: metric.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn which_metrics_are_gated() {
        for shown in [
            "harness.sampler_cpu",
            "upload.server.io.wchar",
            "download.server2.io.syscw",
            "server.io.rchar",
            "server.io.syscr",
            "deliver.driver.io.syscw",
            "deliver.server.counter.group_commit_waits",
            "deliver.server.counter.group_commit_batch_count",
        ] {
            assert!(is_informational(shown), "{shown}");
        }
        for gated in [
            "server.io.wchar",
            "server.io.write_bytes",
            "upload.driver.io.wchar",
            "deliver.server.counter.fsyncs.blob",
            "upload.server.instructions",
            "upload.server.counter.sqlite_commits",
            "wall",
        ] {
            assert!(!is_informational(gated), "{gated}");
        }
        assert_eq!(absolute_floor("conflict.server.instructions"), 1e6);
        assert_eq!(absolute_floor("noop_sync.driver.io.syscw"), 32.0);
        assert_eq!(absolute_floor("wall"), 0.0);
        assert_eq!(absolute_floor("command.cpu_sys"), 1e-3);
        assert_eq!(absolute_floor("upload.server.cpu_user"), 1e-3);
        assert_eq!(absolute_floor("upload.server.cpu_user_pct"), 0.0);
    }

    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(Unit::Seconds.human(0.0123), "12.3 ms");
        assert_eq!(Unit::Seconds.human(2.5), "2.50 s");
        assert_eq!(Unit::Bytes.human(5.5 * 1024.0 * 1024.0), "5.50 MiB");
        assert_eq!(Unit::MegabytesPerSecond.human(42.04), "42.0 MB/s");
        // From picoseconds to hours, and the scale changes where rounding
        // would reach a thousand.
        let s = Unit::Seconds;
        assert_eq!(s.human(3.2e-9), "3.20 ns");
        assert_eq!(s.human(4.5e-12), "4.50 ps");
        assert_eq!(s.human(1e-14), "0.01 ps");
        assert_eq!(s.human(0.99996), "1.00 s");
        assert_eq!(s.human(90.0), "1.50 min");
        assert_eq!(s.human(7200.0), "2.00 h");
        assert_eq!(s.human(0.0), "0 s");
        assert_eq!(s.human(-0.0021), "-2.10 ms");
        assert_eq!(s.human(f64::NAN), "n/a");
        assert_eq!(s.human(f64::INFINITY), "n/a");
        assert_eq!(Unit::Bytes.human(512.0), "512 B");
        assert_eq!(Unit::Bytes.human(3.0 * (1u64 << 30) as f64), "3.00 GiB");
        assert_eq!(Unit::Count.human(9999.0), "9999");
        assert_eq!(Unit::Count.human(1_234_567_890.0), "1.23 G");
        assert_eq!(Unit::Count.human(12_345.0), "12.3 k");
        assert_eq!(Unit::Percent.human(129.64), "130 %");
        assert_eq!(Unit::OpsPerSecond.human(25_000.0), "25.0 k ops/s");
    }

    #[test]
    fn strings_round_trip() {
        for u in UNITS {
            assert_eq!(Unit::parse(u.as_str()), Some(u));
        }
        for s in STATUSES {
            assert_eq!(RunStatus::parse(s.as_str()), s);
        }
        for d in [Direction::LowerIsBetter, Direction::HigherIsBetter] {
            assert_eq!(Direction::parse(d.as_str()), Some(d));
        }
        assert_eq!(RunStatus::parse("from a newer harness"), RunStatus::Failed);
    }

    #[test]
    fn worse_follows_the_direction() {
        assert!(Direction::LowerIsBetter.is_worse(0.1));
        assert!(!Direction::LowerIsBetter.is_worse(-0.1));
        assert!(Direction::HigherIsBetter.is_worse(-0.1));
        assert!(!Direction::HigherIsBetter.is_worse(0.0));
        assert_eq!(
            Verdict::of_change(Direction::HigherIsBetter, 0.2),
            Verdict::Improvement
        );
    }

    #[test]
    fn json_strings_are_those_of_the_outputs() {
        let j = |v: &dyn erased::Ser| v.json();
        assert_eq!(j(&Verdict::NoBaseline), "\"no_baseline\"");
        assert_eq!(j(&RunStatus::BuildFailed), "\"build_failed\"");
        assert_eq!(j(&Unit::MegabytesPerSecond), "\"megabytes_per_second\"");
        assert_eq!(j(&Direction::HigherIsBetter), "\"higher_is_better\"");
    }

    mod erased {
        pub trait Ser {
            fn json(&self) -> String;
        }
        impl<T: serde::Serialize> Ser for T {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap()
            }
        }
    }
}

/// Every metric a `command` scenario records: its whole wall time, the
/// `command` process's (runner's `Rep::process`: CPU, peak memory, the
/// kernel's I/O counters, instructions and cycles where counted) and the
/// sampler's own CPU. A threshold names one of them, in full or by its
/// last part (runner's tests keep this list equal to what is recorded).
pub const COMMAND_METRICS: &[&str] = &[
    "wall",
    "command.cpu_user",
    "command.cpu_sys",
    "command.peak_rss",
    "command.io.rchar",
    "command.io.wchar",
    "command.io.syscr",
    "command.io.syscw",
    "command.io.read_bytes",
    "command.io.write_bytes",
    "command.instructions",
    "command.cycles",
    "harness.sampler_cpu",
];

/// Whether a threshold's key names `metric`: in full, or its last part
/// (`wall`, `peak_rss`, `upload.wall`… as `Thresholds::get` reads them).
pub fn threshold_names(key: &str, metric: &str) -> bool {
    key == metric || metric.rsplit('.').next() == Some(key)
}

/// Whether `s` is a full commit id as git writes it: 40 lowercase hex
/// digits (SHA-1), or 64 (SHA-256 repositories). Anything else read from
/// a store or a queue is not a commit, and never a file name.
pub fn is_full_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod sha_tests {
    #[test]
    fn full_shas_only() {
        use super::is_full_sha;
        assert!(is_full_sha(&"a".repeat(40)));
        assert!(is_full_sha(&"0123456789abcdef".repeat(4)));
        for bad in [
            "origin/x",
            "../../x",
            "HEAD",
            "abc123",
            &"A".repeat(40),
            &"g".repeat(40),
        ] {
            assert!(!is_full_sha(bad), "{bad}");
        }
        assert!(!is_full_sha(&format!("{}/", "a".repeat(39))));
    }
}
