//! Runs a scenario's points against a tree: builds what it needs, runs the
//! repetitions with every process in its own group, and turns what the
//! probes saw into metrics. Nothing here writes to the results database.

use crate::metric::{Direction, Series, Unit};
use crate::probe::{HwCounters, Sample, Sampler};
use crate::proc::{self, Exit, Proc};
use crate::scenario::{Kind, Point, Scenario};
use protocol::driver::{DRIVER_CONTRACT_VERSION, DriverEvent, DriverLine, EXIT_UNKNOWN_WORKLOAD};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a run failed; recorded with the run, never dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `failed`, `timeout`, `interrupted`, `build_failed` or `unsupported`.
    pub status: &'static str,
    pub message: String,
}

impl Failure {
    fn new(status: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// What the repetitions of one point produced.
#[derive(Debug, Default)]
pub struct PointResult {
    pub metrics: Vec<Series>,
    pub samples: Vec<(u32, Sample)>,
    pub phases: Vec<(u32, String, f64, f64)>,
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
    /// Print process ids and build commands on stderr.
    pub verbose: bool,
    /// Run measured commands on this CPU only.
    pub pin_cpu: Option<usize>,
}

/// One repetition's measurements.
#[derive(Debug, Default)]
struct Rep {
    values: Vec<(String, Unit, Direction, f64)>,
    samples: Vec<Sample>,
    phases: Vec<(String, f64, f64)>,
}

impl Rep {
    fn add(&mut self, name: impl Into<String>, unit: Unit, dir: Direction, v: f64) {
        self.values.push((name.into(), unit, dir, v));
    }

    /// CPU, memory and (where offered) instruction counts of one process.
    fn process(&mut self, name: &str, exit: &Exit, hw: Option<(u64, u64)>) {
        use Direction::LowerIsBetter as Lower;
        self.add(
            format!("{name}.cpu_user"),
            Unit::Seconds,
            Lower,
            exit.user_s,
        );
        self.add(format!("{name}.cpu_sys"), Unit::Seconds, Lower, exit.sys_s);
        self.add(
            format!("{name}.peak_rss"),
            Unit::Bytes,
            Lower,
            exit.peak_rss_bytes as f64,
        );
        if let Some((instructions, cycles)) = hw {
            self.add(
                format!("{name}.instructions"),
                Unit::Count,
                Lower,
                instructions as f64,
            );
            self.add(format!("{name}.cycles"), Unit::Count, Lower, cycles as f64);
        }
    }
}

#[derive(Debug)]
pub struct Runner {
    pub tree: PathBuf,
    pub opts: RunnerOptions,
    pub interrupted: Arc<AtomicBool>,
    hw_available: bool,
}

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

    fn bin(&self, name: &str) -> PathBuf {
        let dir = match self.opts.cargo_profile.as_str() {
            "dev" | "test" => "debug",
            p => p,
        };
        self.opts.target_dir.join(dir).join(name)
    }

    /// Runs the build a scenario needs (not measured). For sync scenarios:
    /// the reference system, release, from the tree under test.
    pub fn build(&self, scenario: &Scenario) -> Result<(), Failure> {
        let mut cmd = match &scenario.kind {
            Kind::Sync { .. } => {
                let mut c = Command::new("cargo");
                c.args(["build", "--profile", &self.opts.cargo_profile])
                    .args(["--bin", "sync-server", "--bin", "sync-client"]);
                // The mail exchanger exists from the blobs change on; older
                // commits build without it (their driver lacks the mail
                // workload and says so).
                if self.tree.join("crates/mx/Cargo.toml").exists() {
                    c.args(["--bin", "sync-mx"]);
                }
                c.arg("--target-dir").arg(&self.opts.target_dir);
                c
            }
            Kind::Command { build: Some(b), .. } => {
                let mut c = Command::new("sh");
                c.args(["-c", b]);
                c
            }
            Kind::Command { build: None, .. } | Kind::Criterion { .. } => return Ok(()),
        };
        let log = tempfile::NamedTempFile::new()
            .map_err(|e| Failure::new("build_failed", e.to_string()))?;
        cmd.current_dir(&self.tree)
            .stdin(Stdio::null())
            .stdout(
                log.reopen()
                    .map_err(|e| Failure::new("build_failed", e.to_string()))?,
            )
            .stderr(
                log.reopen()
                    .map_err(|e| Failure::new("build_failed", e.to_string()))?,
            );
        if self.opts.verbose {
            eprintln!("syncbench: building: {cmd:?}");
        }
        let (mut p, _child) = proc::spawn(&mut cmd)
            .map_err(|e| Failure::new("build_failed", format!("starting the build: {e}")))?;
        // Builds get a generous hour; Ctrl-C still stops them at once.
        let Some(exit) = p.wait_until(Instant::now() + Duration::from_secs(3600), &|| {
            self.interrupted()
        }) else {
            p.stop(Duration::from_secs(2));
            return Err(if self.interrupted() {
                Failure::new("interrupted", "interrupted during the build")
            } else {
                Failure::new("build_failed", "the build took over an hour")
            });
        };
        if !exit.success() {
            return Err(Failure::new(
                "build_failed",
                format!("build {}:\n{}", exit.describe(), tail(log.path(), 2000)),
            ));
        }
        Ok(())
    }

    fn repetition(&self, scenario: &Scenario, point: &Point) -> Result<Rep, Failure> {
        match &scenario.kind {
            Kind::Sync { workload } => self.sync_repetition(scenario, workload, point),
            Kind::Command { run, .. } => {
                self.command_repetition(scenario, &point.substitute(run), point)
            }
            Kind::Criterion { .. } => Err(Failure::new(
                "failed",
                "criterion scenarios run through Runner::criterion",
            )),
        }
    }

    /// One repetition of a point and its metrics, for callers that
    /// schedule repetitions themselves (interleaved A/B runs). With
    /// `instructions`, a command is run under valgrind instead and only
    /// `command.instructions` comes back (exact, and about 50x slower).
    pub fn measure_once(
        &self,
        scenario: &Scenario,
        point: &Point,
        instructions: bool,
    ) -> Result<Vec<(String, Unit, Direction, f64)>, Failure> {
        match (&scenario.kind, instructions) {
            (Kind::Command { run, .. }, true) => {
                let n = self.count_instructions(scenario, &point.substitute(run), point)?;
                Ok(vec![(
                    "command.instructions".into(),
                    Unit::Count,
                    Direction::LowerIsBetter,
                    n as f64,
                )])
            }
            (_, true) => Err(Failure::new(
                "failed",
                "instruction counts are measured for command scenarios only",
            )),
            _ => self.repetition(scenario, point).map(|r| r.values),
        }
    }

    /// Runs the warm-up and measured repetitions of one point. Stops at the
    /// first failure (a failed repetition makes the run's figures suspect).
    pub fn run_point(
        &self,
        scenario: &Scenario,
        point: &Point,
        on_rep: &mut dyn FnMut(u32, u32),
    ) -> PointResult {
        let reps = self.opts.repetitions.unwrap_or(scenario.repetitions);
        let total = scenario.warmup + reps;
        let mut out = PointResult::default();
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        for i in 0..total {
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
            for (name, unit, direction, v) in rep.values {
                series
                    .entry(name.clone())
                    .or_insert_with(|| Series {
                        name,
                        unit,
                        direction,
                        values: vec![],
                    })
                    .values
                    .push(v);
            }
            out.samples.extend(rep.samples.into_iter().map(|s| (n, s)));
            out.phases
                .extend(rep.phases.into_iter().map(|(p, a, b)| (n, p, a, b)));
            out.recorded_repetitions += 1;
        }
        if let (Kind::Command { run, .. }, true, None) =
            (&scenario.kind, scenario.instructions, &out.failure)
        {
            match self.count_instructions(scenario, &point.substitute(run), point) {
                Ok(n) => {
                    series.insert(
                        "command.instructions".into(),
                        Series {
                            name: "command.instructions".into(),
                            unit: Unit::Count,
                            direction: Direction::LowerIsBetter,
                            values: vec![n as f64],
                        },
                    );
                }
                Err(f) => out.failure = Some(f),
            }
        }
        on_rep(total, total);
        out.metrics = series.into_values().collect();
        out
    }

    /// Runs `cargo bench ARGS -- FILTER` in the tree with the shared target
    /// dir, then reads the criterion results it wrote (those newer than
    /// its start: the target dir keeps older ones).
    pub fn criterion(&self, scenario: &Scenario) -> Result<Vec<crate::ingest::Ingested>, Failure> {
        let Kind::Criterion { bench, filter } = &scenario.kind else {
            return Err(Failure::new(
                "failed",
                format!("{} is not a criterion scenario", scenario.name),
            ));
        };
        let log =
            tempfile::NamedTempFile::new().map_err(|e| Failure::new("failed", e.to_string()))?;
        let mut cmd = Command::new("cargo");
        // criterion finds its output dir from the environment, not from
        // cargo's --target-dir: set both through it.
        cmd.arg("bench")
            .args(bench.split_whitespace())
            .env("CARGO_TARGET_DIR", &self.opts.target_dir)
            .env("CRITERION_HOME", self.opts.target_dir.join("criterion"));
        if let Some(f) = filter {
            cmd.args(["--", f]);
        }
        cmd.current_dir(&self.tree)
            .stdin(Stdio::null())
            .stdout(
                log.reopen()
                    .map_err(|e| Failure::new("failed", e.to_string()))?,
            )
            .stderr(
                log.reopen()
                    .map_err(|e| Failure::new("failed", e.to_string()))?,
            );
        if self.opts.verbose {
            eprintln!("syncbench: running {cmd:?}");
        }
        let started = std::time::SystemTime::now();
        let (mut p, _child) = proc::spawn(&mut cmd)
            .map_err(|e| Failure::new("failed", format!("starting cargo bench: {e}")))?;
        let exit = match self.wait(
            &mut p,
            Instant::now() + scenario.timeout,
            "cargo bench",
            scenario.timeout,
        ) {
            Ok(e) => e,
            Err(f) => {
                p.stop(Duration::from_secs(2));
                return Err(f);
            }
        };
        if !exit.success() {
            let out = tail(log.path(), 2000);
            let status = if out.contains("error[E") || out.contains("could not compile") {
                "build_failed"
            } else {
                "failed"
            };
            return Err(Failure::new(
                status,
                format!("cargo bench {}:\n{out}", exit.describe()),
            ));
        }
        let found =
            crate::ingest::criterion_since(&self.opts.target_dir.join("criterion"), started)
                .map_err(|e| Failure::new("failed", e.to_string()))?;
        if found.is_empty() {
            return Err(Failure::new(
                "failed",
                format!("cargo bench ran no criterion benchmark (filter {filter:?})"),
            ));
        }
        Ok(found)
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
                "interrupted",
                format!("interrupted while {what} ran"),
            )),
            None => Err(Failure::new(
                "timeout",
                format!("{what} did not finish within the timeout of {timeout:?}"),
            )),
        }
    }

    /// Instructions the command executes, all processes together, counted
    /// by valgrind's cachegrind (instruction counting only): the same for
    /// the same binary and input whatever else the machine does.
    fn count_instructions(
        &self,
        scenario: &Scenario,
        run: &str,
        point: &Point,
    ) -> Result<u64, Failure> {
        let tmp = tempfile::tempdir().map_err(|e| Failure::new("failed", e.to_string()))?;
        // One log per process (%p): an exec'd child would truncate a shared one.
        let log = tmp.path().join("valgrind.%p.log");
        let mut cmd = Command::new("valgrind");
        cmd.args([
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            "--trace-children=yes",
        ])
        .arg(format!("--log-file={}", log.display()))
        .args(["sh", "-c", run])
        .current_dir(&self.tree)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        for (k, v) in &point.0 {
            cmd.env(format!("SYNCBENCH_PARAM_{}", k.to_uppercase()), v);
        }
        let (mut p, _child) = proc::spawn(&mut cmd).map_err(|e| {
            Failure::new(
                "failed",
                format!("starting valgrind (is it installed?): {e}"),
            )
        })?;
        // Valgrind runs some 50 times slower than native.
        let limit = scenario.timeout * 50;
        let exit = self.wait(&mut p, Instant::now() + limit, "valgrind", limit)?;
        let mut text = String::new();
        for entry in std::fs::read_dir(tmp.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            text += &std::fs::read_to_string(entry.path()).unwrap_or_default();
        }
        let tail_of = |t: &str| t[t.len().saturating_sub(2000)..].to_owned();
        if !exit.success() {
            return Err(Failure::new(
                "failed",
                format!(
                    "`{run}` under valgrind {}:\n{}",
                    exit.describe(),
                    tail_of(&text)
                ),
            ));
        }
        let counts: Vec<u64> = text
            .lines()
            .filter_map(|l| {
                l.split_once("I   refs:")
                    .map(|(_, n)| n.trim().replace(',', ""))
            })
            .filter_map(|n| n.parse().ok())
            .collect();
        if counts.is_empty() {
            return Err(Failure::new(
                "failed",
                format!(
                    "valgrind reported no instruction count:\n{}",
                    tail_of(&text)
                ),
            ));
        }
        Ok(counts.iter().sum())
    }

    fn command_repetition(
        &self,
        scenario: &Scenario,
        run: &str,
        point: &Point,
    ) -> Result<Rep, Failure> {
        let tmp = tempfile::tempdir().map_err(|e| Failure::new("failed", e.to_string()))?;
        let stderr_path = tmp.path().join("stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| Failure::new("failed", e.to_string()))?;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", run])
            .current_dir(&self.tree)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in &point.0 {
            cmd.env(format!("SYNCBENCH_PARAM_{}", k.to_uppercase()), v);
        }
        if let Some(cpu) = self.opts.pin_cpu {
            proc::pin_to_cpu(&mut cmd, cpu);
        }
        let t0 = Instant::now();
        let (mut p, _child) = proc::spawn(&mut cmd)
            .map_err(|e| Failure::new("failed", format!("starting `{run}`: {e}")))?;
        if self.opts.verbose {
            eprintln!("syncbench: started command pid={}", p.pid);
        }
        let mut hw = self
            .hw_available
            .then(|| HwCounters::attach(p.pid))
            .flatten();
        let sampler = Sampler::start(
            vec![("command".into(), p.pid)],
            self.opts.sample_interval,
            t0,
        );
        let waited = self.wait(
            &mut p,
            t0 + scenario.timeout,
            &format!("`{run}`"),
            scenario.timeout,
        );
        let counts = hw.as_mut().and_then(HwCounters::read);
        let sampled = sampler.finish();
        let exit = match waited {
            Ok(e) => e,
            Err(f) => {
                p.stop(Duration::from_millis(500));
                return Err(f);
            }
        };
        p.stop(Duration::ZERO);
        if !exit.success() {
            return Err(Failure::new(
                "failed",
                format!("`{run}` {}:\n{}", exit.describe(), tail(&stderr_path, 2000)),
            ));
        }
        let mut rep = Rep::default();
        rep.add(
            "wall",
            Unit::Seconds,
            Direction::LowerIsBetter,
            (exit.at - t0).as_secs_f64(),
        );
        rep.process("command", &exit, counts);
        sampler_overhead(&mut rep, &sampled);
        rep.samples = sampled.samples;
        Ok(rep)
    }

    fn sync_repetition(
        &self,
        scenario: &Scenario,
        workload: &str,
        point: &Point,
    ) -> Result<Rep, Failure> {
        let fail = |e: &dyn std::fmt::Display| Failure::new("failed", e.to_string());
        let tmp = tempfile::tempdir().map_err(|e| fail(&e))?;
        let t0 = Instant::now();
        let deadline = t0 + scenario.timeout;
        let server_log = tmp.path().join("server.stderr");
        let mut cmd = Command::new(self.bin("sync-server"));
        // The services listener (mail delivery) is asked for through the
        // environment, which servers older than it ignore.
        let service_token = format!("bench-{}", std::process::id());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(tmp.path().join("server"))
            .env("SYNC_SERVICES_LISTEN", "127.0.0.1:0")
            .env("SYNC_SERVICE_TOKEN", &service_token)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&server_log).map_err(|e| fail(&e))?);
        let (mut server, mut server_child) =
            proc::spawn(&mut cmd).map_err(|e| fail(&format_args!("starting sync-server: {e}")))?;
        if self.opts.verbose {
            eprintln!("syncbench: started server pid={}", server.pid);
        }
        let mut hw_server = self
            .hw_available
            .then(|| HwCounters::attach(server.pid))
            .flatten();
        let (url, services_url) = read_first_line(
            server_child.stdout.take().expect("piped"),
            deadline,
            &|| self.interrupted(),
        )
        .and_then(|l| l.strip_prefix("listening on ").map(str::to_owned))
        // "URL" or "URL, services on URL2"
        .map(|l| match l.split_once(", services on ") {
            Some((url, services)) => (url.to_owned(), Some(services.to_owned())),
            None => (l, None),
        })
        .ok_or_else(|| {
            let why = if self.interrupted() {
                "interrupted"
            } else {
                "failed"
            };
            Failure::new(
                why,
                format!(
                    "sync-server did not report its address:\n{}",
                    tail(&server_log, 2000)
                ),
            )
        })?;

        let add = Command::new(self.bin("sync-server"))
            .args(["user", "add", "bench", "--json", "--data"])
            .arg(tmp.path().join("server"))
            .output()
            .map_err(|e| fail(&e))?;
        let account: serde_json::Value = serde_json::from_slice(&add.stdout).map_err(|e| {
            fail(&format_args!(
                "sync-server user add: {e}: {}",
                String::from_utf8_lossy(&add.stderr)
            ))
        })?;
        let (user, token) = (
            account["user_id"].as_str().unwrap_or_default(),
            account["token"].as_str().unwrap_or_default(),
        );

        let driver_log = tmp.path().join("driver.stderr");
        let mut cmd = Command::new(self.bin("sync-client"));
        cmd.args([
            "bench",
            "--workload",
            workload,
            "--server",
            &url,
            "--user",
            user,
            "--work-dir",
        ])
        .arg(tmp.path().join("driver"))
        .env("SYNC_TOKEN", token)
        .env("SYNC_SERVICE_TOKEN", &service_token)
        .env("SYNC_SERVICES_URL", services_url.unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&driver_log).map_err(|e| fail(&e))?);
        for (k, v) in &point.0 {
            cmd.arg("--param").arg(format!("{k}={v}"));
        }
        let driver_t0 = Instant::now();
        let (mut driver, mut driver_child) = proc::spawn(&mut cmd)
            .map_err(|e| fail(&format_args!("starting sync-client bench: {e}")))?;
        if self.opts.verbose {
            eprintln!("syncbench: started driver pid={}", driver.pid);
        }
        let mut hw_driver = self
            .hw_available
            .then(|| HwCounters::attach(driver.pid))
            .flatten();
        let sampler = Sampler::start(
            vec![("server".into(), server.pid), ("driver".into(), driver.pid)],
            self.opts.sample_interval,
            t0,
        );
        let events = read_events(driver_child.stdout.take().expect("piped"), t0);

        let waited = self.wait(&mut driver, deadline, "the driver", scenario.timeout);
        let driver_hw = hw_driver.as_mut().and_then(HwCounters::read);
        let server_hw = hw_server.as_mut().and_then(HwCounters::read);
        let server_crashed =
            server.is_reaped() || server.wait_until(Instant::now(), &|| false).is_some();
        let server_exit = server.stop(Duration::from_secs(5));
        let sampled = sampler.finish();
        let driver_exit = match waited {
            Ok(e) => e,
            Err(f) => {
                driver.stop(Duration::from_millis(500));
                return Err(f);
            }
        };
        let events: Vec<(f64, DriverLine)> = events.recv().unwrap_or_default();
        let server_note = match (&server_exit, server_crashed) {
            (Some(e), true) => format!(
                "\nsync-server died during the run ({}):\n{}",
                e.describe(),
                tail(&server_log, 1000)
            ),
            _ => String::new(),
        };
        if let Some((_, bad)) = events.iter().find(|(_, l)| l.v != DRIVER_CONTRACT_VERSION) {
            return Err(Failure::new(
                "failed",
                format!(
                    "the driver speaks contract version {}, this harness {DRIVER_CONTRACT_VERSION}",
                    bad.v
                ),
            ));
        }
        // A driver older than the contract has no `bench` subcommand at all.
        let no_bench = driver_exit.code == Some(2)
            && tail(&driver_log, 2000).contains("unrecognized subcommand");
        if driver_exit.code == Some(EXIT_UNKNOWN_WORKLOAD) || no_bench {
            return Err(Failure::new(
                "unsupported",
                format!("the driver at this commit has no workload {workload:?}"),
            ));
        }
        if !driver_exit.success() || !events.iter().any(|(_, l)| l.event == DriverEvent::Done) {
            return Err(Failure::new(
                "failed",
                format!(
                    "the driver {}:\n{}{server_note}",
                    driver_exit.describe(),
                    tail(&driver_log, 2000)
                ),
            ));
        }
        if server_crashed {
            return Err(Failure::new("failed", server_note.trim().to_owned()));
        }
        let server_exit = server_exit.ok_or_else(|| fail(&"sync-server could not be reaped"))?;

        let mut rep = Rep::default();
        use Direction::{HigherIsBetter as Higher, LowerIsBetter as Lower};
        rep.add(
            "wall",
            Unit::Seconds,
            Lower,
            (driver_exit.at - driver_t0).as_secs_f64(),
        );
        let mut begun: BTreeMap<String, f64> = BTreeMap::new();
        for (t_ms, line) in events {
            match line.event {
                DriverEvent::PhaseBegin { phase } => {
                    begun.insert(phase, t_ms);
                }
                DriverEvent::PhaseEnd {
                    phase,
                    seconds,
                    ops,
                    bytes,
                } => {
                    rep.add(format!("{phase}.wall"), Unit::Seconds, Lower, seconds);
                    if bytes > 0 && seconds > 0.0 {
                        rep.add(
                            format!("{phase}.throughput"),
                            Unit::MegabytesPerSecond,
                            Higher,
                            bytes as f64 / 1e6 / seconds,
                        );
                    }
                    if ops > 1 && seconds > 0.0 {
                        rep.add(
                            format!("{phase}.ops"),
                            Unit::OpsPerSecond,
                            Higher,
                            ops as f64 / seconds,
                        );
                    }
                    let start = begun.remove(&phase).unwrap_or(t_ms - seconds * 1000.0);
                    rep.phases.push((phase, start, t_ms));
                }
                DriverEvent::Metric {
                    name,
                    unit,
                    higher_is_better,
                    value,
                } => {
                    let Some(u) = Unit::parse(&unit) else {
                        return Err(Failure::new(
                            "failed",
                            format!("the driver reported {name} in an unknown unit {unit:?}"),
                        ));
                    };
                    if name.is_empty() || !value.is_finite() {
                        return Err(Failure::new(
                            "failed",
                            format!("the driver reported a bad metric {name:?} = {value}"),
                        ));
                    }
                    rep.add(
                        name,
                        u,
                        if higher_is_better { Higher } else { Lower },
                        value,
                    );
                }
                _ => {}
            }
        }
        rep.process("server", &server_exit, server_hw);
        rep.process("driver", &driver_exit, driver_hw);
        sampler_overhead(&mut rep, &sampled);
        rep.samples = sampled.samples;
        Ok(rep)
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

/// The first line a child prints, or `None` at the deadline, on
/// interruption or at end of output.
fn read_first_line(
    out: impl Read + Send + 'static,
    deadline: Instant,
    interrupted: &dyn Fn() -> bool,
) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let ok = BufReader::new(out)
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false);
        let _ = tx.send(ok.then(|| line.trim().to_owned()));
    });
    loop {
        let step = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        if step.is_zero() || interrupted() {
            return None;
        }
        match rx.recv_timeout(step) {
            Ok(line) => return line,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Reads the driver's JSON lines as they come, stamping each with the
/// harness's clock; the whole list arrives when the driver closes stdout.
/// Lines that are not contract events are kept out (they would be bugs in
/// the driver, reported through its exit status).
fn read_events(
    out: impl Read + Send + 'static,
    t0: Instant,
) -> mpsc::Receiver<Vec<(f64, DriverLine)>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut events = vec![];
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Ok(ev) = serde_json::from_str::<DriverLine>(&line) {
                events.push((t0.elapsed().as_secs_f64() * 1000.0, ev));
            }
        }
        let _ = tx.send(events);
    });
    rx
}
