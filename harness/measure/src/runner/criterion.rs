//! Criterion scenarios: `cargo bench` in the tree, each benchmark it ran
//! a point of its own.

use super::{Failure, Runner, log_handle, tail};
use crate::proc;
use std::process::Stdio;
use std::time::{Duration, Instant};
use syncbench_model::RunStatus;
use syncbench_model::scenario::{Kind, Scenario};

impl Runner {
    /// Runs `cargo bench ARGS -- FILTER` in the tree with the shared target
    /// dir, then reads the criterion results it wrote (those newer than
    /// its start: the target dir keeps older ones).
    pub fn criterion(&self, scenario: &Scenario) -> Result<Vec<crate::ingest::Ingested>, Failure> {
        let Kind::Criterion { bench, filter } = &scenario.kind else {
            return Err(Failure::failed(format!(
                "{} is not a criterion scenario",
                scenario.name
            )));
        };
        let log = tempfile::NamedTempFile::new().map_err(|e| Failure::failed(e.to_string()))?;
        let mut cmd = syncbench_model::secrets::command("cargo");
        // criterion finds its output dir from the environment, not from
        // cargo's --target-dir: set both through it.
        cmd.arg("bench")
            .args(bench.split_whitespace())
            .env("CARGO_TARGET_DIR", &self.opts.target_dir)
            .env("CRITERION_HOME", self.opts.target_dir.join("criterion"))
            .envs(syncbench_model::secrets::passed(&scenario.pass_env));
        if let Some(f) = filter {
            cmd.args(["--", f]);
        }
        cmd.current_dir(&self.tree)
            .stdin(Stdio::null())
            .stdout(log_handle(&log, RunStatus::Failed)?)
            .stderr(log_handle(&log, RunStatus::Failed)?);
        tracing::info!("running {cmd:?}");
        let started = std::time::SystemTime::now();
        let (mut p, _child) = proc::spawn(&mut cmd)
            .map_err(|e| Failure::failed(format!("starting cargo bench: {e}")))?;
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
                RunStatus::BuildFailed
            } else {
                RunStatus::Failed
            };
            return Err(Failure::new(
                status,
                format!("cargo bench {}:\n{out}", exit.describe()),
            ));
        }
        let found =
            crate::ingest::criterion_since(&self.opts.target_dir.join("criterion"), started)
                .map_err(|e| Failure::from_error(RunStatus::Failed, &e))?;
        if found.is_empty() {
            return Err(Failure::failed(format!(
                "cargo bench ran no criterion benchmark (filter {filter:?})"
            )));
        }
        Ok(found)
    }
}
