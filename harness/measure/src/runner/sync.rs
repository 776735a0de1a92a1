//! Sync scenarios: the reference system built from the tree under test,
//! started fresh for every repetition (one or more `sync-server`s, nginx
//! in front where the scenario asks), driven by `sync-client bench`
//! through the driver contract (`protocol::driver`).

use super::callgrind::{self, Callgrind};
use super::phases::{Boundaries, label};
use super::{Failure, Rep, Runner, sampler_overhead, tail};
use crate::probe::{HwCounters, Sampled, Sampler};
use crate::proc::{self, Exit, Proc};
use crate::procfs::IoCounters;
use protocol::driver::{
    BARRIER_ENV, DRIVER_CONTRACT_VERSION, DriverEvent, DriverLine, EXIT_UNKNOWN_WORKLOAD,
    TIME_SCALE_ENV,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use syncbench_model::scenario::{Layout, Point, Scenario, Variant};
use syncbench_model::{Direction, MetricValue, Phase, RunStatus, Unit};

/// The server layout of `point`, with its variant's server arguments.
fn layout(scenario: &Scenario, point: &Point, v: &Variant) -> Result<Layout, String> {
    let mut layout = scenario.servers.resolve(point)?;
    if let Some(args) = &v.server_args {
        layout
            .args
            .extend(point.substitute(args).split_whitespace().map(str::to_owned));
    }
    Ok(layout)
}

impl Runner {
    /// Starts one `sync-server serve` on a port of its own and reads the
    /// addresses it reports.
    #[allow(clippy::too_many_arguments)]
    fn start_server(
        &self,
        v: &Variant,
        name: &str,
        data: &Path,
        args: &[String],
        service_token: &str,
        log: &Path,
        deadline: Instant,
        vg: Option<&Callgrind>,
        scale: u32,
    ) -> Result<(Proc, String, Option<String>), Failure> {
        let fail = |e: &dyn std::fmt::Display| Failure::failed(e.to_string());
        let program = self.bin(v, "sync-server");
        let mut cmd = match vg {
            Some(cg) => cg.command(name, &program),
            None => syncbench_model::secrets::command(&program),
        };
        if scale > 1 {
            // Kept-alive connections idle scale times longer between requests.
            let idle = server_idle_timeout().as_secs_f64() * f64::from(scale);
            cmd.env("SYNC_IDLE_TIMEOUT", idle.to_string());
        }
        // The services listener (mail delivery) is asked for through the
        // environment, which servers older than it ignore.
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(stretch_idle_timeout(args, scale))
            .env("SYNC_SERVICES_LISTEN", "127.0.0.1:0")
            .env("SYNC_SERVICE_TOKEN", service_token)
            .env("RUST_LOG", "warn")
            .envs(&v.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).map_err(|e| fail(&e))?);
        let (server, mut child) =
            proc::spawn(&mut cmd).map_err(|e| fail(&format_args!("starting sync-server: {e}")))?;
        tracing::info!("started server pid={}", server.pid);
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
                    RunStatus::Interrupted
                } else {
                    RunStatus::Failed
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
        let fail = |e: &dyn std::fmt::Display| Failure::failed(e.to_string());
        let nginx = super::proxy::nginx_binary().map_err(|e| fail(&e))?;
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let strip = |u: &str| u.trim_start_matches("http://").to_owned();
        let port = super::proxy::free_port().map_err(|e| fail(&e))?;
        let mut groups = vec![(port, backends.iter().map(|(u, _)| strip(u)).collect())];
        let services: Option<Vec<String>> = backends
            .iter()
            .map(|(_, s)| s.as_deref().map(strip))
            .collect();
        let services_port = match services {
            Some(list) => {
                let p = super::proxy::free_port().map_err(|e| fail(&e))?;
                groups.push((p, list));
                Some(p)
            }
            None => None,
        };
        // As many nginx workers as cores: it is measured, like the servers.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, super::proxy::nginx_config(dir, &groups, cores))
            .map_err(|e| fail(&e))?;
        let log = dir.join("stderr");
        let mut cmd = syncbench_model::secrets::command(nginx);
        cmd.arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_err(|e| fail(&e))?);
        let (mut p, _child) =
            proc::spawn(&mut cmd).map_err(|e| fail(&format_args!("starting nginx: {e}")))?;
        tracing::info!("started nginx pid={} ({})", p.pid, conf.display());
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        super::proxy::wait_listening(addr, deadline, &mut || {
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

    /// The server layout of a point: its backends on one data directory,
    /// each on a port of its own, and nginx in front when asked for.
    #[allow(clippy::too_many_arguments)]
    fn start_service(
        &self,
        v: &Variant,
        layout: &Layout,
        dir: &Path,
        service_token: &str,
        deadline: Instant,
        vg: Option<&Callgrind>,
        scale: u32,
    ) -> Result<Service, Failure> {
        let data = dir.join("server");
        // Started one after the other: each empties tmp/ as it starts,
        // before any upload can arrive.
        let mut service = Service::default();
        let mut addrs = Vec::new();
        for i in 0..layout.backends {
            let log = dir.join(format!("server{i}.stderr"));
            let (p, url, services) = self.start_server(
                v,
                &server_name(i, layout.backends),
                &data,
                &layout.args,
                service_token,
                &log,
                deadline,
                vg,
                scale,
            )?;
            service.servers.push(p);
            addrs.push((url, services));
            service.logs.push(log);
        }
        service.addrs = addrs.clone();
        (service.url, service.services_url) = if layout.nginx {
            let (p, url, services) = self.start_nginx(&dir.join("nginx"), &addrs, deadline)?;
            service.proxy = Some(p);
            (url, services)
        } else {
            addrs[0].clone()
        };
        Ok(service)
    }

    /// `sync-server user add`: the benchmark's user id and token.
    fn add_user(&self, v: &Variant, data: &Path) -> Result<(String, String), Failure> {
        let add = syncbench_model::secrets::command(self.bin(v, "sync-server"))
            .args(["user", "add", "bench", "--json", "--data"])
            .arg(data)
            .output()
            .map_err(|e| Failure::failed(e.to_string()))?;
        let account: serde_json::Value = serde_json::from_slice(&add.stdout).map_err(|e| {
            Failure::failed(format!(
                "sync-server user add: {e}: {}",
                String::from_utf8_lossy(&add.stderr)
            ))
        })?;
        let field = |k: &str| account[k].as_str().unwrap_or_default().to_owned();
        Ok((field("user_id"), field("token")))
    }

    /// One repetition of a sync workload: a fresh server layout, the
    /// driver against it, every process sampled, then all stopped. Under
    /// callgrind (`vg`), every process runs under valgrind instead, writing
    /// into its directory, and only instruction counts come back (per
    /// process and per phase).
    pub(super) fn sync_repetition(
        &self,
        scenario: &Scenario,
        workload: &str,
        point: &Point,
        vg: Option<&Callgrind>,
    ) -> Result<Rep, Failure> {
        let fail = |e: &dyn std::fmt::Display| Failure::failed(e.to_string());
        let workload = point.workload(workload);
        let v = scenario.variant_of(point);
        let layout = layout(scenario, point, v).map_err(|e| fail(&e))?;
        let tmp = tempfile::tempdir().map_err(|e| fail(&e))?;
        // Under valgrind everything runs ~50x slower: so do the deadlines.
        let scale = if vg.is_some() { callgrind::SLOWDOWN } else { 1 };
        let timeout = scenario.timeout * scale;
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        let service_token = format!("bench-{}", std::process::id());
        let mut service =
            self.start_service(v, &layout, tmp.path(), &service_token, deadline, vg, scale)?;
        let mut hw = service.hw_counters(self.counting(vg));
        let (user, token) = self.add_user(v, &tmp.path().join("server"))?;

        let driver_log = tmp.path().join("driver.stderr");
        let mut cmd = self.driver_command(
            (workload, v),
            point,
            vg,
            &service,
            (&user, &token),
            tmp.path(),
        );
        cmd.env("SYNC_SERVICE_TOKEN", &service_token)
            .env(TIME_SCALE_ENV, scale.to_string())
            .stderr(std::fs::File::create(&driver_log).map_err(|e| fail(&e))?);
        let driver_t0 = Instant::now();
        let (mut driver, mut driver_child) = proc::spawn(&mut cmd)
            .map_err(|e| fail(&format_args!("starting sync-client bench: {e}")))?;
        tracing::info!("started driver pid={}", driver.pid);
        hw.extend(self.driver_counters(driver.pid, vg));
        let sampler = vg
            .is_none()
            .then(|| Sampler::start(service.roots(driver.pid), self.opts.sample_interval, t0));
        let (processes, boundaries) =
            self.boundaries(&service, driver.pid, vg, hw, &scenario.servers.prometheus);
        let held_ms = Arc::new(AtomicU64::new(0));
        let events = read_events(
            driver_child.stdout.take().expect("piped"),
            driver_child.stdin.take(),
            boundaries,
            held_ms.clone(),
            t0,
        );

        let waited = self.wait_for_driver(&mut driver, deadline, timeout, &held_ms);
        // The events (and the hardware counts read at their end) before the
        // servers are stopped: their shut-down is not the workload's.
        let events = match &waited {
            Ok(_) => events
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_default(),
            Err(_) => Events::default(),
        };
        // Under callgrind a server writes its counts as it exits: give it time.
        let stopped = service.stop(Duration::from_secs(5) * scale.min(12));
        let sampled = sampler.map(Sampler::finish).unwrap_or_default();
        let vg_note = || vg.map(Callgrind::log_tails).unwrap_or_default();
        let with_note = |mut f: Failure| {
            f.message += &vg_note();
            f
        };
        let driver_exit = waited
            .inspect_err(|_| {
                driver.stop(Duration::from_millis(500));
            })
            .map_err(with_note)?;
        check_driver(&driver_exit, &events.lines, workload, &driver_log, &stopped)
            .map_err(with_note)?;
        for note in &events.notes {
            tracing::warn!("{note}");
        }
        let server_exits = stopped.survived(service.proxy.is_some())?;

        // The driver's lifetime but the time it waited for the harness.
        let driver_wall = (driver_exit.at - driver_t0).saturating_sub(events.held);
        if let Some(cg) = vg {
            return callgrind_rep(cg, &processes, driver_wall, &vg_note());
        }
        native_rep(
            driver_wall,
            events,
            &server_exits,
            &stopped,
            &driver_exit,
            sampled,
        )
    }

    /// The processes of a repetition by name (each server under its own
    /// name, as callgrind counts them, then the driver), and where its
    /// phases are measured (`hw`: the counters attached to them).
    fn boundaries(
        &self,
        service: &Service,
        driver: i32,
        vg: Option<&Callgrind>,
        hw: Vec<(String, HwCounters)>,
        prometheus: &str,
    ) -> (Vec<(String, i32)>, Boundaries) {
        let mut processes = service.named();
        processes.push(("driver".into(), driver));
        let settle: Vec<i32> = service.servers.iter().map(|p| p.pid).collect();
        let endpoints = service.endpoints(prometheus);
        let boundaries = boundaries_of(vg, &processes, endpoints, hw, settle);
        (processes, boundaries)
    }

    /// The driver's hardware counters, attached as soon as it started
    /// (before the sampler), where they are read.
    fn driver_counters(&self, pid: i32, vg: Option<&Callgrind>) -> Option<(String, HwCounters)> {
        let c = self
            .counting(vg)
            .then(|| HwCounters::attach(pid))
            .flatten()?;
        Some(("driver".into(), c))
    }

    /// Whether hardware counters are read (natively, where available).
    fn counting(&self, vg: Option<&Callgrind>) -> bool {
        self.hw_available && vg.is_none()
    }

    /// The driver's command line (its time scale, service token and log
    /// are the caller's).
    fn driver_command(
        &self,
        (workload, v): (&str, &Variant),
        point: &Point,
        vg: Option<&Callgrind>,
        service: &Service,
        (user, token): (&str, &str),
        tmp: &Path,
    ) -> std::process::Command {
        let program = self.bin(v, "sync-client");
        let mut cmd = match vg {
            Some(cg) => cg.command("driver", &program),
            None => syncbench_model::secrets::command(&program),
        };
        cmd.args(["bench", "--workload", workload, "--server", &service.url])
            .args(["--user", user, "--work-dir"])
            .arg(tmp.join("driver"))
            .env("SYNC_TOKEN", token)
            .env(
                "SYNC_SERVICES_URL",
                service.services_url.clone().unwrap_or_default(),
            )
            .env(BARRIER_ENV, "1")
            .envs(&v.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, value) in point.params() {
            cmd.arg("--param").arg(format!("{k}={value}"));
        }
        cmd
    }

    /// Waits for the driver to exit by `deadline`. The time the harness
    /// held the driver at the barrier (settling, scraping, dumping) is not
    /// the driver's: its deadline moves by it.
    fn wait_for_driver(
        &self,
        driver: &mut Proc,
        deadline: Instant,
        timeout: Duration,
        held_ms: &AtomicU64,
    ) -> Result<Exit, Failure> {
        let mut waited = self.wait(driver, deadline, "the driver", timeout);
        let mut extended = Duration::ZERO;
        while let Err(f) = &waited
            && f.status == RunStatus::Timeout
        {
            let held = Duration::from_millis(held_ms.load(Ordering::SeqCst));
            if held <= extended {
                break;
            }
            let more = held - extended;
            extended = held;
            waited = self.wait(driver, Instant::now() + more, "the driver", timeout);
        }
        waited
    }
}

/// Where the driver's phases start and end are measured: under callgrind,
/// the counts each process dumps; natively, their CPU, memory, scraped
/// counters and hardware counts.
fn boundaries_of(
    vg: Option<&Callgrind>,
    processes: &[(String, i32)],
    endpoints: Vec<String>,
    hw: Vec<(String, HwCounters)>,
    settle: Vec<i32>,
) -> Boundaries {
    match vg {
        Some(cg) => Boundaries {
            callgrind: Some((cg.clone(), processes.to_vec())),
            scrape_timeout: Duration::from_secs(60),
            settle,
            settle_limit: Duration::from_secs(30),
            ..Boundaries::default()
        },
        None => Boundaries {
            processes: processes.to_vec(),
            endpoints,
            scrape_timeout: Duration::from_secs(5),
            hw,
            settle,
            settle_limit: Duration::from_secs(2),
            ..Boundaries::default()
        },
    }
}

/// A repetition under callgrind: each process's instruction counts (every
/// one must have written them at exit), and what valgrind cost in wall
/// time (against `wall` of the native runs).
fn callgrind_rep(
    cg: &Callgrind,
    processes: &[(String, i32)],
    driver_wall: Duration,
    vg_note: &str,
) -> Result<Rep, Failure> {
    let parts = cg.parts();
    for (name, pid) in processes {
        if !parts.iter().any(|p| p.pid == *pid && p.label.is_none()) {
            return Err(Failure::failed(format!(
                "{name} (pid {pid}) wrote no instruction counts at exit under valgrind:{vg_note}"
            )));
        }
    }
    let mut rep = Rep {
        values: callgrind::counts(&parts, processes).metrics(),
        ..Rep::default()
    };
    rep.add(
        "harness.callgrind_wall",
        Unit::Seconds,
        Direction::LowerIsBetter,
        driver_wall.as_secs_f64(),
    );
    Ok(rep)
}

/// A native repetition's metrics: the driver's wall time and its own
/// metrics, each phase's, and every process's.
fn native_rep(
    driver_wall: Duration,
    events: Events,
    server_exits: &[Exit],
    stopped: &Stopped,
    driver_exit: &Exit,
    sampled: Sampled,
) -> Result<Rep, Failure> {
    let mut rep = Rep::default();
    rep.add(
        "wall",
        Unit::Seconds,
        Direction::LowerIsBetter,
        driver_wall.as_secs_f64(),
    );
    driver_metrics(&mut rep, events.lines)?;
    rep.values.extend(events.phase_metrics);
    processes_rep(
        &mut rep,
        server_exits,
        stopped,
        driver_exit,
        &events.hw_totals,
        &sampled,
    );
    sampler_overhead(&mut rep, &sampled);
    rep.samples = sampled.samples;
    Ok(rep)
}

/// Each process's CPU, memory, IO and hardware counts: the server (or each
/// server and their sum, with how many were lost), the proxy, the driver.
fn processes_rep(
    rep: &mut Rep,
    server_exits: &[Exit],
    stopped: &Stopped,
    driver_exit: &Exit,
    hw_totals: &BTreeMap<String, (u64, u64)>,
    sampled: &Sampled,
) {
    let peak = |name: &str| sampled.peaks.get(name).copied();
    if let [only] = server_exits {
        rep.process(
            "server",
            only,
            hw_totals.get("server").copied(),
            peak("server"),
        );
    } else {
        // Each process, and their sum (the CPU and memory the service
        // as a whole used).
        let n = server_exits.len();
        for (i, e) in server_exits.iter().enumerate() {
            let name = server_name(i, n);
            rep.process(&name, e, hw_totals.get(&name).copied(), peak(&name));
        }
        let total = Exit {
            user_s: server_exits.iter().map(|e| e.user_s).sum(),
            sys_s: server_exits.iter().map(|e| e.sys_s).sum(),
            io: server_exits
                .iter()
                .try_fold(IoCounters::default(), |sum, e| e.io.map(|io| sum.plus(&io))),
            ..server_exits[0].clone()
        };
        // Known only when every process's is.
        let total_peak = (0..n).map(|i| peak(&server_name(i, n))).sum();
        rep.process("server", &total, None, total_peak);
        rep.add(
            "servers_lost",
            Unit::Count,
            Direction::LowerIsBetter,
            stopped.lost() as f64,
        );
    }
    if let Some(Some(e)) = &stopped.proxy {
        rep.process("proxy", e, None, peak("proxy"));
    }
    rep.process(
        "driver",
        driver_exit,
        hw_totals.get("driver").copied(),
        peak("driver"),
    );
}

/// The processes serving one repetition.
#[derive(Debug, Default)]
struct Service {
    servers: Vec<Proc>,
    /// Each server's user API and services URLs.
    addrs: Vec<(String, Option<String>)>,
    logs: Vec<PathBuf>,
    proxy: Option<Proc>,
    url: String,
    services_url: Option<String>,
}

/// How the service's processes ended.
#[derive(Debug)]
struct Stopped {
    /// Per server: whether it died during the run (before we stopped it),
    /// how it exited, and the tail of its log when it died.
    servers: Vec<(bool, Option<Exit>, String)>,
    proxy: Option<Option<Exit>>,
}

impl Service {
    /// Hardware counters on each server, by name (none when not `counting`).
    fn hw_counters(&self, counting: bool) -> Vec<(String, HwCounters)> {
        let named = self.named().into_iter().filter(|_| counting);
        named
            .filter_map(|(name, pid)| Some((name, HwCounters::attach(pid)?)))
            .collect()
    }

    /// Each server's name (as callgrind counts them) and pid.
    fn named(&self) -> Vec<(String, i32)> {
        let n = self.servers.len();
        let named = self.servers.iter().enumerate();
        named.map(|(i, p)| (server_name(i, n), p.pid)).collect()
    }

    /// The process trees the sampler follows, by name.
    fn roots(&self, driver: i32) -> Vec<(String, i32)> {
        let mut roots = vec![("driver".to_owned(), driver)];
        for (i, s) in self.servers.iter().enumerate() {
            roots.push((server_name(i, self.servers.len()), s.pid));
        }
        if let Some(p) = &self.proxy {
            roots.push(("proxy".into(), p.pid));
        }
        roots
    }

    /// The Prometheus endpoints of `template` (empty: none): one per
    /// server, `{services}` and `{server}` standing for its two URLs.
    fn endpoints(&self, template: &str) -> Vec<String> {
        if template.is_empty() {
            return vec![];
        }
        if !template.contains('{') {
            return vec![template.to_owned()];
        }
        self.addrs
            .iter()
            .map(|(url, services)| {
                template
                    .replace("{server}", url)
                    .replace("{services}", services.as_deref().unwrap_or(url))
            })
            .collect()
    }

    /// Notes which servers died during the run, then stops everything.
    fn stop(&mut self, grace: Duration) -> Stopped {
        let crashed: Vec<bool> = self
            .servers
            .iter_mut()
            .map(|s| s.is_reaped() || s.wait_until(Instant::now(), &|| false).is_some())
            .collect();
        let servers = self
            .servers
            .iter_mut()
            .zip(crashed)
            .zip(&self.logs)
            .map(|((s, crashed), log)| {
                let exit = s.stop(grace);
                (
                    crashed,
                    exit,
                    if crashed {
                        tail(log, 1000)
                    } else {
                        String::new()
                    },
                )
            })
            .collect();
        let proxy = self.proxy.as_mut().map(|p| p.stop(grace));
        Stopped { servers, proxy }
    }
}

impl Stopped {
    fn lost(&self) -> usize {
        self.servers.iter().filter(|s| s.0).count()
    }

    /// What the servers that died left in their logs.
    fn note(&self) -> String {
        self.servers
            .iter()
            .filter(|s| s.0)
            .map(|(_, e, log)| {
                format!(
                    "\nsync-server died during the run ({}):\n{log}",
                    e.as_ref().map_or("not reaped".into(), Exit::describe),
                )
            })
            .collect()
    }

    /// The servers' exits, unless the run failed with them. Behind a
    /// proxy, a server that died is a fault the system is meant to
    /// survive: the run counts if the driver succeeded (its own check
    /// found every acknowledged write), and the loss is recorded. Without
    /// a proxy (or with every server gone) the run failed.
    fn survived(&self, behind_proxy: bool) -> Result<Vec<Exit>, Failure> {
        let lost = self.lost();
        if lost > 0 && (!behind_proxy || lost == self.servers.len()) {
            return Err(Failure::failed(self.note().trim().to_owned()));
        }
        if lost > 0 {
            tracing::warn!(
                "{lost} of {} servers died during the run; the proxy served on:{}",
                self.servers.len(),
                self.note()
            );
        }
        self.servers
            .iter()
            .map(|s| s.1.clone())
            .collect::<Option<_>>()
            .ok_or_else(|| Failure::failed("sync-server could not be reaped"))
    }
}

/// Whether the driver did its job: the contract version, a known
/// workload, a clean exit and the `done` event.
fn check_driver(
    exit: &Exit,
    events: &[(f64, DriverLine)],
    workload: &str,
    log: &Path,
    stopped: &Stopped,
) -> Result<(), Failure> {
    if let Some((_, bad)) = events.iter().find(|(_, l)| l.v != DRIVER_CONTRACT_VERSION) {
        return Err(Failure::failed(format!(
            "the driver speaks contract version {}, this harness {DRIVER_CONTRACT_VERSION}",
            bad.v
        )));
    }
    // A driver older than the contract has no `bench` subcommand at all.
    let no_bench = exit.code == Some(2) && tail(log, 2000).contains("unrecognized subcommand");
    if exit.code == Some(EXIT_UNKNOWN_WORKLOAD) || no_bench {
        return Err(Failure::new(
            RunStatus::Unsupported,
            format!("the driver at this commit has no workload {workload:?}"),
        ));
    }
    if !exit.success() || !events.iter().any(|(_, l)| l.event == DriverEvent::Done) {
        return Err(Failure::failed(format!(
            "the driver {}:\n{}{}",
            exit.describe(),
            tail(log, 2000),
            stopped.note()
        )));
    }
    Ok(())
}

/// The driver's events as metrics and phases: wall, throughput and rate
/// of each phase, and the metrics it reported itself.
fn driver_metrics(rep: &mut Rep, events: Vec<(f64, DriverLine)>) -> Result<(), Failure> {
    use Direction::{HigherIsBetter as Higher, LowerIsBetter as Lower};
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
                let start_ms = begun.remove(&phase).unwrap_or(t_ms - seconds * 1000.0);
                rep.phases.push(Phase {
                    repetition: 0,
                    name: phase,
                    start_ms,
                    end_ms: t_ms,
                });
            }
            DriverEvent::Metric {
                name,
                unit,
                higher_is_better,
                value,
            } => {
                let Some(u) = Unit::parse(&unit) else {
                    return Err(Failure::failed(format!(
                        "the driver reported {name} in an unknown unit {unit:?}"
                    )));
                };
                if name.is_empty() || !value.is_finite() {
                    return Err(Failure::failed(format!(
                        "the driver reported a bad metric {name:?} = {value}"
                    )));
                }
                rep.add(
                    name,
                    u,
                    Direction::from_higher_is_better(higher_is_better),
                    value,
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// `server` for a single server, `server1`… for several.
fn server_name(i: usize, n: usize) -> String {
    if n == 1 {
        "server".into()
    } else {
        format!("server{}", i + 1)
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

/// What the driver said, and what the harness read at its phase
/// boundaries.
#[derive(Debug, Default)]
struct Events {
    /// Each line, stamped with the harness's clock (ms since the start).
    lines: Vec<(f64, DriverLine)>,
    phase_metrics: Vec<MetricValue>,
    /// Hardware counts (instructions, cycles) by process, at the end.
    hw_totals: BTreeMap<String, (u64, u64)>,
    /// How long the driver was held at the barrier, in all.
    held: Duration,
    /// What could not be measured at a boundary.
    notes: Vec<String>,
}

/// Reads the driver's JSON lines as they come, stamping each with the
/// harness's clock; the whole list arrives when the driver closes stdout.
/// When the driver honours the barrier, each boundary's counters are read
/// while it waits, then it is released with a line on its stdin. Lines
/// that are not contract events are kept out (they would be bugs in the
/// driver, reported through its exit status).
fn read_events(
    out: impl Read + Send + 'static,
    stdin: Option<std::process::ChildStdin>,
    mut boundaries: Boundaries,
    held_ms: Arc<AtomicU64>,
    t0: Instant,
) -> mpsc::Receiver<Events> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut events = Events::default();
        let mut stdin = stdin;
        let mut barrier = false;
        let mut begun = BTreeMap::new();
        let release = |stdin: &mut Option<std::process::ChildStdin>| {
            // A driver that has gone away needs no release.
            if let Some(w) = stdin.as_mut()
                && (w.write_all(b"go\n").is_err() || w.flush().is_err())
            {
                *stdin = None;
            }
        };
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let Ok(ev) = serde_json::from_str::<DriverLine>(&line) else {
                continue;
            };
            let t_ms = t0.elapsed().as_secs_f64() * 1000.0;
            match &ev.event {
                DriverEvent::Hello { barrier: b, .. } => {
                    barrier = *b;
                    if !barrier {
                        // End of input: a driver that waits after all
                        // (its hello was unreadable here) is released.
                        stdin = None;
                    }
                }
                DriverEvent::PhaseBegin { .. } if !barrier => stdin = None,
                DriverEvent::PhaseBegin { phase } if barrier => {
                    let held = Instant::now();
                    begun.insert(phase.clone(), boundaries.snapshot(&label(false, phase)));
                    release(&mut stdin);
                    events.held += held.elapsed();
                    held_ms.store(events.held.as_millis() as u64, Ordering::SeqCst);
                }
                DriverEvent::PhaseEnd { phase, .. } if barrier => {
                    let held = Instant::now();
                    let end = boundaries.snapshot(&label(true, phase));
                    if let Some(begin) = begun.remove(phase) {
                        let (values, notes) = boundaries.phase_metrics(phase, &begin, &end);
                        events.phase_metrics.extend(values);
                        events.notes.extend(notes);
                    }
                    release(&mut stdin);
                    events.held += held.elapsed();
                    held_ms.store(events.held.as_millis() as u64, Ordering::SeqCst);
                }
                _ => {}
            }
            events.lines.push((t_ms, ev));
        }
        events.hw_totals = boundaries.hw_totals();
        let _ = tx.send(events);
    });
    rx
}

/// The scenario's server arguments with an explicit `--idle-timeout`
/// stretched `scale` times (under valgrind): a flag wins over the
/// environment's `SYNC_IDLE_TIMEOUT`.
fn stretch_idle_timeout(args: &[String], scale: u32) -> Vec<String> {
    let stretch = |v: &str| {
        v.parse::<f64>()
            .map_or(v.to_owned(), |s| (s * f64::from(scale)).to_string())
    };
    let mut out = Vec::with_capacity(args.len());
    let mut next_is_value = false;
    for a in args {
        if std::mem::take(&mut next_is_value) {
            out.push(stretch(a));
        } else if let Some(v) = a.strip_prefix("--idle-timeout=") {
            out.push(format!("--idle-timeout={}", stretch(v)));
        } else {
            next_is_value = a == "--idle-timeout";
            out.push(a.clone());
        }
    }
    out
}

/// The reference server's idle timeout when not told otherwise.
fn server_idle_timeout() -> Duration {
    Duration::from_secs(20)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell standing in for a driver (`script` prints contract lines),
    /// its I/O read at the boundaries; what the harness gathered once it
    /// exited successfully.
    fn drive(script: &str) -> Events {
        let mut cmd = syncbench_model::secrets::command("sh");
        cmd.args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let (mut p, mut child) = proc::spawn(&mut cmd).unwrap();
        let events = read_events(
            child.stdout.take().unwrap(),
            child.stdin.take(),
            boundaries(p.pid),
            Arc::default(),
            Instant::now(),
        )
        .recv()
        .unwrap();
        let exit = p.wait_until(Instant::now() + Duration::from_secs(10), &|| false);
        assert!(exit.unwrap().success());
        events
    }

    fn boundaries(pid: i32) -> Boundaries {
        Boundaries {
            processes: vec![("driver".into(), pid)],
            ..Boundaries::default()
        }
    }

    #[test]
    fn the_barrier_holds_the_driver_until_its_counters_are_read() {
        let dir = tempfile::tempdir().unwrap();
        // 100 000 bytes written inside the phase by a child the driver
        // reaps: the phase's I/O counts them; nothing outside it does.
        let script = format!(
            r#"echo '{{"v":1,"event":"hello","workload":"docs","barrier":true}}'
head -c 5000 /dev/zero > {out}.before
echo '{{"v":1,"event":"phase_begin","phase":"p"}}'; read go
head -c 100000 /dev/zero > {out}
echo '{{"v":1,"event":"phase_end","phase":"p","seconds":0.1,"ops":1,"bytes":0}}'; read go
head -c 7000 /dev/zero > {out}.after
echo '{{"v":1,"event":"done"}}'"#,
            out = dir.path().join("f").display()
        );
        let events = drive(&script);
        assert_eq!(events.lines.len(), 4);
        let wchar = events
            .phase_metrics
            .iter()
            .find(|m| m.name == "p.driver.io.wchar")
            .expect("the phase's I/O");
        // The shell's own echo lines are a few hundred bytes at most.
        assert!(
            (100_000.0..100_500.0).contains(&wchar.value),
            "{}",
            wchar.value
        );
        assert!(events.notes.is_empty(), "{:?}", events.notes);
    }

    #[test]
    fn an_explicit_idle_timeout_stretches_under_valgrind() {
        let args: Vec<String> = [
            "--workers",
            "2",
            "--idle-timeout",
            "2",
            "--idle-timeout=0.5",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            stretch_idle_timeout(&args, 50),
            [
                "--workers",
                "2",
                "--idle-timeout",
                "100",
                "--idle-timeout=25"
            ]
        );
        assert_eq!(stretch_idle_timeout(&args, 1), args);
    }

    #[test]
    fn a_driver_without_the_barrier_is_never_waited_for() {
        // An older driver: no `barrier` in its hello, never reads stdin.
        let script = r#"echo '{"v":1,"event":"hello","workload":"docs"}'
echo '{"v":1,"event":"phase_begin","phase":"p"}'
echo '{"v":1,"event":"phase_end","phase":"p","seconds":0.1,"ops":1,"bytes":0}'
echo '{"v":1,"event":"done"}'"#;
        let events = drive(script);
        assert_eq!(events.lines.len(), 4);
        assert!(events.phase_metrics.is_empty());
    }
}
