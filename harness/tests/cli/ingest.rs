//! Results in from criterion and BMF, out as BMF and CSV.

use crate::support::*;
use std::path::Path;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/criterion-0.8")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

#[test]
fn criterion_results_become_series_with_raw_samples() {
    let repo = repo_with(&[("x", "y")]);
    let r = repo.path().to_str().unwrap();
    let db = repo.path().join("r.sqlite");
    let out = sb(
        r,
        &db,
        &["ingest", "criterion", fixtures().to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = sb(r, &db, &["export", "--format", "json"]);
    let v = json(&out);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let enc = runs
        .iter()
        .find(|r| r["run"]["point"] == "doc/encrypt/16KiB")
        .unwrap();
    assert_eq!(enc["run"]["scenario"], "criterion");
    let time = enc["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "time")
        .unwrap();
    let samples: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("doc/encrypt_16KiB/new/sample.json")).unwrap(),
    )
    .unwrap();
    let n = samples["iters"].as_array().unwrap().len();
    assert_eq!(
        time["values"].as_array().unwrap().len(),
        n,
        "one value per criterion sample"
    );
    let first = samples["times"][0].as_f64().unwrap() / samples["iters"][0].as_f64().unwrap() / 1e9;
    assert!((time["values"][0].as_f64().unwrap() - first).abs() < 1e-15);
    // criterion's own estimate agrees with the median of what was stored.
    let est: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("doc/encrypt_16KiB/new/estimates.json")).unwrap(),
    )
    .unwrap();
    let crit_median = est["median"]["point_estimate"].as_f64().unwrap() / 1e9;
    let ours = syncbench::stats::median(
        &time["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect::<Vec<_>>(),
    );
    assert!(
        (ours - crit_median).abs() / crit_median < 0.05,
        "{ours} vs criterion's {crit_median}"
    );
    let thr = enc["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "throughput")
        .unwrap();
    assert_eq!(thr["unit"], "megabytes_per_second");
}

#[test]
fn bad_criterion_output_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures(), dir.path());
    let sample = dir.path().join("doc/encrypt_16KiB/new/sample.json");
    let text = std::fs::read_to_string(&sample).unwrap();
    std::fs::write(&sample, &text[..text.len() / 2]).unwrap();
    let repo = repo_with(&[("x", "y")]);
    let db = repo.path().join("r.sqlite");
    let out = sb(
        repo.path(),
        &db,
        &["ingest", "criterion", dir.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sample.json") && err.contains("not valid JSON"),
        "{err}"
    );
    assert!(
        !db.exists() || run_status(&db).is_empty(),
        "a bad file stored something"
    );

    std::fs::write(&sample, text.replace("\"Linear\"", "\"Spiral\"")).unwrap();
    let out = sb(
        repo.path(),
        &db,
        &["ingest", "criterion", dir.path().to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown sampling_mode \"Spiral\"") && err.contains("criterion 0.8"),
        "{err}"
    );
}

