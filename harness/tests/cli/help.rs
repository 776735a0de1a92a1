//! Help, messages and output for people (issue 29): the `--help` of every
//! command against its golden copy in `tests/fixtures/help`, compared
//! exactly; and the messages and tables a newcomer's first day showed
//! wrong (libgit2 internals, a reversed range, `--force` never hinted,
//! `+inf%`, a 1-byte "change", unnamed A and B, empty tables).
//!
//! After a deliberate change of a command's help: `UPDATE_GOLDEN=1 cargo
//! test -p syncbench --test cli help`, then review the diff of
//! `tests/fixtures/help`.

use crate::golden::{SCENARIO, fixed_db, fixed_repo};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use syncbench::model::{Direction, Series, Unit};

fn help_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/help")
}

/// `syncbench ARGS… --help`, in an empty environment: no SYNCBENCH_DB,
/// machine tag or GITHUB_* value may show in an `[env: …]`.
fn help_of(args: &[&str]) -> String {
    let out = Command::new(SYNCBENCH)
        .args(args)
        .arg("--help")
        .env_clear()
        // Ignored unless clap wraps to the terminal; the width is fixed
        // in the Cli definition either way.
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a help lists under "Commands:" (not `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_commands_help_is_as_its_golden_copy() {
    let bless = std::env::var_os("UPDATE_GOLDEN").is_some();
    // Every command the top-level help lists, and their own subcommands.
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut checked = Vec::new();
    let mut differ = Vec::new();
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let help = help_of(&args);
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        let name = if path.is_empty() {
            "syncbench.txt".to_owned()
        } else {
            format!("{}.txt", path.join("-"))
        };
        let file = help_dir().join(&name);
        if bless {
            std::fs::create_dir_all(help_dir()).unwrap();
            std::fs::write(&file, &help).unwrap();
        } else {
            let Ok(expected) = std::fs::read_to_string(&file) else {
                differ.push(format!("{name}: no golden copy yet"));
                checked.push(name);
                continue;
            };
            if expected != help {
                let line = expected
                    .lines()
                    .zip(help.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(expected.lines().count().min(help.lines().count()));
                differ.push(format!(
                    "{name}, line {}:\n  expected: {:?}\n  actual:   {:?}",
                    line + 1,
                    expected.lines().nth(line),
                    help.lines().nth(line)
                ));
            }
        }
        checked.push(name);
    }
    assert!(
        differ.is_empty(),
        "help differs from its golden copy (UPDATE_GOLDEN=1 after a deliberate change):\n{}",
        differ.join("\n")
    );
    // A golden copy of a command that is gone is stale.
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(help_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !checked.contains(&name) {
            if bless {
                std::fs::remove_file(help_dir().join(&name)).unwrap();
            } else {
                stale.push(name);
            }
        }
    }
    assert!(stale.is_empty(), "golden help of no command: {stale:?}");
    assert!(checked.len() > 20, "{checked:?}");
}

#[test]
fn one_name_per_concept_and_the_old_spellings_still_work() {
    // The machine's tag is --machine-tag everywhere; --machine is a
    // hidden alias where it was the name.
    for cmd in ["run", "history", "worker", "check", "enqueue"] {
        let help = help_of(&[cmd]);
        assert!(help.contains("--machine-tag <TAG>"), "{cmd}: {help}");
        assert!(!help.contains("--machine <"), "{cmd}: {help}");
    }
    let (repo, shas) = fixed_repo(SCENARIO);
    let db = repo.path().join("r.sqlite");
    fixed_db(repo.path(), &shas, &db);
    let out = sb(repo.path(), &db, &["check", "--machine", "nosuchtag"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--machine-tag \"nosuchtag\" is no machine's tag"),
        "{}",
        text(&out)
    );
    // `confirm --budget`, as compare and check --run spell it.
    let out = sb(
        repo.path(),
        &db,
        &["confirm", "--budget", "nonsense", "--since", "HEAD"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'--confirm-budget <DURATION>'"), "{err}");
}

#[test]
fn history_says_what_is_wrong_with_its_commits_and_what_to_do() {
    let (repo, _) = fixed_repo(SCENARIO);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let cache = work.path().join("cache");
    let cache = cache.to_str().unwrap();

    let out = sb(repo.path(), &db, &["history", "v1.0..v2.0"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("names no scenario (`syncbench list` shows them) and no commit: no commit, branch or tag \"v"),
        "{err}"
    );
    assert!(!err.contains("class="), "libgit2's internals: {err}");

    let out = sb(repo.path(), &db, &["history", "HEAD..HEAD~3"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HEAD..HEAD~3 is reversed") && err.contains("give HEAD~3..HEAD"),
        "{err}"
    );

    let history = || {
        sb(
            repo.path(),
            &db,
            &["history", "-n", "2", "svc", "--cache-dir", cache],
        )
    };
    let out = history();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        text(&out)
    );
    // Everything measured already: why nothing was, and what measures again.
    let out = history();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 point(s) recorded"), "{err}");
    assert!(
        err.contains("2 point(s) at 2 commit(s) already measured on this machine were skipped: --force measures them again"),
        "{err}"
    );
}

#[test]
fn compare_names_a_and_b_and_show_prints_no_empty_table() {
    let (repo, shas) = fixed_repo(SCENARIO);
    let db = repo.path().join("r.sqlite");
    fixed_db(repo.path(), &shas, &db);
    let out = sb(repo.path(), &db, &["compare", "HEAD~11", "HEAD"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().next(),
        Some(
            format!(
                "B = HEAD ({}) against A = HEAD~11 ({}): changes are B's, relative to A",
                &shas[11][..12],
                &shas[0][..12]
            )
            .as_str()
        ),
        "{stdout}"
    );

    // Commit 11 has a failed run, with no metrics: its error, no table.
    let out = sb(repo.path(), &db, &["show", &shas[11]]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("== svc n=1000"))
        .take(4)
        .collect();
    assert_eq!(failed.len(), 4, "{stdout}");
    assert!(failed[0].contains("[failed]"), "{stdout}");
    assert_eq!(failed[2], "(no metrics recorded)", "{stdout}");
    assert!(failed[3].starts_with("== "), "{stdout}");
}

fn series(name: &str, unit: Unit, values: &[f64]) -> Series {
    Series {
        name: name.into(),
        unit,
        direction: Direction::LowerIsBetter,
        values: values.to_vec(),
    }
}

/// The "vs baseline" cell of a table of one metric.
fn change_cell(name: &str, unit: Unit, before: &[f64], after: &[f64], min_effect: f64) -> String {
    let rows = syncbench::history::rows(
        &[series(name, unit, after)],
        &[series(name, unit, before)],
        &|_| min_effect,
    );
    let table = syncbench::text::table(&rows);
    let header = table.lines().next().unwrap();
    let at = header.find("vs baseline").unwrap();
    let line = table.lines().nth(2).unwrap();
    // Columns are aligned: the cell starts where its header does.
    line.chars().skip(header[..at].chars().count()).collect()
}

#[test]
fn a_table_gives_changes_honestly() {
    // From 0: no percentage of nothing.
    let cell = change_cell(
        "command.peak_rss",
        Unit::Bytes,
        &[0.0; 5],
        &[1_048_576.0; 5],
        0.05,
    );
    assert_eq!(cell, "+1.00 MiB from 0 p<0.001  REGRESSION");
    // One byte more of a small count is 6.2%: significant, and too small
    // to count. The cell says both how small and why it is not a change.
    let cell = change_cell(
        "command.io.wchar",
        Unit::Bytes,
        &[16.0; 5],
        &[17.0; 5],
        0.05,
    );
    assert_eq!(cell, "+6.2% (+1 B) p<0.001  (below its 64.0 KiB floor)");
    let cell = change_cell("command.stdout", Unit::Bytes, &[16.0; 5], &[17.0; 5], 0.10);
    assert_eq!(cell, "+6.2% (+1 B) p<0.001  (below the threshold)");
    // Noise stays noise.
    let cell = change_cell(
        "wall",
        Unit::Seconds,
        &[1.0, 1.1, 0.9, 1.05, 0.95],
        &[1.02, 1.08, 0.92, 1.0, 0.97],
        0.05,
    );
    assert!(cell.ends_with("(within noise)"), "{cell}");
}

#[test]
fn migrate_on_a_missing_postgres_database_says_createdb() {
    let Some(pg) = syncbench_test_support::pgtest::start_or_skip() else {
        return;
    };
    let repo = repo_with(&[("README", "x")]);
    let url = pg.url_of("no_such_db");
    let out = sb(repo.path(), &url, &["migrate"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        err.contains(&format!(
            "`createdb -h 127.0.0.1 -p {} -U {} no_such_db`",
            pg.port,
            syncbench_test_support::pgtest::USER
        )),
        "{err}"
    );
    assert!(
        !err.contains(syncbench_test_support::pgtest::PASSWORD),
        "{err}"
    );
}
