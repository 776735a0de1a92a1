//! The subcommands: each file turns its flags into settings, calls the
//! operations (`syncbench::ops`, `analysis`, `site`…) and prints. Only
//! this folder prints.

mod ab;
mod bisect;
mod check;
mod compare;
mod export;
mod history;
mod ingest;
mod list;
mod regressions;
mod report;
mod run;
mod show;

use anyhow::Context as _;
use clap::Subcommand;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use syncbench::analysis::Compared;
use syncbench::env;
use syncbench::ops::session::{MeasureSettings, Progress, RunReport, Session, Tally};
use syncbench::scenario::{self, Scenario, parse_duration};
use syncbench::text;

#[derive(Subcommand)]
pub enum Cmd {
    /// Measure the current tree: each scenario point, each repetition.
    Run(run::Args),
    /// Measure past commits: each in a reusable checkout, skipping those
    /// already measured on this machine (unless --force).
    ///
    /// Arguments are scenario names/paths and commits: `A..B` (first-parent
    /// commits after A up to B) or single revisions; or use -n N.
    History(history::Args),
    /// Change points over the stored history, newest first.
    Regressions(regressions::Args),
    /// Render the results as a static HTML site: an index of every series,
    /// a trend page per series with its change points, a page per commit
    /// with the resource curves of its runs, and comparisons. Works from a
    /// local folder or any file server, offline. Prints the index's path.
    Report(report::Args),
    /// Every series measured at both commits, B against A. With --run,
    /// measures both now instead, alternately A B A B … in this job (see
    /// the A/B options).
    Compare(compare::Args),
    /// CI gate: HEAD's results against the newest results on the baseline's
    /// first-parent history; exit 1 on a regression.
    Check(check::Args),
    /// Find the commit that moved METRIC between GOOD and BAD, measuring
    /// only the commits the binary search needs.
    Bisect(bisect::Args),
    /// Store results other tools produced, for the current commit.
    Ingest(ingest::Args),
    /// List scenarios and their points.
    List(list::Args),
    /// Show stored runs of a commit (default: HEAD).
    Show(show::Args),
    /// Export all results of a commit (default: HEAD).
    Export(export::Args),
}

impl Cmd {
    /// Whether -v asked for details on stderr.
    pub fn verbose(&self) -> bool {
        match self {
            Cmd::Run(a) => a.measure.verbose,
            Cmd::History(a) => a.measure.verbose,
            Cmd::Bisect(a) => a.measure.verbose,
            Cmd::Compare(a) => a.ab.verbose,
            Cmd::Check(a) => a.ab.verbose,
            _ => false,
        }
    }
}

pub fn dispatch(cx: &Context, cmd: Cmd) -> anyhow::Result<u8> {
    match cmd {
        Cmd::Run(a) => run::run(cx, a),
        Cmd::History(a) => history::run(cx, a),
        Cmd::Regressions(a) => regressions::run(cx, a),
        Cmd::Report(a) => report::run(cx, a),
        Cmd::Compare(a) => compare::run(cx, a),
        Cmd::Check(a) => check::run(cx, a),
        Cmd::Bisect(a) => bisect::run(cx, a),
        Cmd::Ingest(a) => ingest::run(cx, a),
        Cmd::List(a) => list::run(cx, a),
        Cmd::Show(a) => show::run(cx, a),
        Cmd::Export(a) => export::run(cx, a),
    }
}

/// Details (process ids, build commands, lost servers) go to stderr
/// through `tracing`: warnings always, the rest with -v
/// (`SYNCBENCH_LOG` overrides, e.g. `SYNCBENCH_LOG=debug`).
pub fn init_logging(verbose: bool) {
    let level = if verbose { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SYNCBENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .event_format(Plain)
        .init();
}

/// `syncbench: MESSAGE`, the form of every line the harness writes to
/// stderr (scripts and tests read "started server pid=N").
struct Plain;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "syncbench: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Whether an error is stdout closed by its reader.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes to stdout, returning the error of a closed pipe instead of
/// panicking as `println!` does.
pub fn emit(text: std::fmt::Arguments) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(text)?;
    out.flush()?;
    Ok(())
}

