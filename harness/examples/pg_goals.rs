//! Measures the PostgreSQL store's and the job queue's goals against a
//! throwaway server of its own (`syncbench_test_support::pgtest`), with the release
//! `syncbench` binary (SYNCBENCH, default target/release/syncbench):
//!
//! - `queue [JOBS WORKERS]`: WORKERS workers drain JOBS jobs of a short
//!   command scenario (one commit each) while the first is SIGKILLed
//!   mid-job and started again; checks every job completed exactly once.
//! - `latency [N]`: an idle worker; N jobs enqueued one at a time; the
//!   time from enqueue to the worker starting each (server clock).
//! - `report DB.sqlite [ROUNDS]`: DB merged into PostgreSQL, then
//!   `report` and `regressions` timed from both stores, alternately.
//! - `merge [FILES RUNS]`: FILES SQLite files of RUNS runs merged into
//!   PostgreSQL twice (the second pass must add nothing).
//! - `store [N]`: a run of 100 metrics × 5 repetitions with samples
//!   stored N times into each backend, alternately.
//!
//! bash ci/pg-goals.sh runs them all.

// A measuring tool that starts the release binary with the environment
// it chooses.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use syncbench::model::records::Sample;
use syncbench::model::records::{Commit, Machine};
use syncbench::model::{Direction, Phase, RunStatus, Series, Unit};
use syncbench::store::{Location, RunRecord};
use syncbench_test_support::pgtest::PgServer;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn syncbench_bin() -> PathBuf {
    std::env::var_os("SYNCBENCH").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/release/syncbench")
                .to_owned()
        },
        PathBuf::from,
    )
}

fn git(dir: &Path, args: &[&str]) -> Res<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()?;
    if !out.status.success() {
        return Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// A repository of `n` commits with scenario `t` running `run`.
fn repo(n: usize, run: &str) -> Res<(tempfile::TempDir, Vec<String>)> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"])?;
    std::fs::create_dir_all(d.join("scenarios"))?;
    std::fs::write(
        d.join("scenarios/t.toml"),
        format!("name = \"t\"\nkind = \"command\"\nrun = \"{run}\"\nrepetitions = 1\nwarmup = 0\n"),
    )?;
    let mut shas = vec![];
    for i in 0..n {
        std::fs::write(d.join("n"), format!("{i}\n"))?;
        git(d, &["add", "-A"])?;
        git(d, &["commit", "-q", "-m", &format!("commit {i}")])?;
        shas.push(git(d, &["rev-parse", "HEAD"])?);
    }
    Ok((dir, shas))
}

fn sb(args: &[&str]) -> Res<std::process::Output> {
    let out = Command::new(syncbench_bin())
        .args(args)
        .env_remove("SYNCBENCH_DB")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "syncbench {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out)
}

struct Worker {
    child: Child,
    lines: Receiver<String>,
}

