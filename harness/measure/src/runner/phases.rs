//! What the harness reads at each phase boundary while the driver waits
//! there (the barrier of `protocol::driver`): the I/O counters of every
//! long-lived process and the system's own Prometheus counters. A phase's
//! metrics are the differences between its two boundaries, so they are
//! as exact as the counters: the same work gives the same figures on any
//! machine.

use super::Counts;
use super::callgrind::{self, Callgrind};
use crate::probe::HwCounters;
use crate::procfs::{IoCounters, read_io};
use crate::prometheus::{self, Counters};
use std::collections::BTreeMap;
use std::time::Duration;
use syncbench_model::{Direction, MetricValue, Unit};

/// The processes and endpoints read at each boundary.
#[derive(Debug, Default)]
pub(super) struct Boundaries {
    /// Long-lived processes by metric name (`server`, `driver`…).
    pub processes: Vec<(String, i32)>,
    /// Prometheus endpoints, one per server: their counters are summed.
    pub endpoints: Vec<String>,
    pub scrape_timeout: Duration,
    /// Hardware instruction counters by process, where the kernel has them.
    pub hw: Vec<(String, HwCounters)>,
    /// Under callgrind: the processes asked to dump at each boundary.
    pub callgrind: Option<(Callgrind, Vec<(String, i32)>)>,
    /// Why the endpoints stopped being read, once they failed.
    pub scrape_failed: Option<String>,
    /// Servers waited for until idle before each reading, at most this
    /// long (see [`settle`]).
    pub settle: Vec<i32>,
    pub settle_limit: Duration,
}

/// Waits until `pids` are idle: their CPU time and read/write calls
/// unchanged over 20 ms, or `limit`. Work a phase set off in the
/// background (the server checkpoints its WAL after an upload) then
/// belongs to that phase, not to whichever the next reading lands in:
/// without this a phase's server I/O was bimodal, ±5–100%.
fn settle(pids: &[i32], limit: Duration) -> bool {
    let activity = || -> Vec<Option<(f64, u64)>> {
        pids.iter()
            .map(|&p| {
                let cpu = crate::probe::cpu_seconds(p)?;
                let io = read_io(p)?;
                Some((cpu, io.syscr + io.syscw))
            })
            .collect()
    };
    let t0 = std::time::Instant::now();
    let mut last = activity();
    let mut quiet_since = std::time::Instant::now();
    while t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(5));
        let now = activity();
        if now != last {
            last = now;
            quiet_since = std::time::Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_millis(20) {
            return true;
        }
    }
    false
}

/// The counters at one boundary.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    io: BTreeMap<String, IoCounters>,
    counters: Option<Result<Counters, String>>,
    instructions: BTreeMap<String, u64>,
}

impl Boundaries {
    /// At a boundary: `label` is `begin:PHASE` or `end:PHASE`. Under
    /// callgrind the dump is the reading (its file is read at the end).
    pub fn snapshot(&mut self, label: &str) -> Snapshot {
        if !self.settle.is_empty() && !settle(&self.settle, self.settle_limit) {
            tracing::info!(
                "{label}: the servers were still busy after {:?}",
                self.settle_limit
            );
        }
        if let Some((cg, pids)) = &self.callgrind {
            let all: Vec<i32> = pids.iter().map(|(_, p)| *p).collect();
            let missed = cg.dump(&all, label, self.scrape_timeout);
            if !missed.is_empty() {
                tracing::warn!(
                    "vgdb could not reach pids {missed:?} at {label}; their counts for it merge into the next phase"
                );
            }
            return Snapshot::default();
        }
        let instructions = self
            .hw
            .iter_mut()
            .filter_map(|(name, c)| Some((name.clone(), c.read()?.0)))
            .collect();
        let io = self
            .processes
            .iter()
            .filter_map(|(name, pid)| Some((name.clone(), read_io(*pid)?)))
            .collect();
        let counters = (!self.endpoints.is_empty()).then(|| self.scrape());
        Snapshot {
            io,
            counters,
            instructions,
        }
    }

    /// Every endpoint's counters, summed. An endpoint that failed once is
    /// not asked again in this repetition: a slow one would cost its
    /// timeout at every boundary.
    fn scrape(&mut self) -> Result<Counters, String> {
        if let Some(e) = &self.scrape_failed {
            return Err(format!("not asked again after: {e}"));
        }
        let mut sum = Counters::new();
        for url in &self.endpoints {
            let scraped = prometheus::scrape(url, self.scrape_timeout).map_err(|e| {
                self.scrape_failed = Some(e.to_string());
                e.to_string()
            })?;
            for (k, v) in scraped {
                *sum.entry(k).or_default() += v;
            }
        }
        Ok(sum)
    }

    /// Final hardware counts (instructions, cycles) by process.
    pub fn hw_totals(&mut self) -> BTreeMap<String, (u64, u64)> {
        self.hw
            .iter_mut()
            .filter_map(|(name, c)| Some((name.clone(), c.read()?)))
            .collect()
    }

