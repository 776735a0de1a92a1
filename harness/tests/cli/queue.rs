//! The job queue with real worker processes and a real PostgreSQL server:
//! jobs drained exactly once while a worker is killed mid-job, a commit
//! that does not build, a job failing the same way twice, a machine tag
//! no worker has, and an idle worker woken by a notification.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;
use syncbench_test_support::pgtest;

/// A repository of `n` commits whose scenarios are `files`; its shas,
/// oldest first.
fn repo_of(n: usize, files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<String>) {
    let repo = repo_with(files);
    let mut shas = vec![git(repo.path(), &["rev-parse", "HEAD"])];
    for i in 1..n {
        std::fs::write(repo.path().join("NOTES"), format!("{i}\n")).unwrap();
        git(repo.path(), &["add", "-A"]);
        git(repo.path(), &["commit", "-q", "-m", &format!("commit {i}")]);
        shas.push(git(repo.path(), &["rev-parse", "HEAD"]));
    }
    (repo, shas)
}

struct Worker {
    child: Child,
    lines: Receiver<String>,
}

impl Worker {
    fn start(repo: &Path, url: &str, cache: &Path, extra: &[&str]) -> Worker {
        let mut child = Command::new(SYNCBENCH)
            .arg("--repo")
            .arg(repo)
            .args(["--db", url, "worker", "--cache-dir"])
            .arg(cache)
            .args(extra)
            .env_remove("SYNCBENCH_DB")
            .env_remove("SYNCBENCH_MACHINE_TAG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(cache.with_extension("stderr")).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Worker { child, lines }
    }

    /// The next line starting with `prefix` (the worker's events).
    fn next(&self, prefix: &str, within: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    fn wait(mut self) -> i32 {
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

const SHORT: &str =
    "name = \"t\"\nkind = \"command\"\nrun = \"sleep 0.2\"\nrepetitions = 1\nwarmup = 0\n";

#[test]
fn workers_drain_the_queue_exactly_once_while_one_is_killed_mid_job() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    let n = 12;
    // A second per job: the kill below lands mid-job even on a loaded machine.
    let second = SHORT.replace("sleep 0.2", "sleep 1");
    let (repo, shas) = repo_of(n, &[("scenarios/t.toml", second.as_str())]);
    let out = sb(
        repo.path(),
        &url,
        &["enqueue", "-n", &n.to_string(), "t", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out).as_array().unwrap().len(), n);
    let caches = tempfile::tempdir().unwrap();
    let worker = |i: usize| {
        Worker::start(
            repo.path(),
            &url,
            &caches.path().join(format!("w{i}")),
            &["--until-empty", "--lease", "2s", "--name", &format!("w{i}")],
        )
    };
    let mut workers: Vec<Worker> = (0..3).map(worker).collect();
    // Killed right after it says it started a job ("job #N (attempt
    // K): …"; "job #N done" comes after): mid-job.
    let victim = workers.remove(0);
    let started = victim
        .next("job #", Duration::from_secs(60))
        .expect("the worker took no job");
    assert!(started.contains("(attempt"), "{started}");
    let killed_job: i64 = started["job #".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    kill("-9", victim.child.id());
    assert_eq!(victim.wait(), -1, "not killed by the signal");
    workers.push(worker(3));
    for w in workers {
        assert_eq!(w.wait(), 0);
    }
    let mut c = client(&url);
    let states: Vec<(i64, String, i64, i64)> = c
        .query("SELECT id, state, attempt, lost FROM jobs ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(states.len(), n);
    assert!(states.iter().all(|s| s.1 == "done"), "{states:?}");
    let killed = states.iter().find(|s| s.0 == killed_job).unwrap();
    assert!(
        killed.2 >= 2 && killed.3 >= 1,
        "not re-run after its lease: {killed:?}"
    );
    // Each commit measured exactly once: no duplicate, no missing result.
    let per_commit: Vec<(String, i64)> = c
        .query(
            "SELECT commit_sha, count(*) FROM runs GROUP BY commit_sha ORDER BY commit_sha",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut want: Vec<(String, i64)> = shas.iter().map(|s| (s.clone(), 1)).collect();
    want.sort();
    assert_eq!(per_commit, want);
}

#[test]
fn a_commit_that_does_not_build_and_a_job_failing_twice_are_not_retried_forever() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    let (repo, _) = repo_of(
        1,
        &[
            (
                "scenarios/b.toml",
                "name = \"b\"\nkind = \"command\"\nbuild = \"exit 3\"\nrun = \"true\"\nrepetitions = 1\nwarmup = 0\n",
            ),
            (
                "scenarios/f.toml",
                "name = \"f\"\nkind = \"command\"\nrun = \"echo the disk is full >&2; exit 1\"\nrepetitions = 1\nwarmup = 0\n",
            ),
        ],
    );
    for s in ["b", "f"] {
        let out = sb(repo.path(), &url, &["enqueue", "HEAD", s]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let cache = tempfile::tempdir().unwrap();
    let w = Worker::start(repo.path(), &url, cache.path(), &["--until-empty"]);
    assert_eq!(w.wait(), 0);
    let out = syncbench(&["--db", &url, "queue", "--json"]);
    let q = json(&out);
    let jobs = q["jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["state"], "build_failed", "{q}");
    assert_eq!(jobs[0]["attempt"], 1, "a build failure was retried: {q}");
    assert_eq!(jobs[1]["state"], "failed", "{q}");
    assert_eq!(jobs[1]["attempt"], 2, "{q}");
    assert!(
        jobs[1]["log"].as_str().unwrap().contains("exit"),
        "no log: {q}"
    );
    // The failed runs are in the history, as `history` would record them.
    let statuses: Vec<String> = client(&url)
        .query("SELECT status FROM runs ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["build_failed", "failed"]);
    let listing = text(&syncbench(&["--db", &url, "queue"]));
    assert!(
        listing.contains("build_failed:") && listing.contains("\nfailed:"),
        "{listing}"
    );
}

#[test]
fn a_job_for_a_tag_no_worker_has_waits_and_queue_says_so() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    let (repo, _) = repo_of(1, &[("scenarios/t.toml", SHORT)]);
    let out = sb(
        repo.path(),
        &url,
        &["enqueue", "HEAD", "t", "--machine", "gpu"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let cache = tempfile::tempdir().unwrap();
    // An untagged worker does not take it, and has nothing to wait for.
    assert_eq!(
        Worker::start(repo.path(), &url, cache.path(), &["--until-empty"]).wait(),
        0
    );
    let listing = text(&syncbench(&["--db", &url, "queue"]));
    assert!(
        listing.contains("1 pending") && listing.contains("waiting: no worker tagged gpu"),
        "{listing}"
    );
    let tagged = Worker::start(
        repo.path(),
        &url,
        cache.path(),
        &["--until-empty", "--machine-tag", "gpu"],
    );
    assert_eq!(tagged.wait(), 0);
    let q = json(&syncbench(&["--db", &url, "queue", "--json", "--all"]));
    assert_eq!(q["jobs"][0]["state"], "done", "{q}");
    let machines = json(&syncbench(&["--db", &url, "machines", "--json"]));
    assert_eq!(machines[0]["tag"], "gpu", "{machines}");
}

#[test]
fn an_idle_worker_is_woken_by_a_new_job_and_stops_on_sigterm() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    let (repo, _) = repo_of(1, &[("scenarios/t.toml", SHORT)]);
    let cache = tempfile::tempdir().unwrap();
    // A long lease: without a notification the worker would look again
    // only after 30 s.
    let w = Worker::start(repo.path(), &url, cache.path(), &["--lease", "120s"]);
    w.next("waiting for jobs", Duration::from_secs(60))
        .expect("the worker never waited");
    let out = sb(repo.path(), &url, &["enqueue", "HEAD", "t"]);
    assert!(out.status.success(), "{}", text(&out));
    w.next("job #1 done", Duration::from_secs(20))
        .expect("the new job was not taken while the worker waited");
    let latency: f64 = client(&url)
        .query_one(
            "SELECT extract(epoch FROM started_at - enqueued_at)::float8 FROM jobs",
            &[],
        )
        .unwrap()
        .get(0);
    // Polling would take up to 30 s; a notification, milliseconds.
    assert!(latency < 10.0, "enqueue to start: {latency} s");
    kill("-TERM", w.child.id());
    assert_eq!(w.wait(), 130);
}

/// The database server restarts while a worker takes a job: the worker
/// waits for it, reconnects (its queue, heartbeat and store connections),
/// and the job is completed and stored once, by that worker.
#[test]
fn a_worker_outlives_a_database_restart() {
    let Some(mut pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    let slow = SHORT.replace("sleep 0.2", "sleep 2");
    let (repo, shas) = repo_of(1, &[("scenarios/t.toml", slow.as_str())]);
    let out = sb(repo.path(), &url, &["enqueue", "HEAD", "t"]);
    assert!(out.status.success(), "{}", text(&out));
    let cache = tempfile::tempdir().unwrap();
    let w = Worker::start(
        repo.path(),
        &url,
        cache.path(),
        &["--until-empty", "--lease", "60s"],
    );
    w.next("job #1 (attempt 1)", Duration::from_secs(60))
        .expect("the worker took no job");
    pg.restart().unwrap();
    assert_eq!(pg.url_of("postgres"), url, "restarted on another port");
    let status = w.wait();
    let log = std::fs::read_to_string(cache.path().with_extension("stderr")).unwrap_or_default();
    assert_eq!(status, 0, "the worker said:\n{log}");
    let mut c = client(&url);
    let (state, runs): (String, i64) = {
        let r = c.query_one("SELECT state, runs FROM jobs", &[]).unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((state.as_str(), runs), ("done", 1));
    let stored: Vec<String> = c
        .query("SELECT commit_sha FROM runs", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, [shas[0].clone()]);
}

/// A job names its variants: the worker measures those only; a variant no
/// scenario declares is refused when enqueued.
#[test]
fn a_job_measures_the_variants_it_names() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    let scenario = format!(
        "{SHORT}[variants.a]\nenv = {{ A = \"1\" }}\n[variants.b]\nenv = {{ B = \"1\" }}\n"
    );
    let (repo, _) = repo_of(1, &[("scenarios/t.toml", scenario.as_str())]);
    let out = sb(
        repo.path(),
        &url,
        &["enqueue", "HEAD", "t", "--variant", "nope"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("no variant \"nope\""), "{}", text(&out));
    let out = sb(
        repo.path(),
        &url,
        &["enqueue", "HEAD", "t", "--variant", "b"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let queued = text(&sb(repo.path(), &url, &["queue"]));
    assert!(queued.contains("t (variants b)"), "{queued}");
    let cache = tempfile::tempdir().unwrap();
    let w = Worker::start(repo.path(), &url, cache.path(), &["--until-empty"]);
    assert_eq!(w.wait(), 0);
    let points: Vec<String> = client(&url)
        .query("SELECT point FROM runs ORDER BY point", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(points, ["variant=b"]);
}