/// `println!` for commands: a closed pipe ends the command quietly.
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::commands::emit(format_args!("{}\n", format_args!($($t)*)))
    };
}
pub(crate) use outln;

/// Where the dashboard goes when the repository's default database is
/// used (relative to the repository).
pub const DEFAULT_SITE: &str = "target/syncbench-report";

/// What every command is given: where the repository, the database and
/// the scenarios are.
pub struct Context {
    pub root: PathBuf,
    pub db: PathBuf,
    /// --db named another database than the repository's default.
    pub own_db: bool,
    pub scenarios_dir: PathBuf,
    interrupted: OnceLock<Arc<AtomicBool>>,
}

impl Context {
    pub fn new(db: Option<PathBuf>, repo: Option<PathBuf>) -> anyhow::Result<Context> {
        let cwd = std::env::current_dir()?;
        let root = match (env::repo_root(repo.as_deref().unwrap_or(&cwd)), &db, &repo) {
            (Ok(root), _, _) => root,
            // Outside a repository, commands that read only the database
            // (report, regressions, show COMMIT, export COMMIT) still work;
            // those that need git say so when they ask for it.
            (Err(_), Some(_), None) => cwd,
            (Err(e), _, _) => return Err(e.into()),
        };
        let default_db = root.join(".syncbench/results.sqlite");
        let own_db = db.as_ref().is_some_and(|d| !same_file(d, &default_db));
        Ok(Context {
            db: db.unwrap_or(default_db),
            own_db,
            scenarios_dir: root.join("scenarios"),
            root,
            interrupted: OnceLock::new(),
        })
    }

    /// The flag Ctrl-C sets (the handler is installed on first use).
    pub fn interrupted(&self) -> anyhow::Result<Arc<AtomicBool>> {
        if let Some(f) = self.interrupted.get() {
            return Ok(f.clone());
        }
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        ctrlc::set_handler(move || set.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
        Ok(self.interrupted.get_or_init(|| flag).clone())
    }

    /// The dashboard's default folder: the repository's for its default
    /// database, else next to the database given (tests and other
    /// histories never overwrite the user's dashboard).
    pub fn default_site(&self) -> PathBuf {
        if self.own_db {
            let stem = self
                .db
                .file_stem()
                .map_or("results".into(), |s| s.to_string_lossy().into_owned());
            self.db.with_file_name(format!("{stem}-report"))
        } else {
            self.root.join(DEFAULT_SITE)
        }
    }

    pub fn store(&self) -> anyhow::Result<syncbench::store::Store> {
        Ok(syncbench::store::Store::open(&self.db)?)
    }

    /// A revision's full sha.
    pub fn full_sha(&self, rev: &str) -> anyhow::Result<String> {
        let commits = syncbench::history::resolve(&self.root, &[rev.to_owned()], None)?;
        Ok(commits
            .into_iter()
            .next()
            .with_context(|| format!("no commit {rev:?}"))?
            .sha)
    }

    /// The scenarios a run measures: these names or files, or the
    /// default suite.
    pub fn choose(&self, names: &[String]) -> anyhow::Result<Vec<Scenario>> {
        Ok(if names.is_empty() {
            scenario::load_dir(&self.scenarios_dir)?
                .into_iter()
                .filter(|s| s.default)
                .collect()
        } else {
            names
                .iter()
                .map(|s| scenario::find(&self.scenarios_dir, s))
                .collect::<Result<_, _>>()?
        })
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// How to measure: shared by run, history and bisect.
#[derive(clap::Args, Clone)]
pub struct MeasureArgs {
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
    pub json: bool,
    /// Print build commands and process ids on stderr.
    #[arg(long, short)]
    pub verbose: bool,
    /// Run command scenarios' processes on this CPU only (less noise from
    /// migrating between cores).
    #[arg(long)]
    pin_cpu: Option<usize>,
}

impl MeasureArgs {
    pub fn settings(&self) -> MeasureSettings {
        MeasureSettings {
            repetitions: self.repetitions,
            filter: self.filter.clone(),
            sample_interval: self.sample_interval,
            target_dir: self.target_dir.clone(),
            cargo_profile: self.cargo_profile.clone(),
            cache_dir: self.cache_dir.clone(),
            pin_cpu: self.pin_cpu,
        }
    }

    /// Opens the session these flags describe.
    pub fn session(&self, cx: &Context) -> anyhow::Result<Session> {
        let session = Session::open(&cx.db, self.settings(), cx.interrupted()?)?;
        let hw = &session.machine().hw_counters;
        if hw != "available" {
            eprintln!(
                "note: hardware counters (instructions, cycles) are {hw}; measuring without them"
            );
        }
        Ok(session)
    }
}

/// Progress bars for a session's points, and its tables as runs are
/// recorded.
pub struct Bars {
    pub multi: MultiProgress,
    bar: Option<ProgressBar>,
    /// Print tables (false with --json).
    tables: bool,
}

impl Bars {
    pub fn new(json: bool) -> Bars {
        Bars {
            multi: MultiProgress::new(),
            bar: None,
            tables: !json,
        }
    }
}

impl Progress for Bars {
    fn point_started(&mut self, scenario: &str, point: &str) {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} {msg} [{bar:20}] {pos}/{len} repetitions (eta {eta})",
            )
            .expect("valid template"),
        );
        bar.set_prefix(scenario.to_owned());
        bar.set_message(point.to_owned());
        self.bar = Some(bar);
    }

