use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SYNCBENCH: &str = env!("CARGO_BIN_EXE_syncbench");

/// This workspace's root (the tree with the reference system).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A target dir of the tests' own: the `cargo build` the harness runs
/// must not wait for the lock of the `cargo test` that runs us.
pub fn test_target_dir() -> PathBuf {
    workspace().join("target").join("syncbench-tests")
}

/// Sends `signal` (e.g. `-9`, `-INT`) to `pid` with kill(1).
pub fn kill(signal: &str, pid: impl std::fmt::Display) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {signal} {pid}: {ok}");
}

/// `syncbench ARGS…` (never with the user's SYNCBENCH_DB or machine tag).
pub fn syncbench(args: &[&str]) -> Output {
    Command::new(SYNCBENCH)
        .args(args)
        .env_remove("SYNCBENCH_DB")
        .env_remove("SYNCBENCH_MACHINE_TAG")
        .output()
        .unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs git in `dir` as a fixed author; returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    String::from_utf8(ok.stdout).unwrap().trim().to_owned()
}

/// A git repository (not this one) with one commit holding `files`.
pub fn repo_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    git(dir.path(), &["add", "-A"]);
    git(
        dir.path(),
        &["commit", "-q", "-m", "<script>alert(1)</script> first"],
    );
    dir
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

pub fn run_status(db: &Path) -> Vec<(String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT scenario, status, error FROM runs ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `syncbench --repo REPO --db DB ARGS…`
pub fn sb(repo: impl AsRef<Path>, db: impl AsRef<Path>, args: &[&str]) -> Output {
    Command::new(SYNCBENCH)
        .arg("--repo")
        .arg(repo.as_ref())
        .arg("--db")
        .arg(db.as_ref())
        .args(args)
        .env_remove("SYNCBENCH_DB")
        .env_remove("SYNCBENCH_MACHINE_TAG")
        .output()
        .unwrap()
}

/// The metric names of one result of `run --json`.
pub fn metric_names(result: &serde_json::Value) -> Vec<&str> {
    result["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["metric"].as_str().unwrap())
        .collect()
}

/// Whether the programs a test needs are installed, each given as a name
/// on PATH or an absolute path, with the Debian package that has it.
/// Outside CI a missing one skips the test and says what installs it; in
/// CI (`.ci/run` installs them through `ci/deps.sh`) it fails the test.
pub fn have(tools: &[(&str, &str)]) -> bool {
    let found = |tool: &str| {
        if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        }
    };
    let missing: Vec<&(&str, &str)> = tools.iter().filter(|(t, _)| !found(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let names: Vec<&str> = missing.iter().map(|m| m.0).collect();
    let packages: Vec<&str> = missing.iter().map(|m| m.1).collect();
    assert!(
        std::env::var_os("CI").is_none(),
        "{names:?} missing: ci/deps.sh installs them"
    );
    eprintln!(
        "skipped: needs {} (bash ci/deps.sh, or apt-get install {})",
        names.join(", "),
        packages.join(" ")
    );
    false
}

/// The values of metric `name` in one result of `run --json`.
pub fn metric_values(result: &serde_json::Value, name: &str) -> Vec<f64> {
    result["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", metric_names(result)))["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}
