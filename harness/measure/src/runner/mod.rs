//! Runs a scenario's points against a tree: builds what it needs, runs the
//! repetitions with every process in its own group, and turns what the
//! probes saw into metrics. Nothing here writes to the results database
//! or prints (progress goes through the caller's callback, details
//! through `tracing`). By scenario kind: `command.rs` (any shell command,
//! and instruction counts under valgrind), `sync.rs` (the reference
//! system: servers, proxy, driver), `criterion.rs` (`cargo bench`).

pub mod callgrind;
mod command;
mod criterion;
mod phases;
pub mod proxy;
mod sync;
mod variants;

use crate::probe::HwCounters;
use crate::proc::{self, Exit, Proc};
use callgrind::Callgrind;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use syncbench_model::is_instruction_metric;
use syncbench_model::records::{Profile, Sample};
use syncbench_model::scenario::{Kind, Point, Scenario, Variant};
use syncbench_model::{Direction, MetricValue, Phase, RunStatus, Series, Unit};

/// How a run failed; recorded with the run, never dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Never [`RunStatus::Ok`].
    pub status: RunStatus,
    pub message: String,
}

impl Failure {
    pub fn new(status: RunStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(RunStatus::Failed, message)
    }

    /// A failure from an error, with its whole chain of causes.
    pub fn from_error(status: RunStatus, e: &dyn std::error::Error) -> Self {
        Self::new(status, syncbench_model::error_chain(e))
    }
}

/// What the repetitions of one point produced.
#[derive(Debug, Default)]
pub struct PointResult {
    pub metrics: Vec<Series>,
    pub samples: Vec<(u32, Sample)>,
    pub phases: Vec<Phase>,
    pub failure: Option<Failure>,
    pub recorded_repetitions: u32,
}

#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Overrides the scenario's repetitions.
    pub repetitions: Option<u32>,
    pub sample_interval: Duration,
    /// Where cargo builds the reference system (shared across commits).
    pub target_dir: PathBuf,
    /// Cargo profile of the reference system (`release`; tests use `dev`).
    pub cargo_profile: String,
    /// Run measured commands on this CPU only.
    pub pin_cpu: Option<usize>,
    /// Count instructions for every scenario (`--instructions`), as if
    /// each said `instructions = true`.
    pub instructions: bool,
}

/// One repetition's measurements; phases carry repetition 0 until the
/// point's run numbers them.
#[derive(Debug, Default)]
struct Rep {
    values: Vec<MetricValue>,
    samples: Vec<Sample>,
    phases: Vec<Phase>,
}

impl Rep {
    fn add(&mut self, name: impl Into<String>, unit: Unit, direction: Direction, value: f64) {
        self.values.push(MetricValue {
            name: name.into(),
            unit,
            direction,
            value,
        });
    }

    /// CPU, memory and (where offered) instruction counts of one process.
    /// Peak memory: wait4's `ru_maxrss` where it is above what the child
    /// inherited from the harness (then it is exact, and catches peaks
    /// between samples), else the sampler's (see `Sampled::peaks`); the
    /// larger of the two, since the sampler sums a whole process tree.
    /// Neither (a process that lived too briefly to be sampled and used
    /// less than it inherited): no `peak_rss` for this repetition.
    fn process(&mut self, name: &str, exit: &Exit, hw: Option<(u64, u64)>, peak: Option<u64>) {
        use Direction::LowerIsBetter as Lower;
        // Slack for what the harness allocates between reading its own
        // peak and the child's exec.
        const SLACK: u64 = 1 << 20;
        let own = exit.peak_rss_bytes > exit.inherited_rss_bytes.saturating_add(SLACK);
        let peak = match (peak, own) {
            (Some(p), true) => Some(p.max(exit.peak_rss_bytes)),
            (Some(p), false) => Some(p),
            (None, true) => Some(exit.peak_rss_bytes),
            // Never sampled alive, and wait4 reports only the harness's
            // inherited size: the peak is unknown, so none is recorded
            // (a 0 or the harness's size would be a step that never was).
            (None, false) => None,
        };
        self.add(
            format!("{name}.cpu_user"),
            Unit::Seconds,
            Lower,
            exit.user_s,
        );
        self.add(format!("{name}.cpu_sys"), Unit::Seconds, Lower, exit.sys_s);
        if let Some(peak) = peak {
            self.add(format!("{name}.peak_rss"), Unit::Bytes, Lower, peak as f64);
        }
        if let Some(io) = &exit.io {
            for (field, v) in io.fields() {
                self.add(
                    format!("{name}.{field}"),
                    phases::io_unit(field),
                    Lower,
                    v as f64,
                );
            }
        }
        if let Some((instructions, cycles)) = hw {
            self.add(
                instruction_metric(None, name),
                Unit::Count,
                Lower,
                instructions as f64,
            );
            self.add(format!("{name}.cycles"), Unit::Count, Lower, cycles as f64);
        }
    }
}

