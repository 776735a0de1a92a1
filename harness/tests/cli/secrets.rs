//! Credentials never reach measured code, nor any output: a scenario
//! whose setup, build and run write their whole environment to files is
//! measured by `run`, `history`, a `worker` and `compare --run` with a
//! database password and a token in syncbench's environment; then every
//! file the commands left, the database's contents, the dashboard and
//! every line they printed are searched for both. And the queue's trust
//! boundary: jobs a party with database access writes directly.

use crate::support::*;
use std::path::Path;
use std::process::{Command, Output};
use syncbench_test_support::pgtest;

/// Random enough that no other text holds it by chance.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{nanos:09}x{}", std::process::id())
}

/// Every file under `dir` (not following links), as bytes.
fn files(dir: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files(&path, out);
        } else if kind.is_file() {
            out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn credentials_never_reach_measured_code_nor_any_output() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let password = unique("S3CRET");
    let token = unique("T0KEN");
    let key = unique("K3Y");
    let licence = unique("L1C");
    let mut admin = postgres::Client::connect(&pg.url_of("postgres"), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE bench LOGIN SUPERUSER PASSWORD '{password}'"
        ))
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE sb OWNER bench")
        .unwrap();
    let url = format!("postgres://bench:{password}@127.0.0.1:{}/sb", pg.port);

    let work = tempfile::tempdir().unwrap();
    let dumps = work.path().join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    let d = dumps.display();
    // Each command writes its environment to a file of its own ($$), and
    // the run line also asks for $GITHUB_TOKEN, which it will not get.
    let scenario = format!(
        "name = \"envdump\"\nkind = \"command\"\n\
         setup = \"env > {d}/setup.$$\"\n\
         build = \"env > {d}/build.$$\"\n\
         run = \"env > {d}/run.$$; echo token=[$GITHUB_TOKEN] > {d}/asked.$$\"\n\
         repetitions = 2\nwarmup = 0\ntimeout = \"30s\"\n"
    );
    // One scenario passes a credential through on purpose.
    let passing = format!(
        "name = \"passing\"\nkind = \"command\"\npass_env = [\"MY_API_KEY\"]\n\
         run = \"echo key=$MY_API_KEY > {d}/passed.$$\"\nrepetitions = 1\nwarmup = 0\n"
    );
    let repo = repo_with(&[
        ("scenarios/envdump.toml", &scenario),
        ("scenarios/passing.toml", &passing),
    ]);
    let r = repo.path();
    std::fs::write(r.join("NOTES"), "2\n").unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-q", "-m", "second"]);
    let cache = work.path().join("cache");
    let cache = cache.to_str().unwrap();

    let mut outputs: Vec<(String, Output)> = Vec::new();
    let mut sb_env = |what: &str, args: &[&str]| {
        let out = Command::new(SYNCBENCH)
            .arg("--repo")
            .arg(r)
            .args(args)
            .env("SYNCBENCH_DB", &url)
            .env("GITHUB_TOKEN", &token)
            .env("MY_API_KEY", &key)
            .env("SYNCBENCH_SECRET_ENV", "ACME_*")
            .env("ACME_LICENCE", &licence)
            .env_remove("SYNCBENCH_MACHINE_TAG")
            .env("SYNCBENCH_LOG", "info")
            .output()
            .unwrap();
        outputs.push((what.to_owned(), out));
        outputs.last().unwrap().1.status.code()
    };
    assert_eq!(sb_env("run", &["run", "envdump", "passing", "-v"]), Some(0));
    assert_eq!(
        sb_env(
            "history",
            &[
                "history",
                "envdump",
                "-n",
                "2",
                "--force",
                "--cache-dir",
                cache
            ]
        ),
        Some(0)
    );
    let head = git(r, &["rev-parse", "HEAD"]);
    assert_eq!(
        sb_env("enqueue", &["enqueue", &head, "envdump", "--force"]),
        Some(0)
    );
    assert_eq!(
        sb_env("worker", &["worker", "--until-empty", "--cache-dir", cache]),
        Some(0)
    );
    let ab = sb_env(
        "compare --run",
        &[
            "compare",
            "HEAD~1",
            "HEAD",
            "envdump",
            "--run",
            "--min-pairs",
            "2",
            "--max-pairs",
            "2",
            "--cache-dir",
            cache,
        ],
    );
    assert!(matches!(ab, Some(0 | 1)), "{ab:?}");
    let site = work.path().join("site");
    assert_eq!(
        sb_env("report", &["report", "--out", site.to_str().unwrap()]),
        Some(0)
    );
    // The password on the command line: warned about, and stored redacted.
    let out = Command::new(SYNCBENCH)
        .arg("--repo")
        .arg(r)
        .args(["--db", &url, "run", "passing"])
        .env_remove("SYNCBENCH_DB")
        .env_remove("SYNCBENCH_MACHINE_TAG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a password on the command line"),
        "{}",
        text(&out)
    );
    outputs.push(("run --db URL".into(), out));
    // A failing command quotes its stderr: the URL in it is redacted.
    let out = Command::new(SYNCBENCH)
        .args([
            "--db",
            &format!("postgres://bench:{password}@127.0.0.1:1/sb"),
            "queue",
        ])
        .env_remove("SYNCBENCH_DB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    outputs.push(("an unreachable server".into(), out));

    // Measured code saw the environment, minus the credentials.
    let mut dumped = Vec::new();
    files(&dumps, &mut dumped);
    let named = |prefix: &str| {
        dumped
            .iter()
            .filter(|(p, _)| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .count()
    };
    // setup and build: run, history (2 commits), worker, compare (2 sides).
    assert!(named("build.") >= 5, "{dumped:?}");
    assert!(named("run.") >= 8, "{dumped:?}");
    for (path, bytes) in &dumped {
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with("passed.") {
            continue;
        }
        if name.starts_with("asked.") {
            assert_eq!(String::from_utf8_lossy(bytes), "token=[]\n");
        }
        if name.starts_with("run.") || name.starts_with("build.") {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                text.contains("\nPATH=") || text.starts_with("PATH="),
                "{text}"
            );
            for name in [
                "SYNCBENCH_DB=",
                "GITHUB_TOKEN=",
                "MY_API_KEY=",
                "ACME_LICENCE=",
            ] {
                assert!(!text.contains(name), "{name} reached {}", path.display());
            }
        }
    }
    // pass_env gave MY_API_KEY back (the `--db URL` run had none to give).
    assert!(
        dumped.iter().any(|(p, b)| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("passed.")
            && contains(b, &format!("key={key}"))),
        "{dumped:?}"
    );
    // The run line's use of $GITHUB_TOKEN was named, with the way out.
    let run_err = String::from_utf8_lossy(&outputs[0].1.stderr).into_owned();
    assert!(
        run_err.contains("$GITHUB_TOKEN") && run_err.contains("pass_env = [\"GITHUB_TOKEN\"]"),
        "{run_err}"
    );

    // No file, row or line anywhere holds a credential.
    let mut everything = Vec::new();
    files(work.path(), &mut everything);
    files(r, &mut everything);
    let dump = Command::new(pgtest::bin_dir().unwrap().join("pg_dump"))
        .args(["--data-only", "--inserts", &url])
        .env("PGPASSWORD", &password)
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", text(&dump));
    assert!(contains(&dump.stdout, "envdump"), "the dump holds the runs");
    everything.push(("pg_dump".into(), dump.stdout));
    for (what, out) in &outputs {
        everything.push((format!("stdout of {what}").into(), out.stdout.clone()));
        everything.push((format!("stderr of {what}").into(), out.stderr.clone()));
    }
    for (path, bytes) in &everything {
        if path.starts_with(&dumps)
            && path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("passed.")
        {
            continue;
        }
        for secret in [&password, &token, &licence] {
            assert!(
                !contains(bytes, secret),
                "{} holds {secret}",
                path.display()
            );
        }
    }
    // The stored command line of the `--db URL` run, redacted.
    let lines: Vec<String> = postgres::Client::connect(&url, postgres::NoTls)
        .unwrap()
        .query("SELECT DISTINCT command_line FROM runs", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("--db postgres://bench:***@")),
        "{lines:?}"
    );
}