    fn repetition(&mut self, done: u32, total: u32) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    fn point_finished(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn recorded(&mut self, r: &RunReport) {
        let sha = &r.commit[..12];
        if let Some(error) = &r.error {
            self.multi.suspend(|| {
                eprintln!(
                    "syncbench: {} {} at {sha}: {}: {error}",
                    r.scenario, r.point, r.status
                )
            });
        }
        if self.tables && r.status.is_ok() {
            let vs = match &r.baseline {
                Some(b) => format!("vs {} @ {}", r.baseline_name, &b[..12]),
                None if r.baseline_name.is_empty() => String::new(),
                None => format!("no baseline on {} yet", r.baseline_name),
            };
            // A closed stdout shows at the next write the command makes.
            let _ = self.multi.suspend(|| {
                outln!(
                    "\n{} {} @ {sha}  ({} repetitions, {vs})\n{}",
                    r.scenario,
                    r.point,
                    r.repetitions,
                    text::table(&r.rows).trim_end_matches('\n')
                )
            });
        }
    }
}

/// Prints a session's closing lines and chooses the exit status.
pub fn finish(session: &Session, tally: Tally, json: bool) -> anyhow::Result<u8> {
    if json {
        let results: Vec<serde_json::Value> = tally
            .reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "scenario": r.scenario, "point": r.point, "commit": r.commit, "status": r.status,
                    "error": r.error, "baseline": r.baseline, "metrics": r.rows,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "machine": session.machine(),
                "commit": tally.commits.first(),
                "commits": tally.commits,
                "results": results,
            }))?
        )?;
    }
    eprintln!(
        "syncbench: {} point(s) recorded in {} ({} failed, {} regression(s))",
        tally.points,
        session.db.display(),
        tally.failed,
        tally.regressions
    );
    if session.interrupted() {
        eprintln!(
            "syncbench: interrupted; what finished is recorded, and the next call continues from there"
        );
        return Ok(130);
    }
    Ok(u8::from(tally.failed > 0 || tally.regressions > 0))
}

/// Prints compared points as JSON or tables.
pub fn print_compared(compared: &[Compared], json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(compared)?)?;
    } else {
        for c in compared {
            outln!("\n{} {}  [{}]", c.scenario, c.point, c.machine)?;
            emit(format_args!("{}", text::table(&c.rows)))?;
        }
    }
    Ok(())
}
