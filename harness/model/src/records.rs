//! What is recorded: the machine and the commit of a run, its samples,
//! and the rows the store keeps and gives back (defined here, below the
//! store, so the analysis reads them without depending on it).

use crate::{Confirmation, Phase, PointKey, RunStatus, Series, Triage, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: u32,
    pub memory_bytes: u64,
    pub os: String,
    pub kernel: String,
    /// `available`, or why hardware counters are not.
    pub hw_counters: String,
    /// The name people gave the machine (`--machine-tag`); not part of
    /// its fingerprint. Absent from JSON when there is none (outputs
    /// scripts read stay as they were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl Machine {
    /// Results are keyed by this: same hardware and system, same series.
    /// Memory is rounded to GiB so a kernel reserving a little more does not
    /// start a new machine.
    pub fn fingerprint(&self) -> String {
        format!(
            "{} | {} cores | {} GiB | {} | {}",
            self.cpu,
            self.cores,
            (self.memory_bytes as f64 / (1u64 << 30) as f64).round(),
            self.os,
            self.kernel
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commit {
    pub sha: String,
    pub parents: Vec<String>,
    pub author: String,
    pub time_unix: i64,
    pub subject: String,
    /// The working tree had uncommitted changes to tracked files.
    pub dirty: bool,
    pub branch: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Which tracked process tree (`server`, `driver`, `command`).
    pub process: String,
    /// Milliseconds since the repetition started.
    pub t_ms: f64,
    /// Percent of one core, summed over the tree.
    pub cpu_pct: f64,
    pub rss_bytes: u64,
}

/// Everything recorded for one run, written in one transaction.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub machine: Machine,
    pub commit: Commit,
    pub scenario: String,
    pub point: String,
    pub params_json: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub repetitions: u32,
    pub harness_version: String,
    pub toolchain: String,
    /// What else a result depends on, beside the machine and the
    /// toolchain, where it could be read: `cargo_lock` (a hash of the
    /// `Cargo.lock` built), `governor` and `cpufreq_driver` (the CPU's
    /// frequency policy). Empty: nothing known.
    pub environment: BTreeMap<String, String>,
    pub command_line: String,
    pub started_unix: f64,
    pub finished_unix: f64,
    pub metrics: Vec<Series>,
    pub samples: Vec<(u32, Sample)>,
    pub phases: Vec<Phase>,
}

/// A stored run, as `show` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub machine: String,
    pub commit: String,
    pub dirty: bool,
    pub scenario: String,
    pub point: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub started_unix: f64,
}

/// The run of a commit (see the module doc), located in its series and history.
#[derive(Debug, Clone)]
pub struct CommitRun {
    pub id: i64,
    pub key: PointKey,
    /// The point's parameters, as JSON.
    pub params: String,
    pub sha: String,
    pub time_unix: i64,
    pub parents: Vec<String>,
    pub status: RunStatus,
    pub error: Option<String>,
    /// Measured on a working tree with uncommitted changes.
    pub dirty: bool,
    /// When the run started: tells a run from another of the same point
    /// and commit stored under a reused id.
    pub started_unix: f64,
    /// Its [`RunRecord::environment`], as stored (JSON; empty: unknown).
    pub environment: String,
}

/// A commit as recorded.
#[derive(Debug, Clone)]
pub struct CommitRow {
    pub sha: String,
    pub parents: Vec<String>,
    pub author: String,
    pub time_unix: i64,
    pub subject: String,
}

/// A machine as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MachineRow {
    pub fingerprint: String,
    /// The name people gave it (`--machine-tag`).
    pub tag: Option<String>,
    pub cpu: String,
    pub cores: i64,
    pub memory_bytes: i64,
    pub os: String,
    /// Its runs, and the newest one's start.
    pub runs: i64,
    pub last_run_unix: Option<f64>,
}

/// One metric of one point measured A/B, stored with both sides' values
/// in measuring order (`a[i]`, `b[i]` is pair i).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AbRecord {
    /// 0 before it is stored.
    pub id: i64,
    pub machine: String,
    pub scenario: String,
    /// B's point (and A's, but for a comparison of variants).
    pub point: String,
    /// A's point where it is not B's: two variants compared (absent from
    /// JSON otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a_point: Option<String>,
    pub metric: String,
    pub a_sha: String,
    pub b_sha: String,
    /// interleaved or unpaired.
    pub mode: String,
    pub verdict: Verdict,
    /// B against A (0.03 = 3% higher) and its interval; the interval is
    /// `None` for the unpaired way (a test, not an interval).
    pub change: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub threshold: f64,
    pub pairs: i64,
    /// Why it stopped (`abtest::Stop`), if it ran.
    pub stop: Option<String>,
    pub seconds: f64,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub error: Option<String>,
    /// What asked for it: compare, check or confirm.
    pub purpose: String,
    pub created_unix: f64,
}

/// One change point of one series: the commit of the new level and the
/// one before it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ConfirmationKey {
    pub machine: String,
    pub scenario: String,
    pub point: String,
    pub metric: String,
    pub before_sha: String,
    pub sha: String,
}

/// Where the confirmation of a change point stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConfirmationRow {
    pub key: ConfirmationKey,
    pub state: Confirmation,
    /// What decided it, in words (the interval, or why there is none).
    pub reason: String,
    /// The A/B run that decided it.
    pub ab_id: Option<i64>,
    /// `host:pid` of the `confirm` that claimed it.
    pub owner: String,
    pub updated_unix: f64,
}

/// A person's decision about an alarm: the metric at the commit, in one
/// scenario or (`None`) every scenario.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TriageRecord {
    pub id: i64,
    pub commit: String,
    pub metric: String,
    pub scenario: Option<String>,
    pub state: Triage,
    /// The commit that acknowledged or fixed it.
    pub by: Option<String>,
    pub who: String,
    pub note: Option<String>,
    pub created_unix: f64,
}

/// A stored `syncbench profile`: one point at two commits.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRecord {
    /// The machine's fingerprint.
    pub machine: String,
    pub scenario: String,
    pub point: String,
    pub base_sha: String,
    pub new_sha: String,
    pub created_unix: f64,
    /// `ops::profile::ProfileDiff` as JSON.
    pub diff: String,
}

/// One function's instructions: its own, and with what it called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cost {
    #[serde(rename = "self")]
    pub exclusive: u64,
    pub inclusive: u64,
}

/// Instructions by function, summed over files: what `syncbench profile`
/// compares.
pub type Functions = BTreeMap<String, Cost>;

/// Instructions by function, by process: one run of a point under
/// callgrind.
pub type Profile = BTreeMap<String, Functions>;