/// The name of an instruction count: `PROCESS.instructions` for a whole
/// process, `PHASE.PROCESS.instructions` for one phase. One place, so
/// hardware counters and callgrind give the same names.
pub fn instruction_metric(phase: Option<&str>, process: &str) -> String {
    match phase {
        Some(p) => format!("{p}.{process}.instructions"),
        None => format!("{process}.instructions"),
    }
}

/// Instruction counts of one repetition, however counted: per process
/// (its whole tree) and per phase and process.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    total: BTreeMap<String, u64>,
    phases: BTreeMap<(String, String), u64>,
}

impl Counts {
    fn metrics(&self) -> Vec<MetricValue> {
        let count = |name: String, v: u64| MetricValue {
            name,
            unit: Unit::Count,
            direction: Direction::LowerIsBetter,
            value: v as f64,
        };
        self.total
            .iter()
            .map(|(p, v)| count(instruction_metric(None, p), *v))
            .chain(
                self.phases
                    .iter()
                    .map(|((ph, p), v)| count(instruction_metric(Some(ph), p), *v)),
            )
            .collect()
    }
}

#[derive(Debug)]
pub struct Runner {
    pub tree: PathBuf,
    pub opts: RunnerOptions,
    pub interrupted: Arc<AtomicBool>,
    hw_available: bool,
}

/// The metric of instruction counts under valgrind (command scenarios).
pub const INSTRUCTIONS: &str = "command.instructions";

/// The last `n` bytes of a log file, for error messages.
pub fn tail(path: &Path, n: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(n)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s.trim().to_owned()
}