fn worker(repo: &Path, url: &str, cache: &Path, extra: &[&str]) -> Res<Worker> {
    let mut child = Command::new(syncbench_bin())
        .arg("--repo")
        .arg(repo)
        .args(["--db", url, "worker", "--cache-dir"])
        .arg(cache)
        .args(extra)
        .env_remove("SYNCBENCH_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let (send, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    Ok(Worker { child, lines })
}

impl Worker {
    fn next(&self, prefix: &str, within: Duration) -> Res<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("no {prefix:?} line within {within:?}"))?;
            let line = self.lines.recv_timeout(left)?;
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn queue(jobs: usize, workers: usize) -> Res<()> {
    let pg = PgServer::start()?;
    let url = pg.url_of("postgres");
    let (repo, shas) = repo(jobs, "sleep 0.05")?;
    let r = repo.path().to_str().ok_or("path")?;
    sb(&[
        "--repo",
        r,
        "--db",
        &url,
        "enqueue",
        "-n",
        &jobs.to_string(),
        "t",
    ])?;
    let caches = tempfile::tempdir()?;
    let start = Instant::now();
    let spawn = |i: usize| {
        worker(
            repo.path(),
            &url,
            &caches.path().join(format!("w{i}")),
            &["--until-empty", "--lease", "5s", "--name", &format!("w{i}")],
        )
    };
    let mut running: Vec<Worker> = (0..workers).map(spawn).collect::<Res<_>>()?;
    let victim = running.remove(0);
    // Let it finish a few jobs, then kill it right after it starts one.
    for _ in 0..3 {
        victim.next("job #", Duration::from_secs(120))?;
    }
    // "job #N (attempt K): …" is said as a job starts ("job #N done" after).
    let line = loop {
        let line = victim.next("job #", Duration::from_secs(120))?;
        if line.contains("(attempt") {
            break line;
        }
    };
    let killed: i64 = line["job #".len()..]
        .split(' ')
        .next()
        .ok_or("job id")?
        .parse()?;
    let mut victim = victim;
    victim.child.kill()?; // SIGKILL
    victim.child.wait()?;
    println!(
        "killed worker w0 (SIGKILL) in job #{killed} after {:.1} s; started it again",
        start.elapsed().as_secs_f64()
    );
    running.push(spawn(workers)?);
    for mut w in running {
        let status = w.child.wait()?;
        if !status.success() {
            return Err(format!("a worker exited with {status}").into());
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
    let done: i64 = c
        .query_one("SELECT count(*) FROM jobs WHERE state = 'done'", &[])?
        .get(0);
    let (attempt, lost): (i64, i64) = {
        let r = c.query_one("SELECT attempt, lost FROM jobs WHERE id = $1", &[&killed])?;
        (r.get(0), r.get(1))
    };
    let per_commit: Vec<i64> = c
        .query("SELECT count(*) FROM runs GROUP BY commit_sha", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let once = per_commit.len() == shas.len() && per_commit.iter().all(|n| *n == 1);
    let by_worker: Vec<(String, i64)> = c
        .query(
            "SELECT worker, count(*) FROM jobs GROUP BY worker ORDER BY worker",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    println!("{jobs} jobs, {workers} workers: drained in {elapsed:.1} s");
    println!(
        "  done: {done}/{jobs}; commits with exactly one run: {}/{} ({})",
        per_commit.iter().filter(|n| **n == 1).count(),
        shas.len(),
        if once {
            "no duplicate, none missing"
        } else {
            "MISMATCH"
        }
    );
    println!(
        "  killed job #{killed}: attempt {attempt}, leases lost {lost} (re-run after its lease)"
    );
    println!("  jobs completed by worker: {by_worker:?}");
    if !once || done != jobs as i64 || attempt < 2 {
        return Err("the queue goal is not met".into());
    }
    Ok(())
}

fn latency(n: usize) -> Res<()> {
    let pg = PgServer::start()?;
    let url = pg.url_of("postgres");
    let (repo, _) = repo(1, "true")?;
    let r = repo.path().to_str().ok_or("path")?;
    let cache = tempfile::tempdir()?;
    let w = worker(repo.path(), &url, cache.path(), &["--lease", "120s"])?;
    for i in 1..=n {
        w.next("waiting for jobs", Duration::from_secs(60))?;
        sb(&["--repo", r, "--db", &url, "enqueue", "HEAD", "t", "--force"])?;
        w.next(&format!("job #{i} done"), Duration::from_secs(60))?;
    }
    let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
    let mut ms: Vec<f64> = c
        .query(
            "SELECT 1000 * extract(epoch FROM started_at - enqueued_at)::float8 FROM jobs",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let max = ms.iter().copied().fold(0.0, f64::max);
    println!(
        "idle worker, {n} jobs enqueued one at a time: enqueue → start median {:.1} ms, max {max:.1} ms (LISTEN/NOTIFY; the fallback look is every 30 s)",
        median(&mut ms)
    );
    let mut w = w;
    w.child.kill()?;
    Ok(())
}

fn timed(args: &[&str]) -> Res<f64> {
    let t = Instant::now();
    sb(args)?;
    Ok(t.elapsed().as_secs_f64())
}

fn report(db: &str, rounds: usize) -> Res<()> {
    let pg = PgServer::start()?;
    let url = pg.url_of("postgres");
    let t = timed(&["--db", &url, "merge", db])?;
    println!("merged {db} into PostgreSQL in {t:.1} s");
    let out = tempfile::tempdir()?;
    let site = |name: &str| out.path().join(name).display().to_string();
    let (s_site, p_site) = (site("sqlite"), site("postgres"));
    let mut times: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds {
        times[0].push(timed(&["--db", db, "report", "--out", &s_site])?);
        times[1].push(timed(&["--db", &url, "report", "--out", &p_site])?);
        times[2].push(timed(&["--db", db, "regressions", "--all", "--json"])?);
        times[3].push(timed(&["--db", &url, "regressions", "--all", "--json"])?);
    }
    let m: Vec<f64> = times.iter_mut().map(|v| median(v)).collect();
    println!("medians of {rounds}, alternating:");
    println!(
        "  report:      SQLite {:.2} s, PostgreSQL {:.2} s ({:.2}x)",
        m[0],
        m[1],
        m[1] / m[0]
    );
    println!(
        "  regressions: SQLite {:.2} s, PostgreSQL {:.2} s ({:.2}x)",
        m[2],
        m[3],
        m[3] / m[2]
    );
    let same = Command::new("diff")
        .args(["-r", "-q", &s_site, &p_site])
        .status()?
        .success();
    println!(
        "  the two sites are {}",
        if same { "byte-identical" } else { "DIFFERENT" }
    );
    Ok(())
}

fn machine() -> Machine {
    Machine {
        cpu: "Synthetic CPU".into(),
        cores: 2,
        memory_bytes: 8 << 30,
        os: "Linux".into(),
        kernel: "6".into(),
        hw_counters: "unavailable".into(),
        tag: Some("synthetic".into()),
    }
}

/// A run of `metrics` metrics × `reps` repetitions with 3 processes
/// sampled every 50 ms for 2 s per repetition, and 4 phases each.
fn synthetic_run(sha: &str, i: usize, metrics: usize, reps: usize) -> RunRecord {
    RunRecord {
        machine: machine(),
        commit: Commit {
            sha: sha.into(),
            parents: vec![],
            author: "t".into(),
            time_unix: 1_750_000_000 + i as i64,
            subject: format!("commit {i}"),
            dirty: false,
            branch: None,
        },
        scenario: "s".into(),
        point: format!("n={}", i % 3),
        params_json: "{}".into(),
        status: RunStatus::Ok,
        error: None,
        repetitions: reps as u32,
        harness_version: "0".into(),
        toolchain: "t".into(),
        environment: Default::default(),
        command_line: "c".into(),
        started_unix: 1_750_000_000.0 + i as f64 * 0.001,
        finished_unix: 1_750_000_001.0 + i as f64 * 0.001,
        metrics: (0..metrics)
            .map(|m| Series {
                name: format!("phase{}.metric{m}", m % 7),
                unit: Unit::Seconds,
                direction: Direction::LowerIsBetter,
                values: (0..reps).map(|r| 1.0 + (r * m) as f64 * 1e-3).collect(),
            })
            .collect(),
        samples: (0..reps as u32)
            .flat_map(|rep| {
                ["server", "driver", "proxy"]
                    .into_iter()
                    .flat_map(move |p| {
                        (0..40).map(move |t| {
                            (
                                rep,
                                Sample {
                                    process: p.into(),
                                    t_ms: 50.0 * t as f64,
                                    cpu_pct: 50.0,
                                    rss_bytes: 1 << 24,
                                },
                            )
                        })
                    })
            })
            .collect(),
        phases: (0..reps as u32)
            .flat_map(|rep| {
                (0..4).map(move |p| Phase {
                    repetition: rep,
                    name: format!("phase{p}"),
                    start_ms: 100.0 * p as f64,
                    end_ms: 100.0 * (p + 1) as f64,
                })
            })
            .collect(),
    }
}

fn merge(files: usize, runs: usize) -> Res<()> {
    let pg = PgServer::start()?;
    let url = pg.url_of("postgres");
    let dir = tempfile::tempdir()?;
    let mut paths = vec![];
    for f in 0..files {
        let path = dir.path().join(format!("artifact-{f}.sqlite"));
        let mut store = syncbench::store::open(&Location::Sqlite(path.clone()))?;
        let batch: Vec<RunRecord> = (0..runs)
            .map(|r| synthetic_run(&format!("{:040x}", f * runs + r), f * runs + r, 20, 5))
            .collect();
        store.record_all(&batch)?;
        paths.push(path.display().to_string());
    }
    let mut args = vec!["--db", url.as_str(), "merge", "--json"];
    args.extend(paths.iter().map(String::as_str));
    for pass in ["first", "second"] {
        let t = Instant::now();
        let out = sb(&args)?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let added: u64 = v
            .as_array()
            .ok_or("json")?
            .iter()
            .map(|f| f["merged"]["runs_added"].as_u64().unwrap_or(0))
            .sum();
        println!(
            "merge of {files} files × {runs} runs, {pass} pass: {added} runs added in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn store(n: usize) -> Res<()> {
    let pg = PgServer::start()?;
    let dir = tempfile::tempdir()?;
    let mut stores = [
        syncbench::store::open(&Location::Sqlite(dir.path().join("r.sqlite")))?,
        syncbench::store::open(&Location::Postgres(pg.url_of("postgres")))?,
    ];
    let mut ms: [Vec<f64>; 2] = Default::default();
    for i in 0..n {
        let run = synthetic_run(&format!("{i:040x}"), i, 100, 5);
        for (s, t) in stores.iter_mut().zip(ms.iter_mut()) {
            let start = Instant::now();
            s.record(&run)?;
            t.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let run = synthetic_run(&"0".repeat(40), 0, 100, 5);
    println!(
        "storing a run of 100 metrics × 5 repetitions, {} samples, {} phases (median of {n}, alternating): SQLite {:.1} ms, PostgreSQL {:.1} ms",
        run.samples.len(),
        run.phases.len(),
        median(&mut ms[0]),
        median(&mut ms[1])
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| -> Res<usize> { Ok(args.get(i).map_or(Ok(d), |s| s.parse())?) };
    match args.first().map(String::as_str) {
        Some("queue") => queue(num(1, 200)?, num(2, 4)?),
        Some("latency") => latency(num(1, 20)?),
        Some("report") => report(args.get(1).ok_or("report DB.sqlite [ROUNDS]")?, num(2, 5)?),
        Some("merge") => merge(num(1, 50)?, num(2, 20)?),
        Some("store") => store(num(1, 20)?),
        _ => Err(
            "usage: pg_goals queue|latency|report|merge|store [ARGS] (see the file's doc)".into(),
        ),
    }
}
