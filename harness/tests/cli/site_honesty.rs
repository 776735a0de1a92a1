//! The dashboard says what happened: its history is the branch (a commit
//! amended away keeps its page, marked, and leaves every series), failed
//! runs of the newest commit are on the index, and a commit page's charts
//! say what the sampler missed or could not see.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file under `dir`, the caches kept beside the pages left out
/// (binary, never linked).
fn pages(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().is_some_and(|n| n == ".cache") {
            continue;
        }
        if p.is_dir() {
            out.extend(pages(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `report --db DB --out SITE` run in `cwd` (which may be no repository).
fn report_in(cwd: &Path, db: &Path, site: &Path) {
    let out = Command::new(SYNCBENCH)
        .current_dir(cwd)
        .args(["report", "--db"])
        .arg(db)
        .arg("--out")
        .arg(site)
        .env_remove("SYNCBENCH_DB")
        .env_remove("SYNCBENCH_MACHINE_TAG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// What names a commit in a page: its 10-character short form (links
/// carry the full sha, which starts with it) and the 7 characters of the
/// trend's axis, where those hold a letter (digits alone could be any
/// number).
fn names(sha: &str) -> Vec<&str> {
    let mut n = vec![&sha[..10]];
    if sha[..7].bytes().any(|b| b.is_ascii_alphabetic()) {
        n.push(&sha[..7]);
    }
    n
}

/// The index without its list of commits off the branch.
fn without_off_branch(index: &str) -> String {
    match index.find("<p class=\"muted note\" id=\"off-branch\">") {
        Some(start) => {
            let end = start + index[start..].find("</p>").unwrap();
            format!("{}{}", &index[..start], &index[end..])
        }
        None => index.to_owned(),
    }
}

const SLOW: &str = "name = \"slow\"\nkind = \"command\"\nrun = \"sleep $(cat delay)\"\nrepetitions = 2\nwarmup = 0\n";

#[test]
fn a_commit_amended_away_keeps_its_marked_page_and_leaves_every_series() {
    let repo = repo_with(&[("scenarios/slow.toml", SLOW), ("delay", "0.05")]);
    let r = repo.path();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let run = || {
        let out = sb(r, &db, &["run", "slow"]);
        assert!(out.status.success(), "{}", text(&out));
    };
    // Five commits measured; the last one slow by mistake, then amended
    // to what it should have been and measured again.
    run();
    for i in 1..5 {
        if i == 4 {
            std::fs::write(r.join("delay"), "0.3").unwrap();
        }
        std::fs::write(r.join("NOTES"), format!("{i}")).unwrap();
        git(r, &["add", "-A"]);
        git(r, &["commit", "-q", "-m", &format!("commit {i}")]);
        run();
    }
    let gone = git(r, &["rev-parse", "HEAD"]);
    std::fs::write(r.join("delay"), "0.05").unwrap();
    git(
        r,
        &[
            "commit",
            "-q",
            "-a",
            "--amend",
            "-m",
            "commit 4, as it should be",
        ],
    );
    let head = git(r, &["rev-parse", "HEAD"]);
    assert_ne!(gone, head);
    run();
    let site = work.path().join("site");
    let out = sb(r, &db, &["report", "--out", site.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    // Its page stays, and says why it is nowhere else.
    let own = site.join(format!("runs/{gone}.html"));
    let page = read(&own);
    assert!(
        page.contains("not on the branch (amended or rebased away)"),
        "{page}"
    );
    let head_page = read(&site.join(format!("runs/{head}.html")));
    assert!(!head_page.contains("not on the branch"), "{head_page}");

    // Nothing else uses it: no series page, chart, data file, change
    // point or comparison names it, nor any file's name. The index names
    // it once, in its list of commits off the branch (so its page can be
    // found), and nowhere else.
    let index = read(&site.join("index.html"));
    let listed = index
        .find("id=\"off-branch\"")
        .map(|i| &index[i..])
        .unwrap_or_else(|| panic!("no list of commits off the branch: {index}"));
    assert!(
        listed.contains(&format!("href=\"runs/{gone}.html\"")),
        "{listed}"
    );
    for p in pages(&site) {
        if p == own {
            continue;
        }
        let rel = p
            .strip_prefix(&site)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut html = read(&p);
        if rel == "index.html" {
            html = without_off_branch(&html);
        }
        for name in names(&gone) {
            assert!(!rel.contains(name), "{rel} is named after {gone}");
            assert!(!html.contains(name), "{rel} names {gone} ({name})");
        }
    }
    // The branch's five commits, each once in the wall time's trend.
    assert!(index.contains("· 5 commits"), "{index}");
    let wall = pages(&site)
        .into_iter()
        .find(|p| {
            p.starts_with(site.join("series"))
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("slow-wall-")
        })
        .expect("a series page of the wall time");
    let trend = read(&wall);
    assert_eq!(trend.matches("<circle").count(), 5, "{trend}");
    assert!(trend.contains(&head[..7]), "{trend}");

    // Nor compared on request: said why, not "no such commit".
    let out = sb(
        r,
        &db,
        &[
            "report",
            "--out",
            site.to_str().unwrap(),
            "--compare",
            &format!("{}..{}", &head[..10], &gone[..10]),
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("not on HEAD's first-parent line"),
        "{}",
        text(&out)
    );

    // Outside a repository there is no branch to follow: every commit, as
    // before, and no page is marked.
    let elsewhere = tempfile::tempdir().unwrap();
    let all = work.path().join("all");
    report_in(elsewhere.path(), &db, &all);
    let page = read(&all.join(format!("runs/{gone}.html")));
    assert!(!page.contains("not on the branch"), "{page}");
    assert!(read(&all.join("index.html")).contains("· 6 commits"));
    // Nor from inside a repository none of the stored commits is on (the
    // database of another project): that is not a branch left behind.
    let other = repo_with(&[("README", "another project\n")]);
    let theirs = work.path().join("theirs");
    report_in(other.path(), &db, &theirs);
    assert!(read(&theirs.join("index.html")).contains("· 6 commits"));
}

#[test]
fn failed_runs_of_the_newest_commit_are_on_the_index() {
    let broken = "name = \"broken\"\nkind = \"command\"\nrun = \"exit $(cat code)\"\nrepetitions = 1\nwarmup = 0\n";
    let missing = "name = \"missing\"\nkind = \"command\"\nrun = \"./no-such-program-$(cat code)\"\nrepetitions = 1\nwarmup = 0\n";
    let fine = "name = \"fine\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 1\nwarmup = 0\n";
    let repo = repo_with(&[
        ("scenarios/broken.toml", broken),
        ("scenarios/missing.toml", missing),
        ("scenarios/fine.toml", fine),
        ("code", "0"),
    ]);
    let r = repo.path();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let site = work.path().join("site");
    let measure = || {
        let out = sb(r, &db, &["run", "broken", "missing", "fine"]);
        assert!(out.status.code().is_some(), "{}", text(&out));
        let out = sb(r, &db, &["report", "--out", site.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        read(&site.join("index.html"))
    };
    // The first commit: `missing` fails (exit 127), the others pass.
    let index = measure();
    let first = git(r, &["rev-parse", "HEAD"]);
    assert!(index.contains("Failed at the latest commit"), "{index}");
    assert!(index.contains("exit status 127"), "{index}");
    assert!(
        index.contains(&format!("href=\"runs/{first}.html#r")),
        "a link to the run on its commit's page: {index}"
    );
    // The next: `broken` exits 3 and `missing` still fails; both listed,
    // each linking its run.
    std::fs::write(r.join("code"), "3").unwrap();
    git(r, &["commit", "-q", "-am", "exit 3"]);
    let index = measure();
    let second = git(r, &["rev-parse", "HEAD"]);
    let failed = &index[index.find("id=\"failed\"").expect("a list of failed runs")..];
    let failed = &failed[..failed.find("</table>").unwrap()];
    assert!(
        failed.contains("broken") && failed.contains("exit status 3"),
        "{failed}"
    );
    assert!(
        failed.contains("missing") && failed.contains("exit status 127"),
        "{failed}"
    );
    assert!(!failed.contains(">fine "), "{failed}");
    assert_eq!(
        failed
            .matches(&format!("href=\"runs/{second}.html#r"))
            .count(),
        2,
        "{failed}"
    );
    // Fixed: the newest commit's runs all pass, and the list is gone
    // (older failures stay on their commits' pages).
    std::fs::write(r.join("code"), "0").unwrap();
    std::fs::write(r.join("no-such-program-0"), "#!/bin/sh\n").unwrap();
    let mode = Command::new("chmod")
        .args(["+x", "no-such-program-0"])
        .current_dir(r)
        .status()
        .unwrap();
    assert!(mode.success());
    git(r, &["add", "-A"]);
    git(r, &["commit", "-q", "-m", "fixed"]);
    let index = measure();
    assert!(!index.contains("Failed at the latest commit"), "{index}");
    let old = read(&site.join(format!("runs/{second}.html")));
    assert!(old.contains("exit status 3"), "{old}");
}

/// A results database of one commit with runs whose samples are given,
/// as the sampler would have stored them: (scenario, wall seconds,
/// peak_rss bytes, samples as (ms, CPU %, RSS bytes), phases).
type Sampled<'a> = (
    &'a str,
    f64,
    f64,
    Vec<(f64, f64, u64)>,
    Vec<(&'a str, f64, f64)>,
);

fn sampled_db(path: &Path, runs: &[Sampled]) -> String {
    use syncbench::model::records::Sample;
    use syncbench::model::records::{Commit, Machine};
    use syncbench::model::{Direction, Phase, RunStatus, Series, Unit};
    use syncbench::store::RunRecord;
    let mut store =
        syncbench::store::open(&syncbench::store::Location::Sqlite(path.to_owned())).unwrap();
    let sha = "ab".repeat(20);
    let machine = Machine {
        cpu: "Test CPU".into(),
        cores: 2,
        memory_bytes: 8 << 30,
        os: "Linux".into(),
        kernel: "6.1".into(),
        hw_counters: "unavailable".into(),
        tag: None,
    };
    let records: Vec<RunRecord> = runs
        .iter()
        .map(|(scenario, wall, peak, samples, phases)| RunRecord {
            machine: machine.clone(),
            commit: Commit {
                sha: sha.clone(),
                parents: vec![],
                author: "t".into(),
                time_unix: 1_767_225_600,
                subject: "one commit".into(),
                dirty: false,
                branch: Some("main".into()),
            },
            scenario: (*scenario).into(),
            point: "default".into(),
            params_json: "{}".into(),
            status: RunStatus::Ok,
            error: None,
            repetitions: 1,
            harness_version: "0.1.0".into(),
            toolchain: "test".into(),
            environment: Default::default(),
            command_line: "test".into(),
            started_unix: 0.0,
            finished_unix: 1.0,
            metrics: vec![
                Series {
                    name: "wall".into(),
                    unit: Unit::Seconds,
                    direction: Direction::LowerIsBetter,
                    values: vec![*wall],
                },
                Series {
                    name: "command.peak_rss".into(),
                    unit: Unit::Bytes,
                    direction: Direction::LowerIsBetter,
                    values: vec![*peak],
                },
                // The sampler's own cost: it ran.
                Series {
                    name: "harness.sampler_cpu".into(),
                    unit: Unit::Percent,
                    direction: Direction::LowerIsBetter,
                    values: vec![0.5],
                },
            ],
            samples: samples
                .iter()
                .map(|&(t_ms, cpu_pct, rss_bytes)| {
                    (
                        1,
                        Sample {
                            process: "command".into(),
                            t_ms,
                            cpu_pct,
                            rss_bytes,
                        },
                    )
                })
                .collect(),
            phases: phases
                .iter()
                .map(|&(name, start_ms, end_ms)| Phase {
                    repetition: 1,
                    name: name.into(),
                    start_ms,
                    end_ms,
                })
                .collect(),
        })
        .collect();
    store.record_all(&records).unwrap();
    sha
}

/// The section of a run of `scenario` on a commit page.
fn section<'a>(page: &'a str, scenario: &str) -> &'a str {
    let start = page
        .find(&format!("{scenario} <span class=\"muted\">default"))
        .unwrap_or_else(|| panic!("no run of {scenario}: {page}"));
    let end = page[start..]
        .find("</section>")
        .map_or(page.len(), |e| start + e);
    &page[start..end]
}

#[test]
fn a_commit_pages_charts_say_what_the_sampler_missed() {
    const MIB: u64 = 1 << 20;
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("sampled.sqlite");
    let plateau: Vec<(f64, f64, u64)> = (0..8)
        .map(|i| (i as f64 * 50.0, 0.0, (2.4 * MIB as f64) as u64))
        .collect();
    let sha = sampled_db(
        &db,
        &[
            // The allocation fell between samples: RSS plateaus at 2.4 MiB,
            // the kernel's peak is 51.2 MiB. The process slept throughout
            // (CPU 0 in every sample).
            ("plateau", 0.4, 51.2 * MIB as f64, plateau, vec![]),
            // 28 ms: one sample, which has no CPU figure.
            (
                "short",
                0.028,
                3.0 * MIB as f64,
                vec![(0.4, 0.0, 3 * MIB)],
                vec![],
            ),
            // Too short for even one.
            ("instant", 0.002, 1.0 * MIB as f64, vec![], vec![]),
            // A driver's phases: shaded, and the legend says so.
            (
                "phased",
                0.3,
                4.0 * MIB as f64,
                (0..6).map(|i| (i as f64 * 50.0, 50.0, 4 * MIB)).collect(),
                vec![("load", 0.0, 100.0), ("measure", 100.0, 250.0)],
            ),
        ],
    );
    let site = work.path().join("site");
    report_in(work.path(), &db, &site);
    let page = read(&site.join(format!("runs/{sha}.html")));

    // The exact peak drawn, and said beside the chart.
    let plateau = section(&page, "plateau");
    assert!(plateau.contains("class=\"resources\""), "{plateau}");
    assert!(
        plateau.contains("<g class=\"peak\">") && plateau.contains("peak_rss 51.2 MiB"),
        "{plateau}"
    );
    assert!(
        plateau.contains("the samples reach 2.40 MiB, its peak_rss is 51.2 MiB"),
        "{plateau}"
    );
    // Where the samples reach the peak, nothing to say beside it.
    assert!(!section(&page, "phased").contains("the samples reach"));

    // Too short to sample: said, with how long it ran, and no chart.
    for (scenario, ms) in [("short", "28 ms"), ("instant", "2 ms")] {
        let s = section(&page, scenario);
        assert!(
            s.contains(&format!("too short to sample ({ms})")),
            "{scenario}: {s}"
        );
        assert!(!s.contains("<svg"), "{scenario}: {s}");
    }

    // Phases: shaded and named in the legend only where there are some.
    let phased = section(&page, "phased");
    assert!(phased.contains("shaded: the driver's phases"), "{phased}");
    assert!(phased.contains("class=\"phase p0\""), "{phased}");
    assert!(!plateau.contains("shaded"), "{plateau}");

    // Axis labels in the precision of their step: a CPU axis of nothing
    // but zeros is 0–1 %, not 0.000000000001 %.
    for p in pages(&site) {
        let html = read(&p);
        for tick in html.split("class=\"tick\"").skip(1) {
            let label = &tick[tick.find('>').unwrap() + 1..];
            let label = &label[..label.find('<').unwrap()];
            assert!(!label.contains("00000"), "{}: tick {label:?}", p.display());
        }
    }
    assert!(plateau.contains(">1.0 %<"), "{plateau}");
}