impl Runner {
    pub fn new(tree: PathBuf, opts: RunnerOptions, interrupted: Arc<AtomicBool>) -> Runner {
        Runner {
            tree,
            opts,
            interrupted,
            hw_available: HwCounters::availability().is_ok(),
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Where variant `v` is built: the default's (and a variant's that
    /// builds the same, setting only what its processes get) in the run's
    /// target dir, any other's in a directory of its own under it, so
    /// builds never overwrite each other and each is kept for the next run.
    pub fn target_dir(&self, v: &Variant) -> PathBuf {
        if v.changes_build() {
            self.opts.target_dir.join("variants").join(&v.name)
        } else {
            self.opts.target_dir.clone()
        }
    }

    /// The `Cargo.lock` variant `v` is built with: the tree's, or that of
    /// its copy with the variant's dependency versions.
    pub fn lock_file(&self, v: &Variant) -> PathBuf {
        if v.dependencies.is_empty() {
            self.tree.join("Cargo.lock")
        } else {
            self.target_dir(v).join("tree").join("Cargo.lock")
        }
    }

    /// The cargo profile variant `v` is built with.
    fn profile_of<'a>(&'a self, v: &'a Variant) -> &'a str {
        v.profile.as_deref().unwrap_or(&self.opts.cargo_profile)
    }

    /// A binary of the system as variant `v` built it.
    fn bin(&self, v: &Variant, name: &str) -> PathBuf {
        let dir = match self.profile_of(v) {
            "dev" | "test" => "debug",
            p => p,
        };
        self.target_dir(v).join(dir).join(name)
    }

    /// The build command of `variant` of `scenario` (none: nothing to
    /// build), and the tree it builds in.
    fn build_command(
        &self,
        scenario: &Scenario,
        variant: &Variant,
    ) -> Result<Option<(std::process::Command, PathBuf)>, Failure> {
        if let Some(t) = &variant.toolchain {
            variants::ensure_toolchain(t)?;
        }
        let mut cmd = match &scenario.kind {
            Kind::Sync { .. } => {
                let mut c = syncbench_model::secrets::command("cargo");
                if let Some(t) = &variant.toolchain {
                    c.arg(format!("+{t}"));
                }
                c.args(["build", "--profile", self.profile_of(variant)])
                    .args(["--bin", "sync-server", "--bin", "sync-client"]);
                // The mail exchanger exists from the blobs change on; older
                // commits build without it (their driver lacks the mail
                // workload and says so).
                if self.tree.join("crates/mx/Cargo.toml").exists() {
                    c.args(["--bin", "sync-mx"]);
                }
                if !variant.features.is_empty() {
                    c.args(["--features", &variant.features.join(",")]);
                }
                c.arg("--target-dir").arg(self.target_dir(variant));
                c
            }
            Kind::Command { build, .. } => match variant.build.as_ref().or(build.as_ref()) {
                Some(b) => {
                    let mut c = syncbench_model::secrets::command("sh");
                    c.args(["-c", b]);
                    // rustup's proxies (cargo, rustc) follow this.
                    if let Some(t) = &variant.toolchain {
                        c.env("RUSTUP_TOOLCHAIN", t);
                    }
                    c
                }
                None => return Ok(None),
            },
            Kind::Criterion { .. } => return Ok(None),
        };
        if let Some(flags) = &variant.rustflags {
            cmd.env("RUSTFLAGS", flags);
        }
        // Dependencies at other versions: in a copy of the tree, so the
        // user's Cargo.lock is never touched; the build runs there.
        let tree = if variant.dependencies.is_empty() {
            self.tree.clone()
        } else {
            variants::pinned_tree(&self.tree, &self.target_dir(variant), variant)?
        };
        cmd.current_dir(&tree);
        Ok(Some((cmd, tree)))
    }

    /// Runs the build a scenario needs (not measured). For sync scenarios:
    /// the reference system, release, from the tree under test.
    pub fn build(&self, scenario: &Scenario, variant: &Variant) -> Result<(), Failure> {
        warn_removed(scenario);
        if let Some(setup) = &scenario.setup {
            tracing::info!("setup: {setup}");
            let out = syncbench_model::secrets::command("sh")
                .args(["-c", setup])
                .envs(syncbench_model::secrets::passed(&scenario.pass_env))
                .current_dir(&self.tree)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| Failure::failed(format!("running the setup: {e}")))?;
            if !out.status.success() {
                return Err(Failure::failed(format!(
                    "the scenario's setup `{setup}` failed ({}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        // Ctrl-C reaches rustup, git or cargo update (in the foreground
        // group) too: say interrupted, not failed.
        let prepared = self.build_command(scenario, variant).map_err(|f| {
            if self.interrupted() {
                Failure::new(
                    RunStatus::Interrupted,
                    "interrupted while preparing the build",
                )
            } else {
                f
            }
        });
        let Some((mut cmd, _)) = prepared? else {
            return Ok(());
        };
        let log = tempfile::NamedTempFile::new()
            .map_err(|e| Failure::new(RunStatus::BuildFailed, e.to_string()))?;
        cmd.envs(syncbench_model::secrets::passed(&scenario.pass_env))
            .stdin(Stdio::null())
            .stdout(log_handle(&log, RunStatus::BuildFailed)?)
            .stderr(log_handle(&log, RunStatus::BuildFailed)?);
        tracing::info!("building: {cmd:?}");
        let (mut p, _child) = proc::spawn(&mut cmd).map_err(|e| {
            Failure::new(RunStatus::BuildFailed, format!("starting the build: {e}"))
        })?;
        // Builds get a generous hour; Ctrl-C still stops them at once.
        let Some(exit) = p.wait_until(Instant::now() + Duration::from_secs(3600), &|| {
            self.interrupted()
        }) else {
            p.stop(Duration::from_secs(2));
            return Err(if self.interrupted() {
                Failure::new(RunStatus::Interrupted, "interrupted during the build")
            } else {
                Failure::new(RunStatus::BuildFailed, "the build took over an hour")
            });
        };
        if !exit.success() {
            return Err(Failure::new(
                RunStatus::BuildFailed,
                match tail(log.path(), 2000) {
                    out if out.is_empty() => {
                        format!("build {} (it printed nothing)", exit.describe())
                    }
                    out => format!("build {}:\n{out}", exit.describe()),
                },
            ));
        }
        Ok(())
    }

    fn repetition(&self, scenario: &Scenario, point: &Point) -> Result<Rep, Failure> {
        match &scenario.kind {
            Kind::Sync { workload } => self.sync_repetition(scenario, workload, point, None),
            Kind::Command { run, .. } => {
                self.command_repetition(scenario, &run_line(scenario, run, point), point)
            }
            Kind::Criterion { .. } => Err(Failure::failed(
                "criterion scenarios run through Runner::criterion",
            )),
        }
    }

    /// One repetition of a point and its metrics, for callers that
    /// schedule repetitions themselves (interleaved A/B runs). With
    /// `instructions`, only instruction counts come back (exact, and about
    /// 50x slower under valgrind).
    pub fn measure_once(
        &self,
        scenario: &Scenario,
        point: &Point,
        instructions: bool,
    ) -> Result<Vec<MetricValue>, Failure> {
        if instructions && !self.hw_available {
            return self.instruction_run(scenario, point);
        }
        let values = self.repetition(scenario, point)?.values;
        if instructions {
            return Ok(values
                .into_iter()
                .filter(|m| is_instruction_metric(&m.name))
                .collect());
        }
        Ok(values)
    }

    /// Whether a point gets a run under valgrind after its repetitions:
    /// instruction counts were asked for (by the scenario or the whole
    /// run) and the kernel has no counters to give them in every
    /// repetition.
    fn wants_valgrind(&self, scenario: &Scenario) -> bool {
        (scenario.instructions || self.opts.instructions)
            && !self.hw_available
            && !matches!(scenario.kind, Kind::Criterion { .. })
    }

    /// Instruction counts under valgrind: a command's (all its processes
    /// together), or every process of a sync point, per phase too.
    fn instruction_run(
        &self,
        scenario: &Scenario,
        point: &Point,
    ) -> Result<Vec<MetricValue>, Failure> {
        match &scenario.kind {
            Kind::Command { run, .. } => {
                let n =
                    self.count_instructions(scenario, &run_line(scenario, run, point), point)?;
                Ok(vec![MetricValue {
                    name: INSTRUCTIONS.into(),
                    unit: Unit::Count,
                    direction: Direction::LowerIsBetter,
                    value: n as f64,
                }])
            }
            Kind::Sync { workload } => {
                let cg = Callgrind::in_temp_dir()?;
                self.sync_repetition(scenario, workload, point, Some(&cg))
                    .map(|r| r.values)
            }
            Kind::Criterion { .. } => Err(Failure::failed(
                "criterion benchmarks are not counted under valgrind",
            )),
        }
    }

    /// Instructions by function of every process of one run of a point
    /// under callgrind (for `syncbench profile`): by process name
    /// (`server`, `driver`, `command`), summed over its dumps and children.
    pub fn profile(&self, scenario: &Scenario, point: &Point) -> Result<Profile, Failure> {
        let cg = Callgrind::in_temp_dir()?;
        match &scenario.kind {
            Kind::Sync { workload } => {
                self.sync_repetition(scenario, workload, point, Some(&cg))?;
            }
            Kind::Command { run, .. } => {
                self.command_under_callgrind(
                    scenario,
                    &run_line(scenario, run, point),
                    point,
                    &cg,
                )?;
            }
            Kind::Criterion { .. } => {
                return Err(Failure::failed(
                    "criterion benchmarks are not profiled; use a command scenario",
                ));
            }
        }
        let mut out = Profile::new();
        for part in cg.parts() {
            let functions = out.entry(part.name.clone()).or_default();
            callgrind::add_functions(&part.path, functions)
                .map_err(|e| Failure::failed(format!("reading {}: {e}", part.path.display())))?;
        }
        Ok(out)
    }

    /// Runs the warm-up and measured repetitions of one point, then the
    /// run under valgrind where instruction counts are asked for. Stops at
    /// the first failure (a failed repetition makes the run's figures
    /// suspect).
    pub fn run_point(
        &self,
        scenario: &Scenario,
        point: &Point,
        on_rep: &mut dyn FnMut(u32, u32),
    ) -> PointResult {
        let reps = self.opts.repetitions.unwrap_or(scenario.repetitions);
        let valgrind = self.wants_valgrind(scenario);
        let total = scenario.warmup + reps + u32::from(valgrind);
        let mut out = PointResult::default();
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        let add = |series: &mut BTreeMap<String, Series>, m: MetricValue| {
            series
                .entry(m.name.clone())
                .or_insert_with(|| Series {
                    name: m.name,
                    unit: m.unit,
                    direction: m.direction,
                    values: vec![],
                })
                .values
                .push(m.value);
        };
        for i in 0..scenario.warmup + reps {
            on_rep(i, total);
            let rep = match self.repetition(scenario, point) {
                Ok(r) => r,
                Err(f) => {
                    out.failure = Some(f);
                    break;
                }
            };
            if i < scenario.warmup {
                continue;
            }
            let n = i - scenario.warmup;
            for m in rep.values {
                add(&mut series, m);
            }
            out.samples.extend(rep.samples.into_iter().map(|s| (n, s)));
            out.phases
                .extend(rep.phases.into_iter().map(|p| Phase { repetition: n, ..p }));
            out.recorded_repetitions += 1;
        }
        if valgrind && out.failure.is_none() {
            on_rep(total - 1, total);
            match self.instruction_run(scenario, point) {
                Ok(values) => {
                    for m in values {
                        add(&mut series, m);
                    }
                }
                Err(f) => out.failure = Some(f),
            }
        }
        on_rep(total, total);
        out.metrics = series.into_values().collect();
        out
    }

    fn wait(
        &self,
        p: &mut Proc,
        deadline: Instant,
        what: &str,
        timeout: Duration,
    ) -> Result<Exit, Failure> {
        match p.wait_until(deadline, &|| self.interrupted()) {
            Some(e) => Ok(e),
            None if self.interrupted() => Err(Failure::new(
                RunStatus::Interrupted,
                format!("interrupted while {what} ran"),
            )),
            None => Err(Failure::new(
                RunStatus::Timeout,
                format!("{what} did not finish within the timeout of {timeout:?}"),
            )),
        }
    }
}

fn sampler_overhead(rep: &mut Rep, sampled: &crate::probe::Sampled) {
    if sampled.wall_s > 0.0 {
        rep.add(
            "harness.sampler_cpu",
            Unit::Percent,
            Direction::LowerIsBetter,
            100.0 * sampled.own_cpu_s / sampled.wall_s,
        );
    }
}

/// A log file's handle for a child's stdout or stderr.
fn log_handle(log: &tempfile::NamedTempFile, status: RunStatus) -> Result<std::fs::File, Failure> {
    log.reopen()
        .map_err(|e| Failure::new(status, e.to_string()))
}

/// Warns when a scenario's commands name a variable the credential rule
/// removes (secrets.rs) and `pass_env` does not give back: they will find
/// it unset, which otherwise fails far from its cause.
/// A command scenario's run line for `point`: its variant's, else the
/// scenario's, with the point's parameters filled in.
fn run_line(scenario: &Scenario, run: &str, point: &Point) -> String {
    point.substitute(scenario.variant_of(point).run.as_deref().unwrap_or(run))
}

fn warn_removed(scenario: &Scenario) {
    let mut text = scenario.setup.clone().unwrap_or_default();
    match &scenario.kind {
        Kind::Command { build, run } => {
            text.push('\n');
            text.push_str(build.as_deref().unwrap_or(""));
            text.push('\n');
            text.push_str(run);
        }
        Kind::Criterion { bench, .. } => text.push_str(bench),
        Kind::Sync { .. } => {}
    }
    for name in syncbench_model::secrets::asked_but_removed(&text, &scenario.pass_env) {
        tracing::warn!(
            "scenario {}'s commands use ${name}, which syncbench removes from the \
             environment of measured code (its name says it holds a credential); \
             if the scenario needs it, add `pass_env = [\"{name}\"]` to {}",
            scenario.name,
            scenario.path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `model::COMMAND_METRICS` (what scenario files may set thresholds
    /// for before a run) is exactly what a command's repetition records.
    #[test]
    fn command_metrics_are_what_a_command_records() {
        let mut rep = Rep::default();
        let exit = proc::Exit {
            code: Some(0),
            signal: None,
            user_s: 0.1,
            sys_s: 0.1,
            peak_rss_bytes: 1 << 30,
            inherited_rss_bytes: 0,
            io: Some(crate::procfs::IoCounters::default()),
            at: Instant::now(),
        };
        rep.add("wall", Unit::Seconds, Direction::LowerIsBetter, 1.0);
        rep.process("command", &exit, Some((1, 1)), Some(1));
        let sampled = crate::probe::Sampled {
            own_cpu_s: 0.01,
            wall_s: 1.0,
            ..Default::default()
        };
        sampler_overhead(&mut rep, &sampled);
        let mut recorded: Vec<&str> = rep.values.iter().map(|v| v.name.as_str()).collect();
        let mut listed = syncbench_model::COMMAND_METRICS.to_vec();
        recorded.sort_unstable();
        listed.sort_unstable();
        assert_eq!(recorded, listed);
    }

    /// A process never sampled alive whose wait4 peak is only what it
    /// inherited has no known peak: nothing is recorded, neither 0 nor
    /// the harness's size. Its own larger peak is exact from wait4.
    #[test]
    fn a_peak_nobody_saw_is_not_recorded() {
        let exit = |peak: u64| proc::Exit {
            code: Some(0),
            signal: None,
            user_s: 0.0,
            sys_s: 0.0,
            peak_rss_bytes: peak,
            inherited_rss_bytes: 24 << 20,
            io: None,
            at: Instant::now(),
        };
        let peak_of = |e: &proc::Exit, sampled: Option<u64>| {
            let mut rep = Rep::default();
            rep.process("command", e, None, sampled);
            rep.values
                .iter()
                .find(|v| v.name == "command.peak_rss")
                .map(|v| v.value)
        };
        assert_eq!(peak_of(&exit(24 << 20), None), None);
        assert_eq!(
            peak_of(&exit(24 << 20), Some(3 << 20)),
            Some((3 << 20) as f64)
        );
        assert_eq!(peak_of(&exit(200 << 20), None), Some((200 << 20) as f64));
        assert_eq!(
            peak_of(&exit(200 << 20), Some(300 << 20)),
            Some((300 << 20) as f64)
        );
    }
}