    /// The metrics of `phase` from its two boundaries, and what could not
    /// be measured (reported by the run, never recorded as a value).
    pub fn phase_metrics(
        &self,
        phase: &str,
        begin: &Snapshot,
        end: &Snapshot,
    ) -> (Vec<MetricValue>, Vec<String>) {
        let mut out = vec![];
        let mut notes = vec![];
        let mut counts = Counts::default();
        for (name, e) in &end.instructions {
            if let Some(d) = begin.instructions.get(name).and_then(|b| e.checked_sub(*b)) {
                counts.phases.insert((phase.to_owned(), name.clone()), d);
            }
        }
        out.extend(counts.metrics());
        let mut add = |name: String, unit, value: f64| {
            out.push(MetricValue {
                name,
                unit,
                direction: Direction::LowerIsBetter,
                value,
            })
        };
        for (name, _) in &self.processes {
            match (begin.io.get(name), end.io.get(name)) {
                (Some(b), Some(e)) => match e.since(b) {
                    Some(d) => {
                        for (field, v) in d.fields() {
                            add(format!("{phase}.{name}.{field}"), io_unit(field), v as f64);
                        }
                    }
                    None => notes.push(format!(
                        "phase {phase}: the I/O counters of {name} went backwards; not recorded"
                    )),
                },
                _ => notes.push(format!(
                    "phase {phase}: /proc could not tell the I/O of {name}; not recorded"
                )),
            }
        }
        match (&begin.counters, &end.counters) {
            (Some(Ok(b)), Some(Ok(e))) => {
                let (d, backwards) = prometheus::difference(b, e);
                // A counter that did not move is a zero, so each series
                // has a value in every repetition; label sets appear as
                // they are first used, so a phase's set is what the
                // workload did up to its end.
                for (name, v) in d {
                    add(format!("{phase}.server.counter.{name}"), Unit::Count, v);
                }
                if !backwards.is_empty() {
                    notes.push(format!(
                        "phase {phase}: server counters went backwards or vanished (a restarted server?), not recorded: {}",
                        backwards.join(", ")
                    ));
                }
            }
            (Some(Err(e)), _) | (_, Some(Err(e))) => notes.push(format!(
                "phase {phase}: no server counters for this phase: {e}"
            )),
            _ => {}
        }
        (out, notes)
    }
}

/// The label of the dump at `phase`'s begin or end.
pub(super) fn label(end: bool, phase: &str) -> String {
    if end {
        callgrind::end_label(phase)
    } else {
        format!("begin:{phase}")
    }
}

/// The unit of an `io.*` field: bytes, or a count of system calls.
pub(super) fn io_unit(field: &str) -> Unit {
    if field.ends_with("syscr") || field.ends_with("syscw") {
        Unit::Count
    } else {
        Unit::Bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::callgrind::Part;

    /// Hardware counters (read at the boundaries) and callgrind (dumps at
    /// the boundaries) must give the same metric names, so a history
    /// measured on both kinds of machine is one set of series.
    #[test]
    fn hardware_counters_and_callgrind_give_the_same_names() {
        let b = Boundaries::default();
        let snap = |n: u64| Snapshot {
            instructions: BTreeMap::from([("server".into(), n), ("driver".into(), 2 * n)]),
            ..Snapshot::default()
        };
        let (hw, _) = b.phase_metrics("upload", &snap(10), &snap(50));
        let mut hw: Vec<String> = hw.into_iter().map(|m| m.name).collect();
        let mut rep = super::super::Rep::default();
        let exit = crate::proc::Exit {
            code: Some(0),
            signal: None,
            user_s: 0.0,
            sys_s: 0.0,
            peak_rss_bytes: 0,
            inherited_rss_bytes: 0,
            io: None,
            at: std::time::Instant::now(),
        };
        rep.process("server", &exit, Some((7, 9)), None);
        rep.process("driver", &exit, Some((7, 9)), None);
        hw.extend(
            rep.values
                .into_iter()
                .map(|m| m.name)
                .filter(|n| syncbench_model::is_instruction_metric(n)),
        );
        let part = |name: &str, pid, label: Option<&str>| Part {
            path: "x".into(),
            name: name.into(),
            pid,
            part: 1,
            program: "x".into(),
            label: label.map(str::to_owned),
            instructions: 5,
        };
        let parts = [
            part("server", 1, Some("begin:upload")),
            part("server", 1, Some("end:upload")),
            part("server", 1, None),
            part("driver", 2, Some("end:upload")),
            part("driver", 2, None),
        ];
        let roots = [("server".into(), 1), ("driver".into(), 2)];
        let mut cg: Vec<String> = callgrind::counts(&parts, &roots)
            .metrics()
            .into_iter()
            .map(|m| m.name)
            .collect();
        hw.sort();
        cg.sort();
        assert_eq!(hw, cg);
        assert_eq!(
            cg,
            [
                "driver.instructions",
                "server.instructions",
                "upload.driver.instructions",
                "upload.server.instructions"
            ]
        );
    }
}