#[test]
fn bmf_round_trip_and_csv() {
    let scenario = "name = \"hello\"\nkind = \"command\"\nrun = \"seq 1000 > /dev/null\"\nrepetitions = 3\nwarmup = 0\n";
    let repo = repo_with(&[("scenarios/hello.toml", scenario)]);
    let r = repo.path().to_str().unwrap();
    let db = repo.path().join("a.sqlite");
    let out = sb(r, &db, &["run", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sb(r, &db, &["export", "--format", "bmf"]);
    let first = json(&out);
    let file = repo.path().join("bmf.json");
    std::fs::write(&file, &out.stdout).unwrap();

    let db2 = repo.path().join("b.sqlite");
    let out = sb(r, &db2, &["ingest", "bmf", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sb(r, &db2, &["export", "--format", "bmf"]);
    let second = json(&out);
    // Exact, to the last digit printed: the value and both bounds of
    // every measure (a parser that rounds once lost the last bit).
    let file_text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(file_text, String::from_utf8(out.stdout).unwrap());
    assert_eq!(first, second);
    assert!(
        first["hello"]["wall"]["lower_value"].as_f64()
            < first["hello"]["wall"]["upper_value"].as_f64()
    );

    // An unknown unit is refused with the measure named, and stores nothing.
    std::fs::write(
        &file,
        r#"{"x/y": {"wall": {"value": 1.0}, "furlongs": {"value": 2.0}}}"#,
    )
    .unwrap();
    let db3 = repo.path().join("c.sqlite");
    let out = sb(r, &db3, &["ingest", "bmf", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no unit known for measure \"furlongs\""),
        "{}",
        text(&out)
    );
    assert!(!db3.exists() || run_status(&db3).is_empty());

    // Bounds around the value, or none at all; a bad one says which.
    std::fs::write(
        &file,
        r#"{"b": {"wall": {"value": 5.0, "lower_value": 6.0, "upper_value": 7.0}}}"#,
    )
    .unwrap();
    let out = sb(r, &db3, &["ingest", "bmf", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("b wall: lower_value 6 <= value 5") && !err.contains("criterion"),
        "{err}"
    );

    let out = sb(r, &db, &["export", "--format", "csv"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "commit,machine,scenario,point,status,metric,unit,direction,repetition,value"
    );
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter()
            .any(|l| l.contains(",wall,s,lower_is_better,2,")),
        "{csv}"
    );
    // Unquoted rows have exactly the header's 10 fields.
    assert!(
        rows.iter()
            .filter(|l| !l.contains('"'))
            .all(|l| l.split(',').count() == 10),
        "{csv}"
    );
}

#[test]
fn a_criterion_scenario_runs_cargo_bench_and_stores_each_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("micro.toml");
    std::fs::write(
        &path,
        "name = \"micro\"\nkind = \"criterion\"\nbench = \"-p protocol --bench frames\"\nfilter = \"decode/4x1MiB\"\ntimeout = \"20m\"\n",
    )
    .unwrap();
    let db = dir.path().join("r.sqlite");
    let target = test_target_dir();
    let out = sb(
        env!("CARGO_MANIFEST_DIR"),
        &db,
        &[
            "run",
            path.to_str().unwrap(),
            "--target-dir",
            target.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "only the filtered benchmark: {results:?}");
    assert_eq!(results[0]["point"], "frames/decode/4x1MiB");
    let time = results[0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "time")
        .unwrap();
    assert!(time["values"].as_array().unwrap().len() >= 10, "{time}");
    assert!(time["median"].as_f64().unwrap() > 0.0);
}

/// The cells of a CSV text (RFC 4180: quoted cells, doubled quotes),
/// each with whether it was quoted.
fn csv_rows(text: &str) -> Vec<Vec<(String, bool)>> {
    let (mut rows, mut row, mut cell) = (vec![], vec![], String::new());
    let (mut quoted, mut in_quotes) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', true) => in_quotes = false,
            ('"', false) if cell.is_empty() => (in_quotes, quoted) = (true, true),
            (',', false) => row.push((std::mem::take(&mut cell), std::mem::take(&mut quoted))),
            ('\n', false) => {
                row.push((std::mem::take(&mut cell), std::mem::take(&mut quoted)));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => cell.push(c),
        }
    }
    rows
}

/// Commit subjects, scenario, point and metric names that a spreadsheet
/// would take for formulas reach both CSV outputs (the dashboard's
/// `data/commits.csv`, `export --format csv`) as quoted text behind a `'`;
/// a negative value stays a number.
#[test]
fn csv_cells_are_never_formulas_and_numbers_stay_numbers() {
    let repo = repo_with(&[("x", "y")]);
    let r = repo.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let bmf = work.path().join("bmf.json");
    std::fs::write(
        &bmf,
        r#"{"@SUM(1)/-cmd": {"=HYPERLINK(\"http://x\").wall": {"value": -3.5}}}"#,
    )
    .unwrap();
    let subjects = ["=HYPERLINK(\"http://x\")", "@SUM(1)", "-cmd"];
    let mut shas = vec![];
    for (i, subject) in subjects.iter().enumerate() {
        std::fs::write(repo.path().join("x"), format!("{i}\n")).unwrap();
        git(repo.path(), &["commit", "-q", "-am", subject]);
        shas.push(git(repo.path(), &["rev-parse", "HEAD"]));
        let out = sb(r, &db, &["ingest", "bmf", bmf.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let formula = |s: &str| s.starts_with(['=', '+', '-', '@', '\t', '\r']);

    // The dashboard writes `data/commits.csv` beside a history longer
    // than a chart is wide: older commits, stored as `record` would.
    {
        use syncbench::model::{Direction, RunStatus, Series, Unit};
        let mut store =
            syncbench::store::open(&syncbench::store::Location::Sqlite(db.clone())).unwrap();
        let records: Vec<_> = (0..1000u64)
            .map(|i| syncbench::store::RunRecord {
                machine: syncbench::machine::detect_machine(),
                commit: syncbench::git::Commit {
                    sha: format!("{i:040x}"),
                    parents: vec![],
                    author: "t".into(),
                    time_unix: 1_000_000 + i as i64,
                    subject: format!("commit {i}"),
                    dirty: false,
                    branch: None,
                },
                scenario: "@SUM(1)".into(),
                point: "-cmd".into(),
                params_json: "{}".into(),
                status: RunStatus::Ok,
                error: None,
                repetitions: 1,
                harness_version: "0".into(),
                toolchain: "t".into(),
                environment: Default::default(),
                command_line: "t".into(),
                started_unix: 0.0,
                finished_unix: 0.0,
                metrics: vec![Series {
                    name: "=HYPERLINK(\"http://x\").wall".into(),
                    unit: Unit::Seconds,
                    direction: Direction::LowerIsBetter,
                    values: vec![-3.5],
                }],
                samples: vec![],
                phases: vec![],
            })
            .collect();
        store.record_all(&records).unwrap();
    }

    // Rendered outside the repository: its branch would leave out the
    // commits stored above, which are not on it.
    let site = work.path().join("site");
    let out = std::process::Command::new(SYNCBENCH)
        .current_dir(work.path())
        .args(["report", "--db", db.to_str().unwrap(), "--out"])
        .arg(&site)
        .env_remove("SYNCBENCH_DB")
        .env_remove("SYNCBENCH_MACHINE_TAG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let commits = std::fs::read_to_string(site.join("data/commits.csv")).unwrap();
    for (subject, sha) in subjects.iter().zip(&shas) {
        let quoted = format!("\"'{}\"", subject.replace('"', "\"\""));
        assert!(
            commits.contains(&format!(",{quoted}\n")),
            "{subject}: {commits}"
        );
        let rows = csv_rows(&commits);
        let row = rows.iter().find(|row| &row[0].0 == sha).unwrap();
        assert_eq!(row[2], (format!("'{subject}"), true), "{commits}");
    }
    for row in csv_rows(&commits) {
        assert!(!row.iter().any(|c| formula(&c.0)), "{row:?}");
    }

    let out = sb(r, &db, &["export", &shas[2], "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out));
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 2, "{csv}");
    assert_eq!(rows[0][2].0, "scenario");
    let row = &rows[1];
    assert_eq!(row[0], (shas[2].clone(), false));
    assert_eq!(row[2], ("'@SUM(1)".into(), true), "{csv}");
    assert_eq!(row[3], ("'-cmd".into(), true), "{csv}");
    assert_eq!(
        row[5],
        ("'=HYPERLINK(\"http://x\").wall".into(), true),
        "{csv}"
    );
    // The value: a number as it is, not text.
    assert_eq!(row[9], ("-3.5".into(), false), "{csv}");
    assert!(csv.ends_with(",0,-3.5\n"), "{csv}");
    for row in &rows {
        assert!(!row[..9].iter().any(|c| formula(&c.0)), "{row:?}");
    }
}
