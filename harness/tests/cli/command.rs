//! Command scenarios in a repository that is not this one.

use crate::support::*;
use std::time::{Duration, Instant};

const HELLO: &str = r#"
name = "hello"
kind = "command"
build = "echo built > built.txt"
run = "test -f built.txt && seq {n} > /dev/null"
repetitions = 3
warmup = 1
timeout = "30s"
[params]
n = [1000, 2000]
"#;

#[test]
fn measures_a_command_in_another_repository_and_compares_with_the_baseline() {
    let repo = repo_with(&[("scenarios/hello.toml", HELLO), ("README", "not syncbench")]);
    let db = repo.path().join("results.sqlite");
    let db_s = db.to_str().unwrap();
    let args = [
        "--repo",
        repo.path().to_str().unwrap(),
        "run",
        "hello",
        "--db",
        db_s,
        "--json",
    ];
    let out = syncbench(&args);
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["point"], "n=1000");
    assert_eq!(results[0]["status"], "ok");
    let wall = results[0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "wall")
        .unwrap();
    assert_eq!(
        wall["values"].as_array().unwrap().len(),
        3,
        "warm-up is not recorded"
    );
    assert_eq!(wall["verdict"], "no_baseline");
    assert_eq!(v["commit"]["subject"], "<script>alert(1)</script> first");
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);

    // Second run of the same clean commit: compared with the first.
    let out = syncbench(&args);
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{}",
        text(&out)
    );
    let v = json(&out);
    let first = &v["results"][0];
    assert!(first["baseline"].as_str().unwrap().len() == 40, "{first}");
    let wall = first["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "wall")
        .unwrap();
    assert!(wall["p_value"].as_f64().is_some(), "{wall}");
    // Timing decides which; "inconclusive" when a tiny command's wall
    // moves past its threshold in too few values to tell.
    assert!(
        ["unchanged", "regression", "improvement", "inconclusive"]
            .contains(&wall["verdict"].as_str().unwrap()),
        "{wall}"
    );

    // show and export read it back; BMF names benchmark and measure.
    let out = sb(repo.path(), db_s, &["export", "--format", "bmf"]);
    assert!(out.status.success(), "{}", text(&out));
    let bmf = json(&out);
    // (wall: a `seq` this brief may end before it is sampled, and then
    // has no known peak memory.)
    let m = &bmf["hello/n=2000"]["wall"];
    assert!(
        m["value"].as_f64().unwrap() > 0.0
            && m["lower_value"].as_f64() <= m["upper_value"].as_f64(),
        "{bmf}"
    );
    let out = sb(repo.path(), db_s, &["show"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello n=1000"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_timeout_ends_the_whole_process_group_and_is_recorded() {
    let scenario = r#"
name = "stuck"
kind = "command"
run = "sleep 300 & echo $! > bg.pid; sleep 300"
repetitions = 1
warmup = 0
timeout = "1s"
"#;
    let repo = repo_with(&[("scenarios/stuck.toml", scenario)]);
    let db = repo.path().join("r.sqlite");
    let t = Instant::now();
    let out = sb(repo.path(), &db, &["run", "stuck"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(t.elapsed() < Duration::from_secs(20));
    let runs = run_status(&db);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1, "timeout");
    assert!(
        runs[0].2.as_ref().unwrap().contains("timeout of 1s"),
        "{runs:?}"
    );
    let bg: i32 = std::fs::read_to_string(repo.path().join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!syncbench::proc::alive(bg), "background job {bg} survived");
}

#[test]
fn a_failing_command_is_recorded_with_its_stderr() {
    let scenario =
        "name = \"bad\"\nkind = \"command\"\nrun = \"echo oh no >&2; exit 7\"\nrepetitions = 2\n";
    let repo = repo_with(&[("scenarios/bad.toml", scenario)]);
    let db = repo.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "bad"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let runs = run_status(&db);
    assert_eq!(runs[0].1, "failed");
    let err = runs[0].2.clone().unwrap();
    assert!(
        err.contains("exit status 7") && err.contains("oh no"),
        "{err}"
    );
}

#[test]
fn scenario_errors_name_the_file_line_and_field() {
    let repo = repo_with(&[(
        "scenarios/typo.toml",
        "name = \"t\"\nkind = \"command\"\nrun = \"true\"\nwarmpu = 1\n",
    )]);
    let out = sb(repo.path(), "/dev/null/x", &["run", "typo"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("typo.toml") && err.contains("line 4") && err.contains("warmpu"),
        "{err}"
    );
    let out = syncbench(&["--repo", repo.path().to_str().unwrap(), "run", "nonesuch"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no scenario \"nonesuch\""),
        "{}",
        text(&out)
    );
}

/// Peak RSS within 2% and CPU time within 5% of what GNU time reports for
/// the same run.
#[test]
fn probes_agree_with_gnu_time() {
    if !have(&[("/usr/bin/time", "time"), ("python3", "python3")]) {
        return;
    }
    let scenario = r#"
name = "alloc"
kind = "command"
run = "/usr/bin/time -v -o time.txt python3 -c 'b = bytearray(150 * 1024 * 1024); b[::4096] = b\"x\" * len(b[::4096]); print(sum(range(6000000)))'"
repetitions = 1
warmup = 0
timeout = "60s"
"#;
    let repo = repo_with(&[("scenarios/alloc.toml", scenario)]);
    let db = repo.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "alloc", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    let metric = |name: &str| {
        v["results"][0]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .unwrap()["median"]
            .as_f64()
            .unwrap()
    };
    let report = std::fs::read_to_string(repo.path().join("time.txt")).unwrap();
    let field = |label: &str| -> f64 {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("{label} not in {report}"))
            .trim()
            .parse()
            .unwrap()
    };
    let time_rss = field("Maximum resident set size (kbytes):") * 1024.0;
    let time_cpu = field("User time (seconds):") + field("System time (seconds):");
    let (rss, cpu) = (
        metric("command.peak_rss"),
        metric("command.cpu_user") + metric("command.cpu_sys"),
    );
    assert!(
        (rss - time_rss).abs() / time_rss < 0.02,
        "peak RSS {rss} vs time's {time_rss}"
    );
    // GNU time prints user and system time to 10 ms each (20 ms in all);
    // the harness also counts time(1) and sh (a few ms more).
    assert!(
        (cpu - time_cpu).abs() < 0.03 + 0.05 * time_cpu,
        "CPU {cpu} s vs time's {time_cpu} s"
    );
}

#[test]
fn a_failing_setup_fails_the_run_with_its_stderr_and_measures_nothing() {
    let scenario = "name = \"needs\"\nkind = \"command\"\nsetup = \"echo no nginx here >&2; exit 4\"\nrun = \"touch measured\"\nrepetitions = 1\n";
    let repo = repo_with(&[("scenarios/needs.toml", scenario)]);
    let db = repo.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "needs"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let runs = run_status(&db);
    assert_eq!(runs[0].1, "failed");
    let err = runs[0].2.clone().unwrap();
    assert!(
        err.contains("setup") && err.contains("no nginx here"),
        "{err}"
    );
    assert!(!repo.path().join("measured").exists());
}

#[test]
fn server_layouts_that_cannot_run_are_refused_when_the_file_loads() {
    let base = "name = \"l\"\nkind = \"sync\"\nworkload = \"load\"\n";
    for (extra, expect) in [
        ("backends = 3\n", "need a proxy in front"),
        ("proxy = \"haproxy\"\n", "use \"none\" or \"nginx\""),
        ("backends = \"{n}\"\n[params]\nn = [1, 0]\n", "from 1 to 64"),
        (
            "server_args = \"--workers {w}\"\n",
            "{w} is not a parameter of this scenario",
        ),
    ] {
        let repo = repo_with(&[("scenarios/l.toml", &format!("{base}{extra}"))]);
        let out = sb(repo.path(), "/dev/null/x", &["run", "l"]);
        assert_eq!(out.status.code(), Some(1), "{extra}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("l.toml") && err.contains(expect),
            "{extra}: {err}"
        );
    }
    let cmd = "name = \"c\"\nkind = \"command\"\nrun = \"true\"\nproxy = \"nginx\"\n";
    let repo = repo_with(&[("scenarios/c.toml", cmd)]);
    let out = sb(repo.path(), "/dev/null/x", &["run", "c"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only sync scenarios take this field"), "{err}");
}
