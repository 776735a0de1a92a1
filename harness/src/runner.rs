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
    /// The peak memory is the sampler's (see `Sampled::peaks`) when it saw
    /// the process, else wait4's (which counts the harness's memory too).
    fn process(&mut self, name: &str, exit: &Exit, hw: Option<(u64, u64)>, peak: Option<u64>) {
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
            peak.unwrap_or(exit.peak_rss_bytes) as f64,
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
        if let Some(setup) = &scenario.setup {
            if self.opts.verbose {
                eprintln!("syncbench: setup: {setup}");
            }
            let out = Command::new("sh")
                .args(["-c", setup])
                .current_dir(&self.tree)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| Failure::new("failed", format!("running the setup: {e}")))?;
            if !out.status.success() {
                return Err(Failure::new(
                    "failed",
                    format!(
                        "the scenario's setup `{setup}` failed ({}):\n{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                ));
            }
        }
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
        rep.process(
            "command",
            &exit,
            counts,
            sampled.peaks.get("command").copied(),
        );
        sampler_overhead(&mut rep, &sampled);
        rep.samples = sampled.samples;
        Ok(rep)
    }

    /// Starts one `sync-server serve` on a port of its own and reads the
    /// addresses it reports.
    fn start_server(
        &self,
        data: &Path,
        args: &[String],
        service_token: &str,
        log: &Path,
        deadline: Instant,
    ) -> Result<(Proc, String, Option<String>), Failure> {
        let fail = |e: &dyn std::fmt::Display| Failure::new("failed", e.to_string());
        let mut cmd = Command::new(self.bin("sync-server"));
        // The services listener (mail delivery) is asked for through the
        // environment, which servers older than it ignore.
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .env("SYNC_SERVICES_LISTEN", "127.0.0.1:0")
            .env("SYNC_SERVICE_TOKEN", service_token)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).map_err(|e| fail(&e))?);
        let (server, mut child) =
            proc::spawn(&mut cmd).map_err(|e| fail(&format_args!("starting sync-server: {e}")))?;
        if self.opts.verbose {
            eprintln!("syncbench: started server pid={}", server.pid);
        }
        let line = read_first_line(child.stdout.take().expect("piped"), deadline, &|| {
            self.interrupted()
        });
        let (url, services) = line
            .as_deref()
            .and_then(|l| l.strip_prefix("listening on "))
            // "URL" or "URL, services on URL2"
            .map(|l| match l.split_once(", services on ") {
                Some((url, services)) => (url.to_owned(), Some(services.to_owned())),
                None => (l.to_owned(), None),
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
                        tail(log, 2000)
                    ),
                )
            })?;
        Ok((server, url, services))
    }

    /// nginx in front of `backends` (user API, and services API when
    /// every backend has it); returns it and its two URLs.
    fn start_nginx(
        &self,
        dir: &Path,
        backends: &[(String, Option<String>)],
        deadline: Instant,
    ) -> Result<(Proc, String, Option<String>), Failure> {
        let fail = |e: &dyn std::fmt::Display| Failure::new("failed", e.to_string());
        let nginx = crate::proxy::nginx_binary().map_err(|e| fail(&e))?;
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let strip = |u: &str| u.trim_start_matches("http://").to_owned();
        let port = crate::proxy::free_port().map_err(|e| fail(&e))?;
        let mut groups = vec![(port, backends.iter().map(|(u, _)| strip(u)).collect())];
        let services: Option<Vec<String>> = backends
            .iter()
            .map(|(_, s)| s.as_deref().map(strip))
            .collect();
        let services_port = match services {
            Some(list) => {
                let p = crate::proxy::free_port().map_err(|e| fail(&e))?;
                groups.push((p, list));
                Some(p)
            }
            None => None,
        };
        // As many nginx workers as cores: it is measured, like the servers.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, crate::proxy::nginx_config(dir, &groups, cores))
            .map_err(|e| fail(&e))?;
        let log = dir.join("stderr");
        let mut cmd = Command::new(nginx);
        cmd.arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_err(|e| fail(&e))?);
        let (mut p, _child) =
            proc::spawn(&mut cmd).map_err(|e| fail(&format_args!("starting nginx: {e}")))?;
        if self.opts.verbose {
            eprintln!(
                "syncbench: started nginx pid={} ({})",
                p.pid,
                conf.display()
            );
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        crate::proxy::wait_listening(addr, deadline, &mut || {
            p.wait_until(Instant::now(), &|| false).is_none()
        })
        .map_err(|e| {
            fail(&format_args!(
                "{e}:\n{}\n{}",
                tail(&log, 1000),
                tail(&dir.join("error.log"), 1000)
            ))
        })?;
        Ok((
            p,
            format!("http://127.0.0.1:{port}"),
            services_port.map(|p| format!("http://127.0.0.1:{p}")),
        ))
    }

    fn sync_repetition(
        &self,
        scenario: &Scenario,
        workload: &str,
        point: &Point,
    ) -> Result<Rep, Failure> {
        let fail = |e: &dyn std::fmt::Display| Failure::new("failed", e.to_string());
        let layout = scenario.servers.resolve(point).map_err(|e| fail(&e))?;
        let tmp = tempfile::tempdir().map_err(|e| fail(&e))?;
        let t0 = Instant::now();
        let deadline = t0 + scenario.timeout;
        let data = tmp.path().join("server");
        let service_token = format!("bench-{}", std::process::id());
        // One process per backend, all on the same data directory, started
        // one after the other (each empties tmp/ as it starts, before any
        // upload can arrive).
        let mut servers = Vec::new();
        let mut addrs = Vec::new();
        let mut logs = Vec::new();
        for i in 0..layout.backends {
            let log = tmp.path().join(format!("server{i}.stderr"));
            let (p, url, services) =
                self.start_server(&data, &layout.args, &service_token, &log, deadline)?;
            servers.push(p);
            addrs.push((url, services));
            logs.push(log);
        }
        let mut hw_server = self
            .hw_available
            .then(|| HwCounters::attach(servers[0].pid))
            .flatten();
        let mut proxy = None;
        let (url, services_url) = if layout.nginx {
            let (p, url, services) =
                self.start_nginx(&tmp.path().join("nginx"), &addrs, deadline)?;
            proxy = Some(p);
            (url, services)
        } else {
            addrs[0].clone()
        };

        let add = Command::new(self.bin("sync-server"))
            .args(["user", "add", "bench", "--json", "--data"])
            .arg(&data)
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
        let mut roots = vec![("driver".to_owned(), driver.pid)];
        for (i, s) in servers.iter().enumerate() {
            roots.push((server_name(i, servers.len()), s.pid));
        }
        if let Some(p) = &proxy {
            roots.push(("proxy".into(), p.pid));
        }
        let sampler = Sampler::start(roots, self.opts.sample_interval, t0);
        let events = read_events(driver_child.stdout.take().expect("piped"), t0);

        let waited = self.wait(&mut driver, deadline, "the driver", scenario.timeout);
        let driver_hw = hw_driver.as_mut().and_then(HwCounters::read);
        let server_hw = hw_server.as_mut().and_then(HwCounters::read);
        // Which servers died during the run (before we stopped them).
        let crashed: Vec<bool> = servers
            .iter_mut()
            .map(|s| s.is_reaped() || s.wait_until(Instant::now(), &|| false).is_some())
            .collect();
        let server_exits: Vec<Option<Exit>> = servers
            .iter_mut()
            .map(|s| s.stop(Duration::from_secs(5)))
            .collect();
        let proxy_exit = proxy.as_mut().map(|p| p.stop(Duration::from_secs(5)));
        let sampled = sampler.finish();
        let driver_exit = match waited {
            Ok(e) => e,
            Err(f) => {
                driver.stop(Duration::from_millis(500));
                return Err(f);
            }
        };
        let events: Vec<(f64, DriverLine)> = events.recv().unwrap_or_default();
        let server_note: String = crashed
            .iter()
            .zip(&server_exits)
            .zip(&logs)
            .filter(|((c, _), _)| **c)
            .map(|((_, e), log)| {
                format!(
                    "\nsync-server died during the run ({}):\n{}",
                    e.as_ref().map_or("not reaped".into(), Exit::describe),
                    tail(log, 1000)
                )
            })
            .collect();
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
        let lost = crashed.iter().filter(|c| **c).count();
        // Behind a proxy, a server that died is a fault the system is meant
        // to survive: the run counts if the driver succeeded (its own
        // check found every acknowledged write), and the loss is recorded.
        // Without a proxy (or with every server gone) the run failed.
        if lost > 0 && (proxy.is_none() || lost == servers.len()) {
            return Err(Failure::new("failed", server_note.trim().to_owned()));
        }
        if lost > 0 {
            eprintln!(
                "syncbench: {lost} of {} servers died during the run; the proxy served on:{server_note}",
                servers.len()
            );
        }
        let server_exits: Vec<Exit> = server_exits
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(|| fail(&"sync-server could not be reaped"))?;

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
        let peak = |name: &str| sampled.peaks.get(name).copied();
        if servers.len() == 1 {
            rep.process("server", &server_exits[0], server_hw, peak("server"));
        } else {
            // Each process, and their sum (the CPU and memory the service
            // as a whole used).
            let names: Vec<String> = (0..servers.len())
                .map(|i| server_name(i, servers.len()))
                .collect();
            for (name, e) in names.iter().zip(&server_exits) {
                rep.process(name, e, None, peak(name));
            }
            let total = Exit {
                user_s: server_exits.iter().map(|e| e.user_s).sum(),
                sys_s: server_exits.iter().map(|e| e.sys_s).sum(),
                ..server_exits[0].clone()
            };
            let total_peak = names.iter().map(|n| peak(n).unwrap_or(0)).sum();
            rep.process("server", &total, None, Some(total_peak));
            rep.add("servers_lost", Unit::Count, Lower, lost as f64);
        }
        if let Some(Some(e)) = &proxy_exit {
            rep.process("proxy", e, None, peak("proxy"));
        }
        rep.process("driver", &driver_exit, driver_hw, peak("driver"));
        sampler_overhead(&mut rep, &sampled);
        rep.samples = sampled.samples;
        Ok(rep)
    }
}

/// `server` for a single server, `server1`… for several.
fn server_name(i: usize, n: usize) -> String {
    if n == 1 {
        "server".into()
    } else {
        format!("server{}", i + 1)
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
