//! Instruction counts of a sync scenario's processes where the kernel
//! offers no hardware counters: every process runs under valgrind's
//! callgrind, and at each phase boundary (the driver waiting at its
//! barrier) `vgdb` asks each one to dump its counts, which zeroes them.
//! A phase's count for a process is the dump at its end; the process's
//! total is the sum of all its dumps and the one written at exit.
//!
//! Exact for the same binary and input, but not perfectly repeatable for
//! a multi-threaded server: buffers grow by how many bytes each read
//! happens to return (README: "How noisy each metric is").

use super::Failure;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use syncbench_model::records::Functions;

/// How much slower processes run under callgrind (measured: 41-47x on the
/// doc-sync workload); timeouts and deadlines are stretched by this.
pub const SLOWDOWN: u32 = 50;

/// Where one repetition's callgrind files go.
#[derive(Debug, Clone)]
pub(super) struct Callgrind {
    pub dir: PathBuf,
    /// Removes `dir` when the last clone is dropped (when it is ours).
    _owned: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// Says why valgrind cannot be used here, naming the package to install.
pub fn available() -> Result<(), Failure> {
    let ok = |p: &str, arg: &str| {
        syncbench_model::secrets::command(p)
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok("valgrind", "--version") && ok("vgdb", "--help") {
        Ok(())
    } else {
        Err(Failure::failed(
            "instruction counts need valgrind (with vgdb), which is not installed: install the Debian package `valgrind` (sudo apt-get install valgrind), or run without --instructions",
        ))
    }
}

impl Callgrind {
    /// A fresh temporary directory, after checking valgrind is there.
    pub fn in_temp_dir() -> Result<Callgrind, Failure> {
        available()?;
        let tmp = tempfile::tempdir().map_err(|e| Failure::failed(e.to_string()))?;
        Ok(Callgrind {
            dir: tmp.path().to_owned(),
            _owned: Some(std::sync::Arc::new(tmp)),
        })
    }

    /// `program` under callgrind, its files named after `name` (the
    /// process's metric name). Children it starts are followed.
    pub fn command(&self, name: &str, program: &Path) -> Command {
        let mut cmd = syncbench_model::secrets::command("valgrind");
        cmd.args(["--tool=callgrind", "--trace-children=yes", "--vgdb=yes"])
            .arg(format!(
                "--callgrind-out-file={}",
                self.dir.join(format!("{name}.%p.out")).display()
            ))
            .arg(format!(
                "--log-file={}",
                self.dir.join(format!("{name}.%p.log")).display()
            ))
            .arg(program);
        cmd
    }

    /// Asks each process to dump its counts now, labelled `label`; all at
    /// once, each bounded by `timeout`. Returns the pids that did not.
    pub fn dump(&self, pids: &[i32], label: &str, timeout: Duration) -> Vec<i32> {
        let handles: Vec<_> = pids
            .iter()
            .map(|&pid| {
                let label = label.to_owned();
                std::thread::spawn(move || {
                    // vgdb wakes a process blocked in a system call through
                    // ptrace; --max-invoke-ms is how soon it does.
                    let ok = syncbench_model::secrets::command("vgdb")
                        .arg(format!("--pid={pid}"))
                        .arg(format!("--wait={}", timeout.as_secs().max(1)))
                        .arg(format!("--cmd-time-out={}", timeout.as_secs().max(1)))
                        .args(["dump", &label])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    (pid, ok)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .filter(|(_, ok)| !ok)
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Every part written so far.
    pub(super) fn parts(&self) -> Vec<Part> {
        let mut out: Vec<Part> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Part::read(&e.path()))
            .collect();
        out.sort_by(|a, b| (&a.name, a.pid, a.part).cmp(&(&b.name, b.pid, b.part)));
        out
    }

    /// The end of each process's valgrind log, for a failure's message.
    pub fn log_tails(&self) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        logs.iter()
            .map(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                format!("\n{name}:\n{}", super::tail(p, 1000))
            })
            .collect()
    }
}

/// One callgrind output file: a dump, or the counts at exit.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub path: PathBuf,
    /// The metric name of the process tree it belongs to (`server`…).
    pub name: String,
    pub pid: i32,
    pub part: u32,
    /// The program (the command's first word, without its directory).
    pub program: String,
    /// The dump's label, `None` for the counts at exit.
    pub label: Option<String>,
    pub instructions: u64,
}

impl Part {
    /// Reads the header of `NAME.PID.out[.N]` (the counts are at its top).
    fn read(path: &Path) -> Option<Part> {
        let file = path.file_name()?.to_str()?;
        let (name, rest) = file.split_once('.')?;
        let (pid, _) = rest.split_once(".out")?;
        let head = read_head(path)?;
        let field = |k: &str| head.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
        let trigger = field("desc: Trigger:")?;
        Some(Part {
            path: path.to_owned(),
            name: name.to_owned(),
            pid: pid.parse().ok()?,
            part: field("part:").and_then(|p| p.parse().ok()).unwrap_or(0),
            program: field("cmd:")
                .and_then(|c| c.split_whitespace().next())
                .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
                .unwrap_or_default(),
            label: trigger
                .strip_prefix("dump")
                .map(|l| l.trim().to_owned())
                .filter(|_| trigger != "Program termination"),
            instructions: field("summary:")?.parse().ok()?,
        })
    }
}

/// The first 4 KiB of a file: callgrind writes its header and summary
/// there; the rest (per-function costs) can be large.
fn read_head(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut buf = vec![0; 4096];
    let n = std::fs::File::open(path).ok()?.read(&mut buf).ok()?;
    buf.truncate(n);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Adds the per-function costs of one callgrind output file to `into`.
///
/// The callgrind format (valgrind's docs, "Callgrind Format
/// Specification"): `fn=` starts a function's block, a cost line is
/// positions then events, and a cost line right after `calls=` is the
/// inclusive cost of that call. Names may be compressed as `(id) name`
/// on first use and `(id)` after. Exclusive: a function's own cost lines;
/// inclusive: those plus its calls to other functions (direct recursion
/// is not added twice; mutual recursion may be). Written here because no
/// maintained crate reads this format; `callgrind_annotate` prints text
/// grouped by file, not per function.
pub fn add_functions(path: &Path, into: &mut Functions) -> std::io::Result<()> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut names: HashMap<String, String> = HashMap::new();
    // `(id) name` defines, `(id)` refers; plain names stand for themselves.
    let mut name_of = |v: &str| -> String {
        let v = v.trim();
        match v.strip_prefix('(').and_then(|r| r.split_once(')')) {
            Some((id, rest)) if !rest.trim().is_empty() => {
                names.insert(id.to_owned(), rest.trim().to_owned());
                rest.trim().to_owned()
            }
            Some((id, _)) => names.get(id).cloned().unwrap_or_else(|| v.to_owned()),
            None => v.to_owned(),
        }
    };
    let mut positions = 1;
    let (mut func, mut callee) = (String::new(), String::new());
    let mut in_call = false;
    let mut own: HashMap<String, u64> = HashMap::new();
    let mut calls: HashMap<String, u64> = HashMap::new();
    for line in file.lines() {
        let line = line?;
        let Some(first) = line.chars().next() else {
            continue;
        };
        if first.is_ascii_digit() || matches!(first, '+' | '-' | '*') {
            let cost: u64 = line
                .split_whitespace()
                .nth(positions)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            if std::mem::take(&mut in_call) {
                if callee != func {
                    *calls.entry(func.clone()).or_default() += cost;
                }
            } else {
                *own.entry(func.clone()).or_default() += cost;
            }
            continue;
        }
        if let Some(p) = line.strip_prefix("positions:") {
            positions = p.split_whitespace().count().max(1);
        } else if let Some(v) = line.strip_prefix("fn=") {
            func = name_of(v);
        } else if let Some(v) = line.strip_prefix("cfn=") {
            callee = name_of(v);
        } else if line.starts_with("calls=") {
            in_call = true;
        }
    }
    for (f, c) in own {
        let e = into.entry(f).or_default();
        e.exclusive += c;
        e.inclusive += c;
    }
    for (f, c) in calls {
        into.entry(f).or_default().inclusive += c;
    }
    Ok(())
}

/// The label of the dump that ends `phase`.
pub(super) fn end_label(phase: &str) -> String {
    format!("end:{phase}")
}

/// Instruction counts by process (the tree's total) and by phase and
/// process (the root process's own), from the parts of one repetition.
/// `roots` maps each metric name to its root pid.
pub(super) fn counts(parts: &[Part], roots: &[(String, i32)]) -> super::Counts {
    let mut out = super::Counts::default();
    for p in parts {
        *out.total.entry(p.name.clone()).or_default() += p.instructions;
        let is_root = roots.iter().any(|(n, pid)| *n == p.name && *pid == p.pid);
        if let (true, Some(label)) = (is_root, &p.label)
            && let Some(phase) = label.strip_prefix("end:")
        {
            *out.phases
                .entry((phase.to_owned(), p.name.clone()))
                .or_default() += p.instructions;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncbench_model::records::Cost;

    #[test]
    fn functions_exclusive_and_inclusive() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("server.1.out");
        // main calls work twice (30 + 40 inclusive) and itself once;
        // work's own cost is 60 in all, 10 of it after a name reference.
        std::fs::write(
            &f,
            "# callgrind format\nversion: 1\npositions: line\nevents: Ir\nsummary: 75\n\nfl=(1) a.rs\nfn=(1) main\n1 5\ncfn=(2) work\ncalls=2 10\n3 70\ncfn=(1)\ncalls=1 1\n4 99\n\nfn=(2)\n10 50\n+1 10\n",
        )
        .unwrap();
        let mut got = Functions::new();
        add_functions(&f, &mut got).unwrap();
        assert_eq!(
            got["main"],
            Cost {
                exclusive: 5,
                inclusive: 75
            }
        );
        assert_eq!(
            got["work"],
            Cost {
                exclusive: 60,
                inclusive: 60
            }
        );
        // Two files add up.
        add_functions(&f, &mut got).unwrap();
        assert_eq!(got["work"].exclusive, 120);
    }

    fn write(dir: &Path, file: &str, part: u32, trigger: &str, summary: u64) {
        std::fs::write(
            dir.join(file),
            format!(
                "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 1\ncmd:  /x/target/release/sync-server serve --listen 127.0.0.1:0\npart: {part}\n\n\ndesc: I1 cache: \ndesc: Timerange: Basic block 0 - 5\ndesc: Trigger: {trigger}\n\npositions: line\nevents: Ir\nsummary: {summary}\n\nfn=(1) main\n1 {summary}\ntotals: {summary}\n"
            ),
        )
        .unwrap();
    }

    #[test]
    fn parts_add_up_to_totals_and_phases() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "server.10.out.1", 1, "dump begin:upload", 1000);
        write(dir.path(), "server.10.out.2", 2, "dump end:upload", 5000);
        write(dir.path(), "server.10.out", 3, "Program termination", 7);
        write(dir.path(), "driver.11.out.1", 1, "dump end:upload", 300);
        write(dir.path(), "driver.11.out", 2, "Program termination", 20);
        // A child of the driver (the mail exchanger): in the total only.
        write(dir.path(), "driver.12.out", 1, "Program termination", 4000);
        std::fs::write(dir.path().join("server.10.log"), "==10== log").unwrap();
        let cg = Callgrind {
            dir: dir.path().to_owned(),
            _owned: None,
        };
        let parts = cg.parts();
        assert_eq!(parts.len(), 6);
        assert_eq!(parts[0].program, "sync-server");
        let c = counts(&parts, &[("server".into(), 10), ("driver".into(), 11)]);
        assert_eq!(c.total["server"], 6007);
        assert_eq!(c.total["driver"], 4320);
        assert_eq!(c.phases[&("upload".into(), "server".into())], 5000);
        assert_eq!(c.phases[&("upload".into(), "driver".into())], 300);
        assert_eq!(c.phases.len(), 2);
        assert!(cg.log_tails().contains("==10== log"));
    }
}
