//! Command scenarios: any shell command, measured from outside, and its
//! instruction count under valgrind.

use super::callgrind::{Callgrind, SLOWDOWN};
use super::{Failure, Rep, Runner, sampler_overhead, tail};
use crate::probe::{HwCounters, Sampler};
use crate::proc;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use syncbench_model::scenario::{Point, Scenario};
use syncbench_model::{Direction, Unit};

impl Runner {
    /// Instructions the command executes, all processes together, counted
    /// by valgrind's cachegrind (instruction counting only): the same for
    /// the same binary and input whatever else the machine does.
    pub(super) fn count_instructions(
        &self,
        scenario: &Scenario,
        run: &str,
        point: &Point,
    ) -> Result<u64, Failure> {
        super::callgrind::available()?;
        let tmp = tempfile::tempdir().map_err(|e| Failure::failed(e.to_string()))?;
        // One log per process (%p): an exec'd child would truncate a shared one.
        let log = tmp.path().join("valgrind.%p.log");
        let mut cmd = syncbench_model::secrets::command("valgrind");
        cmd.args([
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            "--trace-children=yes",
        ])
        .arg(format!("--log-file={}", log.display()))
        .arg("sh");
        let exit = self.shell_under_valgrind(cmd, scenario, run, point)?;
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
            return Err(Failure::failed(format!(
                "`{run}` under valgrind {}:\n{}",
                exit.describe(),
                tail_of(&text)
            )));
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
            return Err(Failure::failed(format!(
                "valgrind reported no instruction count:\n{}",
                tail_of(&text)
            )));
        }
        Ok(counts.iter().sum())
    }

    /// The command once under callgrind, its files in `cg`'s directory
    /// (for `syncbench profile`).
    pub(super) fn command_under_callgrind(
        &self,
        scenario: &Scenario,
        run: &str,
        point: &Point,
        cg: &Callgrind,
    ) -> Result<(), Failure> {
        let cmd = cg.command("command", std::path::Path::new("sh"));
        let exit = self.shell_under_valgrind(cmd, scenario, run, point)?;
        if !exit.success() {
            return Err(Failure::failed(format!(
                "`{run}` under valgrind {}:{}",
                exit.describe(),
                cg.log_tails()
            )));
        }
        Ok(())
    }

    /// Runs `valgrind … sh` (as `cmd` has it) with `-c run` in the tree,
    /// the point's parameters in its environment, and the scenario's
    /// timeout stretched for valgrind.
    fn shell_under_valgrind(
        &self,
        mut cmd: Command,
        scenario: &Scenario,
        run: &str,
        point: &Point,
    ) -> Result<proc::Exit, Failure> {
        cmd.args(["-c", run])
            .current_dir(&self.tree)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        with_params(&mut cmd, scenario, point);
        let (mut p, _child) = proc::spawn(&mut cmd)
            .map_err(|e| Failure::failed(format!("starting valgrind: {e}")))?;
        let limit = scenario.timeout * SLOWDOWN;
        self.wait(&mut p, Instant::now() + limit, "valgrind", limit)
    }

    pub(super) fn command_repetition(
        &self,
        scenario: &Scenario,
        run: &str,
        point: &Point,
    ) -> Result<Rep, Failure> {
        let tmp = tempfile::tempdir().map_err(|e| Failure::failed(e.to_string()))?;
        let stderr_path = tmp.path().join("stderr");
        let stderr =
            std::fs::File::create(&stderr_path).map_err(|e| Failure::failed(e.to_string()))?;
        let mut cmd = syncbench_model::secrets::command("sh");
        cmd.args(["-c", run])
            .current_dir(&self.tree)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        with_params(&mut cmd, scenario, point);
        if let Some(cpu) = self.opts.pin_cpu {
            proc::pin_to_cpu(&mut cmd, cpu);
        }
        let t0 = Instant::now();
        let (mut p, _child) =
            proc::spawn(&mut cmd).map_err(|e| Failure::failed(format!("starting `{run}`: {e}")))?;
        tracing::info!("started command pid={}", p.pid);
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
            return Err(Failure::failed(format!(
                "`{run}` {}:\n{}",
                exit.describe(),
                tail(&stderr_path, 2000)
            )));
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
}

/// The point's parameters as `SYNCBENCH_PARAM_NAME` in the environment,
/// with the variables the scenario passes through (`pass_env`).
fn with_params(cmd: &mut Command, scenario: &Scenario, point: &Point) {
    cmd.envs(syncbench_model::secrets::passed(&scenario.pass_env));
    // The variant's name too (SYNCBENCH_PARAM_VARIANT), so one run line
    // can serve every variant.
    for (k, v) in &point.0 {
        cmd.env(format!("SYNCBENCH_PARAM_{}", k.to_uppercase()), v);
    }
    let variant = scenario.variant_of(point);
    cmd.envs(&variant.env);
    if let Some(t) = &variant.toolchain {
        cmd.env("RUSTUP_TOOLCHAIN", t);
    }
}
