use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use syncbench::env::{self, Machine};
use syncbench::runner::{Runner, RunnerOptions};
use syncbench::scenario::{self, Scenario};
use syncbench::store::{RunRecord, Store};
use syncbench::{report, scenario::parse_duration};

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
        /// Override every scenario's repetitions.
        #[arg(long)]
        repetitions: Option<u32>,
        /// Only points whose key (e.g. docs=1000,size=10KiB) contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Compare with the last results on this branch or commit.
        #[arg(long, default_value = "main")]
        baseline: String,
        /// How often to sample CPU and RSS (e.g. 50ms).
        #[arg(long, default_value = "50ms", value_parser = parse_duration)]
        sample_interval: Duration,
        /// Where cargo builds the reference system [default: target/ in the repository].
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Cargo profile the reference system is built with.
        #[arg(long, default_value = "release")]
        cargo_profile: String,
        /// Print the results as JSON on stdout instead of tables.
        #[arg(long)]
        json: bool,
        /// Print build commands and process ids on stderr.
        #[arg(long, short)]
        verbose: bool,
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

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Every run with its raw values, plus a `bmf` section.
    Json,
    /// Bencher Metric Format only.
    Bmf,
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
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        Cmd::Run {
            scenarios,
            repetitions,
            filter,
            baseline,
            sample_interval,
            target_dir,
            cargo_profile,
            json,
            verbose,
        } => {
            let chosen: Vec<Scenario> = if scenarios.is_empty() {
                scenario::load_dir(&scenarios_dir)?
                    .into_iter()
                    .filter(|s| s.default)
                    .collect()
            } else {
                scenarios
                    .iter()
                    .map(|s| scenario::find(&scenarios_dir, s))
                    .collect::<Result<_, _>>()?
            };
            // Open the database first: a bad --db fails before any work.
            let mut store = Store::open(&db)?;
            let machine = Machine::detect();
            if machine.hw_counters != "available" {
                eprintln!(
                    "note: hardware counters (instructions, cycles) are {}; measuring without them",
                    machine.hw_counters
                );
            }
            let commit = env::head_commit(&root)?;
            let baseline_commits = env::first_parent_history(&root, &baseline, 1000)?;
            let interrupted = Arc::new(AtomicBool::new(false));
            {
                let flag = interrupted.clone();
                ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
                    .context("installing the Ctrl-C handler")?;
            }
            let runner = Runner::new(
                root.clone(),
                RunnerOptions {
                    repetitions,
                    sample_interval,
                    target_dir: target_dir.unwrap_or_else(|| root.join("target")),
                    cargo_profile,
                    verbose,
                },
                interrupted.clone(),
            );
            let command_line = std::env::args().collect::<Vec<_>>().join(" ");
            let toolchain = env::toolchain();
            let total_points: usize = chosen
                .iter()
                .map(|s| {
                    s.points
                        .iter()
                        .filter(|p| filter.as_ref().is_none_or(|f| p.key().contains(f.as_str())))
                        .count()
                })
                .sum();
            let bars = MultiProgress::new();
            let overall = bars.add(ProgressBar::new(total_points as u64));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {pos}/{len} points  {elapsed} (eta {eta})",
                )
                .expect("valid template"),
            );
            overall.set_prefix("syncbench");
            let mut failed = 0;
            let mut regressions = 0;
            let mut results = vec![];
            'scenarios: for s in &chosen {
                let points: Vec<_> = s
                    .points
                    .iter()
                    .filter(|p| filter.as_ref().is_none_or(|f| p.key().contains(f.as_str())))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                overall.set_message(format!("building {}", s.name));
                let built = runner.build(s);
                for point in points {
                    let started = now();
                    let bar = bars.add(ProgressBar::new(0));
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
                    overall.inc(1);
                    let status = result.failure.as_ref().map_or("ok", |f| f.status);
                    let record = RunRecord {
                        machine: machine.clone(),
                        commit: commit.clone(),
                        scenario: s.name.clone(),
                        point: point.key(),
                        params_json: point.json(),
                        status: status.to_owned(),
                        error: result.failure.as_ref().map(|f| f.message.clone()),
                        repetitions: result.recorded_repetitions,
                        harness_version: env!("CARGO_PKG_VERSION").to_owned(),
                        toolchain: toolchain.clone(),
                        command_line: command_line.clone(),
                        started_unix: started,
                        finished_unix: now(),
                        metrics: if status == "ok" {
                            result.metrics
                        } else {
                            vec![]
                        },
                        samples: if status == "ok" {
                            result.samples
                        } else {
                            vec![]
                        },
                        phases: if status == "ok" {
                            result.phases
                        } else {
                            vec![]
                        },
                    };
                    let run_id = store.record(&record)?;
                    let base = store.baseline(
                        &machine,
                        &s.name,
                        &point.key(),
                        &baseline_commits,
                        run_id,
                    )?;
                    let base_series = match &base {
                        Some((id, _)) => store.series(*id)?,
                        None => vec![],
                    };
                    let rows = report::rows(&record.metrics, &base_series, &s.thresholds);
                    regressions += rows.iter().filter(|r| r.verdict == "regression").count();
                    if let Some(f) = &result.failure {
                        failed += 1;
                        bars.suspend(|| {
                            eprintln!(
                                "syncbench: {} {} {}: {}",
                                s.name,
                                point.key(),
                                f.status,
                                f.message
                            )
                        });
                    }
                    if !json && status == "ok" {
                        let vs = match &base {
                            Some((_, sha)) => format!("vs {baseline} @ {}", &sha[..12]),
                            None => format!("no baseline on {baseline} yet"),
                        };
                        bars.suspend(|| {
                            println!(
                                "\n{} {}  ({} repetitions, {vs})",
                                s.name,
                                point.key(),
                                record.repetitions
                            );
                            print!("{}", report::table(&rows));
                        });
                    }
                    results.push(serde_json::json!({
                        "scenario": s.name, "point": point.key(), "status": status,
                        "error": record.error, "baseline": base.map(|b| b.1), "metrics": rows,
                    }));
                    if interrupted.load(Ordering::SeqCst) {
                        break 'scenarios;
                    }
                }
            }
            overall.finish_and_clear();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "commit": commit, "machine": machine, "results": results,
                    }))?
                );
            }
            eprintln!(
                "syncbench: {} point(s) recorded in {} ({failed} failed, {regressions} regression(s))",
                results.len(),
                db.display()
            );
            if interrupted.load(Ordering::SeqCst) {
                eprintln!("syncbench: interrupted; the finished points are recorded");
                return Ok(130);
            }
            Ok(if failed > 0 || regressions > 0 { 1 } else { 0 })
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
