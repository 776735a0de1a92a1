//! Measuring from the command line: the flags `run`, `history` and
//! `bisect` share, the progress bars and tables of a session, its closing
//! lines and exit status.

use super::{Context, outln};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Duration;
use syncbench::ops::session::{MeasureSettings, Progress, RunReport, Session, Tally};
use syncbench::scenario::parse_duration;
use syncbench::text;

/// How to measure: shared by run, history and bisect.
#[derive(clap::Args, Clone)]
pub struct MeasureArgs {
    /// Override every scenario's repetitions (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    repetitions: Option<u32>,
    /// Only points whose key (e.g. docs=1000,size=10KiB) contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Only these variants (build configurations a scenario declares
    /// under [variants.NAME]), comma-separated; `default` is each
    /// scenario's build as it is, `all` every variant [default: all]. A
    /// worker takes each job's (enqueue --variant).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    variant: Vec<String>,
    /// How often to sample CPU and RSS (e.g. 50ms).
    #[arg(long, default_value = "50ms", value_parser = parse_duration, value_name = "DURATION")]
    sample_interval: Duration,
    /// Where cargo builds the reference system (`sync` scenarios) and the
    /// benchmarks (`criterion` scenarios) [run: target/ in the
    /// repository; history, bisect and worker: the cache dir].
    #[arg(long, help_heading = super::CARGO_HEADING)]
    target_dir: Option<PathBuf>,
    /// The cargo profile `sync` scenarios build the reference system with.
    #[arg(long, default_value = "release", help_heading = super::CARGO_HEADING)]
    cargo_profile: String,
    /// Where past commits are checked out and built (history, bisect,
    /// worker; run measures the working tree and ignores it)
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
    /// Count instructions of every point, as if each scenario said
    /// `instructions = true`: where the kernel has no hardware counters,
    /// each point gets one more run with every process under valgrind
    /// (about 50x slower), recording `PROCESS.instructions` and
    /// `PHASE.PROCESS.instructions`.
    #[arg(long)]
    instructions: bool,
    /// A name for this machine, stored with its results and shown by
    /// `syncbench machines` and the dashboard; `check --machine-tag` and
    /// `enqueue --machine-tag` select by it (results stay keyed by the
    /// machine's fingerprint: two machines are two series).
    #[arg(long, env = "SYNCBENCH_MACHINE_TAG", value_name = "TAG")]
    pub machine_tag: Option<String>,
}

impl MeasureArgs {
    pub fn filter(&self) -> Option<&String> {
        self.filter.as_ref()
    }

    /// Whether `--variant` was given.
    pub fn variant_chosen(&self) -> bool {
        !self.variant.is_empty()
    }

    /// The points of `scenarios` on the variants `--variant` names.
    pub fn variants(
        &self,
        scenarios: Vec<syncbench::scenario::Scenario>,
    ) -> anyhow::Result<Vec<syncbench::scenario::Scenario>> {
        syncbench::scenario::select_variants(scenarios, &self.variant).map_err(anyhow::Error::msg)
    }

    pub fn settings(&self) -> MeasureSettings {
        MeasureSettings {
            repetitions: self.repetitions,
            filter: self.filter.clone(),
            sample_interval: self.sample_interval,
            // Absolute: cargo may run elsewhere (a variant's copy of the
            // tree) than where the binaries are looked for.
            target_dir: self
                .target_dir
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            cargo_profile: self.cargo_profile.clone(),
            cache_dir: self.cache_dir.clone(),
            pin_cpu: self.pin_cpu,
            instructions: self.instructions,
            machine_tag: self.machine_tag.clone(),
        }
    }

    /// Opens the session these flags describe.
    pub fn session(&self, cx: &Context) -> anyhow::Result<Session> {
        let session = cx.session(self.settings())?;
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
        let what = if r.point.is_empty() {
            r.scenario.clone()
        } else {
            format!("{} {}", r.scenario, r.point)
        };
        if let Some(error) = &r.error {
            self.multi
                .suspend(|| eprintln!("syncbench: {what} at {sha}: {}: {error}", r.status));
        }
        if self.tables && r.status.is_ok() {
            let vs = match &r.baseline {
                Some(b) => format!("vs {} @ {}", r.baseline_name, &b[..12]),
                None if r.baseline_name.is_empty() => String::new(),
                None => format!("no baseline on {} yet", r.baseline_name),
            };
            // Progress has no way to fail; stdout's own errors show at
            // the command's next write.
            let _ = self.multi.suspend(|| {
                outln!(
                    "\n{what} @ {sha}  ({} repetitions, {vs})\n{}",
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
    if let Some(note) = syncbench::text::too_few_note(tally.reports.iter().flat_map(|r| &r.rows)) {
        eprintln!("syncbench: {note}");
    }
    eprintln!(
        "syncbench: {} point(s) recorded in {} ({} failed, {} regression(s))",
        tally.points, session.db, tally.failed, tally.regressions
    );
    if session.interrupted() {
        eprintln!(
            "syncbench: interrupted; what finished is recorded, and the next call continues from there"
        );
        return Ok(130);
    }
    Ok(u8::from(tally.failed > 0 || tally.regressions > 0))
}
