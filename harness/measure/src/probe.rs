//! Sampled probes: CPU % and RSS of process trees over time (/proc),
//! and hardware counters where the kernel offers them.

use crate::procfs::read_hwm;
use std::collections::HashMap;
use std::sync::{LazyLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use syncbench_model::records::Sample;

#[derive(Debug, Default)]
pub struct Sampled {
    pub samples: Vec<Sample>,
    /// CPU time the sampler thread itself used, and over how long.
    pub own_cpu_s: f64,
    pub wall_s: f64,
    /// Per tracked tree, the largest memory seen: the tree's summed RSS at
    /// a sample, or its root's own high-water mark (VmHWM, which catches
    /// peaks between samples). wait4's ru_maxrss is no use for this: a
    /// child's counts the harness's own memory at fork time, so every
    /// small process read as the harness's size.
    pub peaks: HashMap<String, u64>,
}

/// Samples the trees rooted at the given pids every `interval` until
/// stopped.
#[derive(Debug)]
pub struct Sampler {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<Sampled>,
}

impl Sampler {
    pub fn start(roots: Vec<(String, i32)>, interval: Duration, t0: Instant) -> Sampler {
        let (stop, stopped) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let cpu0 = crate::proc::thread_cpu_seconds();
            let mut out = Sampled::default();
            // Last (time, CPU ticks) per pid, for CPU % over the interval.
            let mut last: HashMap<i32, (Instant, u64)> = HashMap::new();
            let mut next = Instant::now();
            loop {
                let t_ms = t0.elapsed().as_secs_f64() * 1000.0;
                let now = Instant::now();
                for (name, root) in &roots {
                    let (mut cpu_pct, mut rss, mut seen) = (0.0, 0, false);
                    for pid in tree(*root) {
                        let Some(stat) = read_stat(pid) else { continue };
                        seen = true;
                        rss += stat.rss_bytes;
                        if let Some((t, ticks)) = last.insert(pid, (now, stat.cpu_ticks)) {
                            let dt = (now - t).as_secs_f64();
                            if dt > 0.0 {
                                cpu_pct += 100.0 * stat.cpu_ticks.saturating_sub(ticks) as f64
                                    / *TICKS_PER_SECOND
                                    / dt;
                            }
                        }
                    }
                    if seen {
                        let hwm = read_hwm(*root).unwrap_or(0);
                        // A tree seen only as a zombie (its memory already
                        // freed) says nothing of its peak.
                        if rss > 0 || hwm > 0 {
                            let peak = out.peaks.entry(name.clone()).or_default();
                            *peak = (*peak).max(rss).max(hwm);
                        }
                        out.samples.push(Sample {
                            process: name.clone(),
                            t_ms,
                            cpu_pct,
                            rss_bytes: rss,
                        });
                    }
                }
                next += interval;
                let wait = next.saturating_duration_since(Instant::now());
                match stopped.recv_timeout(wait) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            out.own_cpu_s = crate::proc::thread_cpu_seconds() - cpu0;
            out.wall_s = started.elapsed().as_secs_f64();
            out
        });
        Sampler { stop, handle }
    }

    pub fn finish(self) -> Sampled {
        let _ = self.stop.send(());
        self.handle.join().unwrap_or_default()
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    read_stat(pid).map(|s| s.cpu_ticks as f64 / *TICKS_PER_SECOND)
}

struct Stat {
    cpu_ticks: u64,
    rss_bytes: u64,
}

static TICKS_PER_SECOND: LazyLock<f64> =
    LazyLock::new(|| crate::proc::clock_ticks_per_second() as f64);
static PAGE_SIZE: LazyLock<u64> = LazyLock::new(crate::proc::page_size);

/// utime + stime and RSS from /proc/PID/stat: one small read per process
/// and sample. (sysinfo's per-process refresh measured 2.6% of a core at
/// 20 Hz on two processes, over the 1% budget, as it also reads the
/// system-wide CPU times and several files per process; this is the
/// same data from one file.)
fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields resume after ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15, rss 24.
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)? + field(15)?,
        rss_bytes: field(24)? * *PAGE_SIZE,
    })
}

/// A process and its descendants, from /proc/PID/task/PID/children: the
/// children its main thread started (shells and the programs measured
/// here fork from it; reading every thread's list would cost a file read
/// per thread of a many-threaded server at every sample).
fn tree(root: i32) -> Vec<i32> {
    let mut out = vec![];
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        out.push(pid);
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            todo.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// Instruction and cycle counters for one process tree.
#[derive(Debug)]
pub struct HwCounters {
    instructions: perf_event::Counter,
    cycles: perf_event::Counter,
}

impl HwCounters {
    /// Whether this machine lets us count instructions at all; the error
    /// says why not (virtual machines often hide the PMU).
    pub fn availability() -> Result<(), String> {
        perf_event::Builder::new(perf_event::events::Hardware::INSTRUCTIONS)
            .build()
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Counts from now on in `pid` and the children it starts.
    pub fn attach(pid: i32) -> Option<HwCounters> {
        let build = |event| {
            let mut c = perf_event::Builder::new(event)
                .observe_pid(pid)
                .any_cpu()
                .inherit(true)
                .build()
                .ok()?;
            c.enable().ok()?;
            Some(c)
        };
        Some(HwCounters {
            instructions: build(perf_event::events::Hardware::INSTRUCTIONS)?,
            cycles: build(perf_event::events::Hardware::CPU_CYCLES)?,
        })
    }

    pub fn read(&mut self) -> Option<(u64, u64)> {
        Some((self.instructions.read().ok()?, self.cycles.read().ok()?))
    }
}