/// Writes a job straight into the queue's table, as anyone with access to
/// the database could.
fn insert_job(url: &str, sha: &str, scenarios: &[&str]) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one(
        "INSERT INTO jobs (sha, scenarios, force, state) VALUES ($1, $2, true, 'pending') RETURNING id",
        &[&sha, &scenarios.join(" ")],
    )
    .unwrap()
    .get(0)
}

#[test]
fn jobs_written_into_the_queue_directly_cannot_choose_what_runs() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    let work = tempfile::tempdir().unwrap();
    let ran = work.path().join("ran");
    // A scenario file outside the repository's scenarios/, and a branch
    // holding code no one reviewed: running either leaves a mark.
    let outside = work.path().join("evil.toml");
    std::fs::write(
        &outside,
        format!(
            "name = \"evil\"\nkind = \"command\"\nrun = \"touch {}\"\nrepetitions = 1\nwarmup = 0\n",
            ran.display()
        ),
    )
    .unwrap();
    let good = format!(
        "name = \"t\"\nkind = \"command\"\nrun = \"touch {}.$(cat marker)\"\nrepetitions = 1\nwarmup = 0\n",
        ran.display()
    );
    let repo = repo_with(&[("scenarios/t.toml", good.as_str()), ("marker", "main")]);
    let r = repo.path();
    git(r, &["checkout", "-q", "-b", "x"]);
    std::fs::write(r.join("marker"), "branch").unwrap();
    git(r, &["commit", "-q", "-am", "unreviewed"]);
    git(r, &["checkout", "-q", "main"]);
    let head = git(r, &["rev-parse", "HEAD"]);
    // The schema, through the CLI (it migrates), with one legitimate job.
    let out = sb(r, &url, &["enqueue", &head, "t"]);
    assert!(out.status.success(), "{}", text(&out));
    let by_path = insert_job(&url, &head, &[outside.to_str().unwrap()]);
    let by_traversal = insert_job(&url, &head, &["../../evil"]);
    let by_ref = insert_job(&url, "x", &["t"]);
    let by_expression = insert_job(&url, "origin/x", &["t"]);
    let unknown = insert_job(&url, &"0".repeat(40), &["t"]);
    let cache = work.path().join("cache");
    let out = sb(
        r,
        &url,
        &[
            "worker",
            "--until-empty",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(
        !ran.exists(),
        "a job ran a scenario outside scenarios/: {log}"
    );
    assert!(
        !work.path().join("ran.branch").exists(),
        "a job ran a branch named by a ref: {log}"
    );
    assert!(
        work.path().join("ran.main").exists(),
        "the legitimate job ran: {log}"
    );
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for (id, says) in [
        (by_path, "is not a scenario name"),
        (by_traversal, "is not a scenario name"),
        (by_ref, "not a full commit sha"),
        (by_expression, "not a full commit sha"),
        (unknown, "is not in"),
    ] {
        let row = c
            .query_one(
                "SELECT state, last_error, runs FROM jobs WHERE id = $1",
                &[&id],
            )
            .unwrap();
        let (state, error, runs): (String, Option<String>, i64) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(state, "failed", "job #{id}: {error:?}\n{log}");
        assert!(
            error.as_deref().unwrap_or("").contains(says),
            "job #{id}: {error:?}"
        );
        assert_eq!(runs, 0, "job #{id}");
        assert!(log.contains(&format!("job #{id} failed")), "{log}");
    }
}
