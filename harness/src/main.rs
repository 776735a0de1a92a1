use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use syncbench::env::{self, Machine};
use syncbench::metric::Unit;
use syncbench::runner::{Runner, RunnerOptions};
use syncbench::scenario::{self, Scenario};
use syncbench::store::{RunRecord, Store};
use syncbench::{analysis, history, ingest, report, scenario::parse_duration, stats};

/// Continuous benchmarking for the reference sync system and any command.
///
/// Runs scenarios (scenarios/*.toml) against the working tree, measures
/// wall time, CPU and memory of every process, stores the raw figures in
/// SQLite (.syncbench/results.sqlite) and compares them with the baseline
/// branch.
///
/// Exit status: 0 all runs ok and no regression; 1 a run failed or an
/// error; 2 bad usage; 130 interrupted (Ctrl-C).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Results database [default: .syncbench/results.sqlite at the repository root].
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    /// The repository (and tree) to measure [default: the one around the current directory].
    #[arg(long, global = true)]
    repo: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure the current tree: each scenario point, each repetition.
    Run {
        /// Scenario names (from scenarios/) or TOML paths; none = the default suite.
        scenarios: Vec<String>,
        /// Compare with the last results on this branch or commit.
        #[arg(long, default_value = "main")]
        baseline: String,
        #[command(flatten)]
        measure: MeasureArgs,
    },
    /// Measure past commits: each in a reusable checkout, skipping those
    /// already measured on this machine (unless --force).
    ///
    /// Arguments are scenario names/paths and commits: `A..B` (first-parent
    /// commits after A up to B) or single revisions; or use -n N.
    History {
        /// Scenarios and commits, in any order.
        args: Vec<String>,
        /// The last N first-parent commits of HEAD.
        #[arg(short = 'n')]
        last: Option<usize>,
        /// Measure again commits that have results.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        measure: MeasureArgs,
    },
    /// Change points over the stored history, newest first.
    Regressions {
        /// Smallest relative change of level to report (0.05 = 5%), where the
        /// scenario file sets no threshold for the metric.
        #[arg(long, default_value_t = 0.05)]
        min_change: f64,
        #[arg(long)]
        json: bool,
    },
    /// Render the results as a static HTML site: an index of every series,
    /// a trend page per series with its change points, a page per commit
    /// with the resource curves of its runs, and comparisons. Works from a
    /// local folder or any file server, offline. Prints the index's path.
    Report {
        /// Output folder (relative to the repository).
        #[arg(long, default_value = DEFAULT_SITE)]
        out: PathBuf,
        /// Search change points in the last N commits of each series.
        #[arg(long, default_value_t = 200)]
        window: usize,
        /// Smallest relative change of level to mark, where the scenario
        /// file sets no threshold for the metric.
        #[arg(long, default_value_t = 0.05)]
        min_change: f64,
        /// Also render compare/A..B.html for these commits (repeatable).
        #[arg(long, value_name = "A..B")]
        compare: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every series measured at both commits, B against A. With --run,
    /// measures both now instead, alternately A B A B … in this job (see
    /// the A/B options).
    Compare {
        a: String,
        b: String,
        /// With --run: the scenarios to measure [default: the default suite].
        scenarios: Vec<String>,
        #[command(flatten)]
        ab: AbArgs,
        #[arg(long)]
        json: bool,
    },
    /// CI gate: HEAD's results against the newest results on the baseline's
    /// first-parent history; exit 1 on a regression.
    Check {
        #[arg(long, default_value = "main")]
        baseline: String,
        /// The commit to check [default: HEAD].
        #[arg(long)]
        commit: Option<String>,
        /// Write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).
        #[arg(long)]
        summary: Option<PathBuf>,
        /// With --run: the scenarios to measure [default: the default suite].
        scenarios: Vec<String>,
        #[command(flatten)]
        ab: AbArgs,
        #[arg(long)]
        json: bool,
    },
    /// Find the commit that moved METRIC between GOOD and BAD, measuring
    /// only the commits the binary search needs.
    Bisect {
        /// GOOD..BAD
        range: String,
        scenario: String,
        metric: String,
        /// The scenario point (needed when it has several).
        #[arg(long)]
        point: Option<String>,
        #[command(flatten)]
        measure: MeasureArgs,
    },
    /// Store results other tools produced, for the current commit.
    Ingest {
        #[command(subcommand)]
        from: IngestFrom,
    },
    /// List scenarios and their points.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show stored runs of a commit (default: HEAD).
    Show {
        commit: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Export all results of a commit (default: HEAD).
    Export {
        commit: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum IngestFrom {
    /// criterion's output (the raw samples of every benchmark).
    Criterion {
        /// [default: target/criterion in the repository]
        dir: Option<PathBuf>,
    },
    /// A Bencher Metric Format JSON file.
    Bmf { file: PathBuf },
}

/// Interleaved A/B measurement, for `compare --run` and `check --run`.
#[derive(clap::Args, Clone)]
struct AbArgs {
    /// Build both commits (a worktree each) and measure them now,
    /// alternately A B A B …, deciding from the per-pair ratios; pairs are
    /// added while the answer is uncertain. Exit 1 on a regression.
    #[arg(long)]
    run: bool,
    /// The metric that decides (e.g. wall, command.cpu_user, upload.wall;
    /// command.instructions runs each repetition under valgrind).
    #[arg(long, default_value = "wall", requires = "run")]
    metric: String,
    /// Smallest relative change that matters: "unchanged" once the
    /// interval is inside ±threshold, "changed" once it is beyond half.
    #[arg(long, default_value_t = 0.02, requires = "run")]
    threshold: f64,
    #[arg(long, default_value_t = 5, requires = "run")]
    min_pairs: usize,
    #[arg(long, default_value_t = 40, requires = "run")]
    max_pairs: usize,
    /// Stop adding pairs after this long per point (e.g. 5m, 90s).
    #[arg(long, default_value = "10m", value_parser = parse_duration, requires = "run")]
    budget: Duration,
    /// Instead of interleaving: N repetitions of A, then N of B, judged
    /// by Mann-Whitney (the usual way, for comparison).
    #[arg(long, requires = "run")]
    unpaired: Option<usize>,
    /// Only points whose key contains this.
    #[arg(long, requires = "run")]
    filter: Option<String>,
    /// Cargo profile the reference system is built with.
    #[arg(long, default_value = "release", requires = "run")]
    cargo_profile: String,
    /// Cache for the two worktrees and their builds.
    #[arg(long, requires = "run")]
    cache_dir: Option<PathBuf>,
    /// Print each pair as it is measured.
    #[arg(long, short, requires = "run")]
    verbose: bool,
}

/// How to measure: shared by run, history and bisect.
#[derive(clap::Args, Clone)]
struct MeasureArgs {
    /// Override every scenario's repetitions.
    #[arg(long)]
    repetitions: Option<u32>,
    /// Only points whose key (e.g. docs=1000,size=10KiB) contains this.
    #[arg(long)]
    filter: Option<String>,
    /// How often to sample CPU and RSS (e.g. 50ms).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    sample_interval: Duration,
    /// Where cargo builds the reference system [run: target/ in the
    /// repository; history and bisect: the cache dir].
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Cargo profile the reference system is built with.
    #[arg(long, default_value = "release")]
    cargo_profile: String,
    /// Cache for the history checkout and its builds
    /// [default: ~/.cache/syncbench/REPO-HASH].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print the results as JSON on stdout instead of tables.
    #[arg(long)]
    json: bool,
    /// Print build commands and process ids on stderr.
    #[arg(long, short)]
    verbose: bool,
    /// Run command scenarios' processes on this CPU only (less noise from
    /// migrating between cores).
    #[arg(long)]
    pin_cpu: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Every run with its raw values, plus a `bmf` section.
    Json,
    /// Bencher Metric Format only.
    Bmf,
    /// One row per repetition and metric, for spreadsheets.
    Csv,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("syncbench: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir()?;
    let root = env::repo_root(cli.repo.as_deref().unwrap_or(&cwd))?;
    let db = cli
        .db
        .clone()
        .unwrap_or_else(|| root.join(".syncbench/results.sqlite"));
    let scenarios_dir = root.join("scenarios");
    match cli.command {
        Cmd::List { json } => {
            let all = scenario::load_dir(&scenarios_dir)?;
            if json {
                let v: Vec<_> = all
                    .iter()
                    .map(|s| serde_json::json!({"name": s.name, "default": s.default, "points": s.points.iter().map(|p| p.key()).collect::<Vec<_>>()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for s in all {
                    let default = if s.default {
                        ""
                    } else {
                        "  (not in the default suite)"
                    };
                    println!(
                        "{}  {} repetitions + {} warm-up{default}\n  {}",
                        s.name, s.repetitions, s.warmup, s.description
                    );
                    for p in &s.points {
                        println!(
                            "    {}",
                            if p.0.is_empty() {
                                "(no parameters)".into()
                            } else {
                                p.key()
                            }
                        );
                    }
                }
            }
            Ok(0)
        }
        Cmd::Show { commit, json } => {
            let store = Store::open(&db)?;
            let sha = match commit {
                Some(c) => c,
                None => env::head_commit(&root)?.sha,
            };
            let runs = store.runs(&sha)?;
            if runs.is_empty() {
                bail!("no results for commit {sha} in {}", db.display());
            }
            if json {
                let v: Vec<_> = runs
                    .iter()
                    .map(|r| Ok(serde_json::json!({"run": r, "metrics": store.series(r.id)?})))
                    .collect::<anyhow::Result<_>>()?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            for r in runs {
                let dirty = if r.dirty { " (dirty tree)" } else { "" };
                println!(
                    "== {} {} @ {}{dirty} [{}]  {}",
                    r.scenario,
                    r.point,
                    &r.commit[..12.min(r.commit.len())],
                    r.status,
                    r.machine
                );
                if let Some(e) = &r.error {
                    println!("{e}");
                }
                print!(
                    "{}",
                    report::table(&report::rows(
                        &store.series(r.id)?,
                        &[],
                        &Default::default()
                    ))
                );
            }
            Ok(0)
        }
        Cmd::Export { commit, format } => {
            let store = Store::open(&db)?;
            let sha = match commit {
                Some(c) => c,
                None => env::head_commit(&root)?.sha,
            };
            let runs = store.runs(&sha)?;
            let mut named = vec![];
            let mut full = vec![];
            for r in &runs {
                let series = store.series(r.id)?;
                let bench = if r.point.is_empty() {
                    r.scenario.clone()
                } else {
                    format!("{}/{}", r.scenario, r.point)
                };
                full.push(serde_json::json!({"run": r, "metrics": series}));
                if r.status == "ok" {
                    named.push((bench, series));
                }
            }
            let out = match format {
                Format::Bmf => report::bmf(&named),
                Format::Json => {
                    serde_json::json!({"commit": sha, "runs": full, "bmf": report::bmf(&named)})
                }
                Format::Csv => {
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "commit,machine,scenario,point,status,metric,unit,direction,repetition,value"
                    )?;
                    for r in &runs {
                        for s in store.series(r.id)? {
                            for (i, v) in s.values.iter().enumerate() {
                                let cells = [
                                    r.commit.as_str(),
                                    &r.machine,
                                    &r.scenario,
                                    &r.point,
                                    &r.status,
                                    &s.name,
                                    s.unit.as_str(),
                                    s.direction.as_str(),
                                ];
                                let cells: Vec<String> =
                                    cells.iter().map(|c| csv_cell(c)).collect();
                                writeln!(out, "{},{i},{v}", cells.join(","))?;
                            }
                        }
                    }
                    return Ok(0);
                }
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        Cmd::Ingest { from } => {
            let (source, found) = match from {
                IngestFrom::Criterion { dir } => {
                    let dir = dir.unwrap_or_else(|| root.join("target/criterion"));
                    let found = ingest::criterion(&dir)?;
                    (dir, found)
                }
                IngestFrom::Bmf { file } => {
                    let found = ingest::bmf(&file)?;
                    (file, found)
                }
            };
            let mut store = Store::open(&db)?;
            let machine = Machine::detect();
            let commit = env::head_commit(&root)?;
            let now = now();
            let records: Vec<RunRecord> = found
                .into_iter()
                .map(|i| RunRecord {
                    machine: machine.clone(),
                    commit: commit.clone(),
                    params_json: serde_json::json!({ "source": source.display().to_string() })
                        .to_string(),
                    repetitions: i.metrics.first().map_or(0, |m| m.values.len() as u32),
                    scenario: i.scenario,
                    point: i.point,
                    status: "ok".into(),
                    error: None,
                    harness_version: env!("CARGO_PKG_VERSION").to_owned(),
                    toolchain: env::toolchain(),
                    command_line: std::env::args().collect::<Vec<_>>().join(" "),
                    started_unix: now,
                    finished_unix: now,
                    metrics: i.metrics,
                    samples: vec![],
                    phases: vec![],
                })
                .collect();
            store.record_all(&records)?;
            eprintln!(
                "syncbench: stored {} benchmark(s) from {} for {}{}",
                records.len(),
                source.display(),
                &commit.sha[..12],
                if commit.dirty { " (dirty tree)" } else { "" }
            );
            Ok(0)
        }
        Cmd::Run {
            scenarios,
            baseline,
            measure,
        } => {
            let chosen = choose(&scenarios_dir, &scenarios)?;
            let mut session = Session::open(&db, &measure)?;
            let commit = env::head_commit(&root)?;
            let baseline_commits = env::first_parent_history(&root, &baseline, 1000)?;
            let runner = session.runner(
                root.clone(),
                measure
                    .target_dir
                    .clone()
                    .unwrap_or_else(|| root.join("target")),
            );
            let t = session.measure(
                &runner,
                &commit,
                &chosen,
                &baseline,
                &baseline_commits,
                &|_, _| false,
            )?;
            let json = measure.json;
            let code = session.finish(t)?;
            // The dashboard of everything recorded so far, for the browser.
            let index = render_site(
                &root,
                &db,
                &scenarios_dir,
                DEFAULT_SITE,
                200,
                0.05,
                Vec::new(),
            )?
            .index;
            if json {
                eprintln!("syncbench: dashboard at {}", index.display());
            } else {
                println!("dashboard: {}", index.display());
            }
            Ok(code)
        }
        Cmd::History {
            args,
            last,
            force,
            measure,
        } => {
            let (chosen, revs) = split_args(&scenarios_dir, &args)?;
            let commits = history::resolve(&root, &revs, last)?;
            if commits.is_empty() {
                bail!("no commits to measure: give A..B, revisions or -n N");
            }
            let mut session = Session::open(&db, &measure)?;
            let (checkout, runner) = session.checkout(&root)?;
            let bar = session.bars.add(ProgressBar::new(commits.len() as u64));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {pos}/{len} commits  {msg}  (eta {eta})",
                )
                .expect("valid template"),
            );
            bar.set_prefix("history");
            let mut total = Tally::default();
            for commit in &commits {
                bar.set_message(format!("{} {}", &commit.sha[..10], commit.subject));
                let mut done = std::collections::HashSet::new();
                for s in &chosen {
                    for p in &s.points {
                        // Criterion points are only known once they ran.
                        let key = p.key();
                        let point = (!matches!(s.kind, scenario::Kind::Criterion { .. }))
                            .then_some(key.as_str());
                        let measured = session.store.has_final_run(
                            &session.machine,
                            &s.name,
                            point,
                            &commit.sha,
                        )?;
                        if !force && measured {
                            done.insert((s.name.clone(), p.key()));
                        }
                    }
                }
                let todo: Vec<Scenario> = chosen
                    .iter()
                    .filter(|s| {
                        s.points
                            .iter()
                            .any(|p| !done.contains(&(s.name.clone(), p.key())))
                    })
                    .cloned()
                    .collect();
                if !todo.is_empty() {
                    checkout.switch(&commit.sha)?;
                    let skip = |s: &Scenario, p: &scenario::Point| {
                        done.contains(&(s.name.clone(), p.key()))
                    };
                    let prev: Vec<String> = commit.parents.iter().take(1).cloned().collect();
                    let t = session.measure(&runner, commit, &todo, "parent", &prev, &skip)?;
                    total.add(t);
                }
                bar.inc(1);
                if session.interrupted() {
                    break;
                }
            }
            bar.finish_and_clear();
            session.finish(total)
        }
        Cmd::Report {
            out,
            window,
            min_change,
            compare,
            json,
        } => {
            let mut pairs = Vec::new();
            for c in &compare {
                let (a, b) = c
                    .split_once("..")
                    .with_context(|| format!("--compare {c:?}: expected BASE..NEW"))?;
                // A ref (main, HEAD~1) resolves in the repository; a sha
                // prefix not in it is looked up in the results.
                let resolve = |r: &str| -> anyhow::Result<String> {
                    Ok(env::first_parent_history(&root, r, 1)
                        .ok()
                        .and_then(|h| h.into_iter().next())
                        .unwrap_or_else(|| r.to_owned()))
                };
                pairs.push((resolve(a)?, resolve(b)?));
            }
            let t0 = std::time::Instant::now();
            let r = render_site(&root, &db, &scenarios_dir, &out, window, min_change, pairs)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                eprintln!(
                    "syncbench: {} pages ({}), {} written, in {:.2} s",
                    r.pages,
                    Unit::Bytes.human(r.bytes as f64),
                    r.written,
                    t0.elapsed().as_secs_f64()
                );
                for p in &r.compare_pages {
                    println!("{}", p.display());
                }
                println!("{}", r.index.display());
            }
            Ok(0)
        }
        Cmd::Regressions { min_change, json } => {
            let store = Store::open(&db)?;
            let scenarios = scenario::load_dir(&scenarios_dir).unwrap_or_default();
            let min_effect = min_effect_of(&scenarios, min_change);
            let changes = analysis::regressions(&store, &min_effect)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&changes)?);
            } else if changes.is_empty() {
                println!("no change points in {}", db.display());
            } else {
                for c in &changes {
                    let unit = Unit::parse(c.unit).unwrap_or(Unit::Count);
                    println!(
                        "{} {:<11} {:+6.1}%  {} {} {}: {} -> {}  (confidence {:.0}%)",
                        &c.commit[..12],
                        c.direction,
                        c.change_pct,
                        c.scenario,
                        c.point,
                        c.metric,
                        unit.human(c.before),
                        unit.human(c.after),
                        c.confidence * 100.0
                    );
                }
            }
            Ok(0)
        }
        Cmd::Compare {
            a,
            b,
            scenarios,
            ab,
            json,
        } if ab.run => {
            let results = ab_run(&root, &db, &scenarios_dir, &a, &b, &scenarios, &ab, json)?;
            Ok(ab_status(&results))
        }
        Cmd::Compare {
            a,
            b,
            scenarios,
            json,
            ..
        } => {
            if !scenarios.is_empty() {
                bail!("scenarios are chosen only with --run (stored results cover them all)");
            }
            let store = Store::open(&db)?;
            let (a, b) = (full_sha(&root, &a)?, full_sha(&root, &b)?);
            let compared =
                analysis::compare(&store, &a, &b, &|s| thresholds_of(&scenarios_dir, s))?;
            if compared.is_empty() {
                bail!(
                    "no series measured at both {} and {}: measure them with `syncbench history`",
                    &a[..12],
                    &b[..12]
                );
            }
            print_compared(&compared, json)?;
            Ok(0)
        }
        Cmd::Check {
            baseline,
            commit,
            scenarios,
            ab,
            json,
            ..
        } if ab.run => {
            let new = commit.as_deref().unwrap_or("HEAD");
            let results = ab_run(
                &root,
                &db,
                &scenarios_dir,
                &baseline,
                new,
                &scenarios,
                &ab,
                json,
            )?;
            Ok(ab_status(&results))
        }
        Cmd::Check {
            baseline,
            commit,
            summary,
            scenarios,
            json,
            ..
        } => {
            if !scenarios.is_empty() {
                bail!("scenarios are chosen only with --run (check covers every stored result)");
            }
            let store = Store::open(&db)?;
            let new = full_sha(&root, commit.as_deref().unwrap_or("HEAD"))?;
            // The newest commit on the baseline's first-parent line with results.
            let measured: std::collections::HashSet<String> =
                store.ok_runs()?.into_iter().map(|r| r.sha).collect();
            let base = env::first_parent_history(&root, &baseline, 1000)?
                .into_iter()
                .find(|sha| *sha != new && measured.contains(sha));
            let Some(base) = base else {
                let msg =
                    format!("no results on {baseline}'s history to compare with; nothing to check");
                if let Some(path) = &summary {
                    std::fs::write(path, format!("## syncbench\n\n{msg}\n"))?;
                }
                eprintln!("syncbench: {msg}");
                return Ok(0);
            };
            let compared =
                analysis::compare(&store, &base, &new, &|s| thresholds_of(&scenarios_dir, s))?;
            if let Some(path) = &summary {
                std::fs::write(path, analysis::markdown(&base, &new, &compared))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            print_compared(&compared, json)?;
            let regressions = compared
                .iter()
                .flat_map(|c| &c.rows)
                .filter(|r| r.verdict == "regression")
                .count();
            eprintln!(
                "syncbench: {regressions} regression(s) against {baseline} @ {}",
                &base[..12]
            );
            Ok(u8::from(regressions > 0))
        }
        Cmd::Bisect {
            range,
            scenario,
            metric,
            point,
            measure,
        } => {
            let s = scenario::find(&scenarios_dir, &scenario)?;
            let point =
                match (&point, s.points.as_slice()) {
                    (Some(k), _) => s.points.iter().find(|p| p.key() == *k).with_context(|| {
                        format!("{} has no point {k:?} (`syncbench list`)", s.name)
                    })?,
                    (None, [only]) => only,
                    (None, _) => bail!("{} has several points: choose one with --point", s.name),
                }
                .clone();
            let one = Scenario {
                points: vec![point.clone()],
                ..s.clone()
            };
            let (good, _) = range
                .split_once("..")
                .context("give the range as GOOD..BAD")?;
            let mut commits = history::resolve(&root, &[good.to_owned()], None)?;
            commits.extend(history::resolve(&root, std::slice::from_ref(&range), None)?);
            if commits.len() < 2 {
                bail!("{range} holds no commit after GOOD");
            }
            let mut session = Session::open(&db, &measure)?;
            let (checkout, runner) = session.checkout(&root)?;
            let values = |session: &mut Session,
                          c: &env::Commit|
             -> anyhow::Result<Option<Vec<f64>>> {
                if !session.store.has_final_run(
                    &session.machine,
                    &one.name,
                    Some(&point.key()),
                    &c.sha,
                )? {
                    checkout.switch(&c.sha)?;
                    session.measure(&runner, c, std::slice::from_ref(&one), "", &[], &|_, _| {
                        false
                    })?;
                }
                let run = session.store.ok_runs()?.into_iter().rfind(|r| {
                    r.sha == c.sha
                        && r.scenario == one.name
                        && r.point == point.key()
                        && r.machine == session.machine.fingerprint()
                });
                Ok(match run {
                    Some(r) => session
                        .store
                        .series(r.id)?
                        .into_iter()
                        .find(|x| x.name == metric)
                        .map(|x| x.values),
                    None => None,
                })
            };
            let threshold = report::threshold(&one.thresholds, &metric);
            let (lo_c, hi_c) = (commits[0].clone(), commits[commits.len() - 1].clone());
            let good_v = values(&mut session, &lo_c)?.with_context(|| {
                format!(
                    "GOOD {} has no {metric} (failed, or no such metric)",
                    &lo_c.sha[..12]
                )
            })?;
            let bad_v = values(&mut session, &hi_c)?
                .with_context(|| format!("BAD {} has no {metric}", &hi_c.sha[..12]))?;
            let gap = stats::compare(&good_v, &bad_v, threshold);
            if !gap.changed {
                println!(
                    "{metric} does not change between {} and {} ({:+.1}%, p={:.3}): nothing to bisect",
                    &lo_c.sha[..12],
                    &hi_c.sha[..12],
                    gap.change * 100.0,
                    gap.p_value
                );
                return Ok(1);
            }
            // Invariant: commits[lo] looks like GOOD, commits[hi] like BAD.
            let (mut lo, mut hi) = (0, commits.len() - 1);
            while hi - lo > 1 && !session.interrupted() {
                let mid = (lo + hi) / 2;
                match values(&mut session, &commits[mid])? {
                    // Closer to BAD than GOOD, in the direction of the change.
                    Some(v) => {
                        let from_good = stats::compare(&good_v, &v, threshold);
                        let from_bad = stats::compare(&bad_v, &v, threshold);
                        let like_bad = from_good.changed
                            && (from_good.change.signum() == gap.change.signum())
                            && !from_bad.changed
                            || (stats::median(&v) - stats::median(&bad_v)).abs()
                                < (stats::median(&v) - stats::median(&good_v)).abs();
                        if like_bad { hi = mid } else { lo = mid }
                    }
                    // A commit that does not build or run: try its neighbour.
                    None => {
                        commits.remove(mid);
                        hi -= 1;
                    }
                }
            }
            if session.interrupted() {
                return Ok(130);
            }
            let culprit = &commits[hi];
            let before = values(&mut session, &commits[lo])?.unwrap_or_default();
            let after = values(&mut session, culprit)?.unwrap_or_default();
            let c = stats::compare(&before, &after, threshold);
            println!(
                "culprit: {} {}\n{metric}: {:.6} -> {:.6} (median, {:+.1}%, Mann-Whitney p={:.4}) against its parent {}",
                culprit.sha,
                culprit.subject,
                stats::median(&before),
                stats::median(&after),
                c.change * 100.0,
                c.p_value,
                &commits[lo].sha[..12]
            );
            Ok(0)
        }
    }
}

/// The scenarios a `run` measures.
fn choose(dir: &std::path::Path, names: &[String]) -> anyhow::Result<Vec<Scenario>> {
    Ok(if names.is_empty() {
        scenario::load_dir(dir)?
            .into_iter()
            .filter(|s| s.default)
            .collect()
    } else {
        names
            .iter()
            .map(|s| scenario::find(dir, s))
            .collect::<Result<_, _>>()?
    })
}

/// `history` arguments: scenario names or files, and revisions.
fn split_args(
    dir: &std::path::Path,
    args: &[String],
) -> anyhow::Result<(Vec<Scenario>, Vec<String>)> {
    let (mut scenarios, mut revs) = (vec![], vec![]);
    for a in args {
        match scenario::find(dir, a) {
            Ok(s) => scenarios.push(s),
            Err(scenario::ScenarioError::NotFound(_)) => revs.push(a.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    if scenarios.is_empty() {
        scenarios = choose(dir, &[])?;
    }
    Ok((scenarios, revs))
}

fn full_sha(root: &std::path::Path, rev: &str) -> anyhow::Result<String> {
    let commits = history::resolve(root, &[rev.to_owned()], None)?;
    Ok(commits.into_iter().next().context("no such commit")?.sha)
}

/// One point measured A/B.
#[derive(serde::Serialize)]
struct AbResult {
    scenario: String,
    point: String,
    metric: String,
    /// `interleaved` or `unpaired`.
    mode: &'static str,
    /// regression, improvement, unchanged, inconclusive, or failed.
    verdict: String,
    estimate: Option<syncbench::abtest::Estimate>,
    pairs: usize,
    stop: Option<syncbench::abtest::Stop>,
    seconds: f64,
    a: Vec<f64>,
    b: Vec<f64>,
    error: Option<String>,
}

/// Exit status of an A/B run: 1 on a regression or a failure.
fn ab_status(results: &[AbResult]) -> u8 {
    let bad = results
        .iter()
        .any(|r| r.verdict == "regression" || r.verdict == "failed");
    u8::from(bad)
}

/// `compare --run A B` / `check --run`: builds both commits in their own
/// worktrees (and target dirs: two builds of the same binaries must not
/// overwrite each other), then measures each point A B A B ….
#[allow(clippy::too_many_arguments)]
fn ab_run(
    root: &std::path::Path,
    db: &std::path::Path,
    scenarios_dir: &std::path::Path,
    a_rev: &str,
    b_rev: &str,
    names: &[String],
    ab: &AbArgs,
    json: bool,
) -> anyhow::Result<Vec<AbResult>> {
    use syncbench::abtest::{self, Settings, Side, Stop};
    let (a_sha, b_sha) = (full_sha(root, a_rev)?, full_sha(root, b_rev)?);
    let chosen = choose(scenarios_dir, names)?;
    let measure = MeasureArgs {
        repetitions: None,
        filter: ab.filter.clone(),
        sample_interval: Duration::from_millis(50),
        target_dir: None,
        cargo_profile: ab.cargo_profile.clone(),
        cache_dir: ab.cache_dir.clone(),
        json,
        verbose: false,
        pin_cpu: None,
    };
    let session = Session::open(db, &measure)?;
    let cache = ab
        .cache_dir
        .clone()
        .unwrap_or_else(|| history::default_cache(root));
    let side = |name: &str, sha: &str| -> anyhow::Result<(history::Checkout, Runner)> {
        let checkout = history::Checkout::open_named(
            root,
            &cache.join(format!("ab-{name}")),
            &format!("syncbench-ab-{name}"),
        )?;
        checkout.switch(sha)?;
        let runner = session.runner(checkout.dir.clone(), cache.join(format!("target-{name}")));
        Ok((checkout, runner))
    };
    let (_ca, ra) = side("a", &a_sha)?;
    let (_cb, rb) = side("b", &b_sha)?;
    let settings = Settings {
        min_pairs: ab.min_pairs,
        max_pairs: ab.max_pairs,
        budget: ab.budget,
        threshold: ab.threshold,
        // 5% false alarms over all the looks one point may take.
        confidence: 1.0 - 0.05 / ab.max_pairs.max(1) as f64,
    };
    let mut out = Vec::new();
    for s in &chosen {
        if matches!(s.kind, scenario::Kind::Criterion { .. }) {
            eprintln!(
                "syncbench: {}: criterion scenarios are not run A/B; skipped",
                s.name
            );
            continue;
        }
        let failed = |point: &str, error: String| AbResult {
            scenario: s.name.clone(),
            point: point.to_owned(),
            metric: ab.metric.clone(),
            mode: if ab.unpaired.is_some() {
                "unpaired"
            } else {
                "interleaved"
            },
            verdict: "failed".into(),
            estimate: None,
            pairs: 0,
            stop: None,
            seconds: 0.0,
            a: Vec::new(),
            b: Vec::new(),
            error: Some(error),
        };
        let mut built = Ok(());
        for (label, sha, runner) in [("A", &a_sha, &ra), ("B", &b_sha, &rb)] {
            if let Err(f) = runner.build(s) {
                built = Err(format!(
                    "{label} ({}) failed to build: {}",
                    &sha[..12],
                    f.message
                ));
                break;
            }
        }
        if let Err(e) = built {
            eprintln!("syncbench: {}: {e}", s.name);
            out.push(failed("", e));
            continue;
        }
        for point in s.points.iter().filter(|p| {
            ab.filter
                .as_ref()
                .is_none_or(|f| p.key().contains(f.as_str()))
        }) {
            let t0 = std::time::Instant::now();
            let mut values: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            let mut lower_is_better = true;
            let mut measure_side = |side: Side| -> Result<f64, String> {
                let runner = if side == Side::A { &ra } else { &rb };
                let metrics = runner
                    .measure_once(s, point, ab.metric == "command.instructions")
                    .map_err(|f| format!("{side:?}: {}", f.message))?;
                let found = metrics.iter().find(|m| m.0 == ab.metric).ok_or_else(|| {
                    let names: Vec<&str> = metrics.iter().map(|m| m.0.as_str()).collect();
                    format!("no metric {:?}; this scenario has {names:?}", ab.metric)
                })?;
                lower_is_better = found.2 == syncbench::metric::Direction::LowerIsBetter;
                Ok(found.3)
            };
            // Warm-up: one of each, not counted (caches, page cache, CPU
            // frequency), in the same alternation.
            let warm = (0..s.warmup.min(1)).try_for_each(|_| {
                measure_side(Side::A)?;
                measure_side(Side::B).map(|_| ())
            });
            if let Err(e) = warm {
                out.push(failed(&point.key(), e));
                continue;
            }
            let mut result = Ok(());
            let mut stop = None;
            let mut est = None;
            let sequence: Vec<Side> = match ab.unpaired {
                // The usual way, for comparison: all of A, then all of B.
                Some(n) => std::iter::repeat_n(Side::A, n)
                    .chain(std::iter::repeat_n(Side::B, n))
                    .collect(),
                None => abtest::order(settings.max_pairs).collect(),
            };
            for (i, &side) in sequence.iter().enumerate() {
                if session.interrupted() {
                    stop = Some(Stop::Interrupted);
                    break;
                }
                match measure_side(side) {
                    Ok(v) => values[side as usize].push(v),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
                if ab.verbose {
                    eprintln!(
                        "syncbench: {} {} #{i}: {side:?} {}",
                        s.name,
                        point.key(),
                        values[side as usize].last().expect("pushed")
                    );
                }
                if ab.unpaired.is_none() && side == Side::B {
                    let e = abtest::estimate(&values[0], &values[1], settings.confidence);
                    est = Some(e);
                    if let Some(why) = abtest::decide(&e, values[1].len(), t0.elapsed(), &settings)
                    {
                        stop = Some(why);
                        break;
                    }
                }
            }
            if let Err(e) = result {
                out.push(failed(&point.key(), e));
                continue;
            }
            let [a, b] = values;
            let verdict = match (ab.unpaired, stop) {
                (_, Some(Stop::Interrupted)) => "inconclusive".to_owned(),
                (Some(_), _) => {
                    let c = stats::compare(&a, &b, ab.threshold);
                    est = Some(abtest::Estimate {
                        change: c.change,
                        low: f64::NAN,
                        high: f64::NAN,
                    });
                    match (c.changed, (c.change > 0.0) == lower_is_better) {
                        (false, _) => "unchanged".to_owned(),
                        (true, true) => "regression".to_owned(),
                        (true, false) => "improvement".to_owned(),
                    }
                }
                (None, Some(why)) => {
                    abtest::verdict(why, est.as_ref().expect("estimated"), lower_is_better)
                        .to_owned()
                }
                (None, None) => "inconclusive".to_owned(),
            };
            out.push(AbResult {
                scenario: s.name.clone(),
                point: point.key(),
                metric: ab.metric.clone(),
                mode: if ab.unpaired.is_some() {
                    "unpaired"
                } else {
                    "interleaved"
                },
                verdict,
                estimate: est,
                pairs: a.len().min(b.len()),
                stop,
                seconds: t0.elapsed().as_secs_f64(),
                a,
                b,
                error: None,
            });
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "a": a_sha, "b": b_sha, "results": out,
            }))?
        );
    } else {
        println!("B {} against A {}", &b_sha[..12], &a_sha[..12]);
        for r in &out {
            match (&r.error, &r.estimate) {
                (Some(e), _) => println!("{} {}: FAILED: {e}", r.scenario, r.point),
                (None, Some(e)) => println!(
                    "{} {} {}: {:+.2}% [{:+.2}%, {:+.2}%] → {} after {} pairs in {:.1} s ({})",
                    r.scenario,
                    r.point,
                    r.metric,
                    e.change * 100.0,
                    e.low * 100.0,
                    e.high * 100.0,
                    r.verdict,
                    r.pairs,
                    r.seconds,
                    r.stop.map_or(r.mode, |s| s.describe())
                ),
                (None, None) => println!("{} {}: no data", r.scenario, r.point),
            }
        }
    }
    Ok(out)
}

/// Where `report` (and `run`, at its end) put the dashboard.
const DEFAULT_SITE: &str = "target/syncbench-report";

/// Renders the dashboard of `db` into `out` (relative to the repository).
fn render_site(
    root: &std::path::Path,
    db: &std::path::Path,
    scenarios_dir: &std::path::Path,
    out: impl AsRef<std::path::Path>,
    window: usize,
    min_change: f64,
    compare: Vec<(String, String)>,
) -> anyhow::Result<syncbench::site::Rendered> {
    let store = Store::open(db)?;
    let scenarios = scenario::load_dir(scenarios_dir).unwrap_or_default();
    let min_effect = min_effect_of(&scenarios, min_change);
    let out = root.join(out);
    syncbench::site::render(
        &store,
        &syncbench::site::Options {
            out,
            window,
            min_effect: &min_effect,
            thresholds: &|s| thresholds_of(scenarios_dir, s),
            compare,
        },
    )
    .context("rendering the dashboard")
}

/// The smallest change of level that counts for a scenario's metric: its
/// threshold where the scenario file sets one, else `default`.
fn min_effect_of(
    scenarios: &[scenario::Scenario],
    default: f64,
) -> impl Fn(&str, &str) -> f64 + '_ {
    move |name: &str, metric: &str| match scenarios.iter().find(|s| s.name == name) {
        Some(s)
            if s.thresholds.contains_key(metric)
                || metric
                    .rsplit('.')
                    .next()
                    .is_some_and(|m| s.thresholds.contains_key(m)) =>
        {
            report::threshold(&s.thresholds, metric)
        }
        _ => default,
    }
}

fn thresholds_of(dir: &std::path::Path, scenario: &str) -> std::collections::BTreeMap<String, f64> {
    scenario::find(dir, scenario)
        .map(|s| s.thresholds)
        .unwrap_or_default()
}

fn print_compared(compared: &[analysis::Compared], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(compared)?);
    } else {
        for c in compared {
            println!("\n{} {}  [{}]", c.scenario, c.point, c.machine);
            print!("{}", report::table(&c.rows));
        }
    }
    Ok(())
}

/// Counts over a measuring session.
#[derive(Default)]
struct Tally {
    commits: Vec<env::Commit>,
    points: usize,
    failed: usize,
    regressions: usize,
    results: Vec<serde_json::Value>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.commits.extend(other.commits);
        self.points += other.points;
        self.failed += other.failed;
        self.regressions += other.regressions;
        self.results.extend(other.results);
    }
}

/// What `run`, `history` and `bisect` share: the database, the machine,
/// Ctrl-C handling, progress bars.
struct Session {
    store: Store,
    db: PathBuf,
    machine: Machine,
    interrupted: Arc<AtomicBool>,
    bars: MultiProgress,
    opts: MeasureArgs,
    toolchain: String,
    command_line: String,
}

impl Session {
    fn open(db: &std::path::Path, opts: &MeasureArgs) -> anyhow::Result<Session> {
        // Open the database first: a bad --db fails before any work.
        let store = Store::open(db)?;
        let machine = Machine::detect();
        if machine.hw_counters != "available" {
            eprintln!(
                "note: hardware counters (instructions, cycles) are {}; measuring without them",
                machine.hw_counters
            );
        }
        let interrupted = Arc::new(AtomicBool::new(false));
        let flag = interrupted.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
        Ok(Session {
            store,
            db: db.to_owned(),
            machine,
            interrupted,
            bars: MultiProgress::new(),
            opts: opts.clone(),
            toolchain: env::toolchain(),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
        })
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// The reusable checkout of `root` in the cache, and a runner on it
    /// whose builds share the cache's target dir.
    fn checkout(&self, root: &std::path::Path) -> anyhow::Result<(history::Checkout, Runner)> {
        let cache = self
            .opts
            .cache_dir
            .clone()
            .unwrap_or_else(|| history::default_cache(root));
        let checkout = history::Checkout::open(root, &cache)?;
        let target = self
            .opts
            .target_dir
            .clone()
            .unwrap_or_else(|| cache.join("target"));
        let runner = self.runner(checkout.dir.clone(), target);
        Ok((checkout, runner))
    }

    fn runner(&self, tree: PathBuf, target_dir: PathBuf) -> Runner {
        Runner::new(
            tree,
            RunnerOptions {
                repetitions: self.opts.repetitions,
                sample_interval: self.opts.sample_interval,
                target_dir,
                cargo_profile: self.opts.cargo_profile.clone(),
                verbose: self.opts.verbose,
                pin_cpu: self.opts.pin_cpu,
            },
            self.interrupted.clone(),
        )
    }

    /// Measures the points of `scenarios` (minus `skip`) on the runner's
    /// tree, checked out at `commit`; records and prints each.
    fn measure(
        &mut self,
        runner: &Runner,
        commit: &env::Commit,
        scenarios: &[Scenario],
        baseline: &str,
        baseline_commits: &[String],
        skip: &dyn Fn(&Scenario, &scenario::Point) -> bool,
    ) -> anyhow::Result<Tally> {
        let filter = self.opts.filter.clone();
        let mut tally = Tally {
            commits: vec![commit.clone()],
            ..Default::default()
        };
        for s in scenarios {
            if matches!(s.kind, scenario::Kind::Criterion { .. }) {
                self.measure_criterion(runner, commit, s, baseline, baseline_commits, &mut tally)?;
                if self.interrupted() {
                    return Ok(tally);
                }
                continue;
            }
            let points: Vec<_> = s
                .points
                .iter()
                .filter(|p| {
                    filter.as_ref().is_none_or(|f| p.key().contains(f.as_str())) && !skip(s, p)
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let built = runner.build(s);
            for point in points {
                let started = now();
                let bar = self.bars.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>10} {msg} [{bar:20}] {pos}/{len} repetitions (eta {eta})",
                    )
                    .expect("valid template"),
                );
                bar.set_prefix(s.name.clone());
                bar.set_message(point.key());
                let result = match &built {
                    Ok(()) => runner.run_point(s, point, &mut |i, n| {
                        bar.set_length(n as u64);
                        bar.set_position(i as u64);
                    }),
                    Err(f) => syncbench::runner::PointResult {
                        failure: Some(f.clone()),
                        ..Default::default()
                    },
                };
                bar.finish_and_clear();
                let status = result.failure.as_ref().map_or("ok", |f| f.status);
                let ok = status == "ok";
                let record = RunRecord {
                    machine: self.machine.clone(),
                    commit: commit.clone(),
                    scenario: s.name.clone(),
                    point: point.key(),
                    params_json: point.json(),
                    status: status.to_owned(),
                    error: result.failure.as_ref().map(|f| f.message.clone()),
                    repetitions: result.recorded_repetitions,
                    harness_version: env!("CARGO_PKG_VERSION").to_owned(),
                    toolchain: self.toolchain.clone(),
                    command_line: self.command_line.clone(),
                    started_unix: started,
                    finished_unix: now(),
                    metrics: if ok { result.metrics } else { vec![] },
                    samples: if ok { result.samples } else { vec![] },
                    phases: if ok { result.phases } else { vec![] },
                };
                let run_id = self.store.record(&record)?;
                self.report_run(
                    &record,
                    run_id,
                    &s.thresholds,
                    baseline,
                    baseline_commits,
                    &mut tally,
                )?;
                if self.interrupted() {
                    return Ok(tally);
                }
            }
        }
        Ok(tally)
    }

    /// Compares a recorded run with its baseline, prints it, and counts it.
    fn report_run(
        &self,
        record: &RunRecord,
        run_id: i64,
        thresholds: &std::collections::BTreeMap<String, f64>,
        baseline: &str,
        baseline_commits: &[String],
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let (name, key, sha) = (&record.scenario, &record.point, &record.commit.sha);
        let base = self
            .store
            .baseline(&self.machine, name, key, baseline_commits, run_id)?;
        let base_series = match &base {
            Some((id, _)) => self.store.series(*id)?,
            None => vec![],
        };
        let rows = report::rows(&record.metrics, &base_series, thresholds);
        tally.points += 1;
        tally.regressions += rows.iter().filter(|r| r.verdict == "regression").count();
        if let Some(error) = &record.error {
            tally.failed += 1;
            self.bars.suspend(|| {
                eprintln!(
                    "syncbench: {name} {key} at {}: {}: {error}",
                    &sha[..12],
                    record.status
                )
            });
        }
        if !self.opts.json && record.status == "ok" {
            let vs = match &base {
                Some((_, b)) => format!("vs {baseline} @ {}", &b[..12]),
                None if baseline.is_empty() => String::new(),
                None => format!("no baseline on {baseline} yet"),
            };
            self.bars.suspend(|| {
                println!(
                    "\n{name} {key} @ {}  ({} repetitions, {vs})",
                    &sha[..12],
                    record.repetitions
                );
                print!("{}", report::table(&rows));
            });
        }
        tally.results.push(serde_json::json!({
            "scenario": name, "point": key, "commit": sha, "status": record.status,
            "error": record.error, "baseline": base.map(|b| b.1), "metrics": rows,
        }));
        Ok(())
    }

    /// A criterion scenario: one `cargo bench`, each benchmark a point.
    fn measure_criterion(
        &mut self,
        runner: &Runner,
        commit: &env::Commit,
        s: &Scenario,
        baseline: &str,
        baseline_commits: &[String],
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let started = now();
        let record =
            |point: String,
             metrics: Vec<syncbench::metric::Series>,
             failure: Option<&syncbench::runner::Failure>| RunRecord {
                machine: self.machine.clone(),
                commit: commit.clone(),
                scenario: s.name.clone(),
                params_json: "{}".into(),
                repetitions: metrics.first().map_or(0, |m| m.values.len() as u32),
                point,
                status: failure.map_or("ok", |f| f.status).to_owned(),
                error: failure.map(|f| f.message.clone()),
                harness_version: env!("CARGO_PKG_VERSION").to_owned(),
                toolchain: self.toolchain.clone(),
                command_line: self.command_line.clone(),
                started_unix: started,
                finished_unix: now(),
                metrics,
                samples: vec![],
                phases: vec![],
            };
        let records: Vec<RunRecord> = match runner.criterion(s) {
            Ok(found) => found
                .into_iter()
                .map(|i| record(i.point, i.metrics, None))
                .collect(),
            Err(f) => vec![record(String::new(), vec![], Some(&f))],
        };
        let ids = self.store.record_all(&records)?;
        for (r, id) in records.iter().zip(ids) {
            self.report_run(r, id, &s.thresholds, baseline, baseline_commits, tally)?;
        }
        Ok(())
    }

    /// Prints the closing lines and chooses the exit status.
    fn finish(self, tally: Tally) -> anyhow::Result<u8> {
        if self.opts.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "machine": self.machine,
                    "commit": tally.commits.first(),
                    "commits": tally.commits,
                    "results": tally.results,
                }))?
            );
        }
        eprintln!(
            "syncbench: {} point(s) recorded in {} ({} failed, {} regression(s))",
            tally.points,
            self.db.display(),
            tally.failed,
            tally.regressions
        );
        if self.interrupted() {
            eprintln!(
                "syncbench: interrupted; what finished is recorded, and the next call continues from there"
            );
            return Ok(130);
        }
        Ok(if tally.failed > 0 || tally.regressions > 0 {
            1
        } else {
            0
        })
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
