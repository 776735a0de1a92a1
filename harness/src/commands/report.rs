//! `syncbench report`: the static HTML dashboard of the database.

use super::{Context, outln};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use syncbench::model::Unit;
use syncbench::scenario::{DEFAULT_THRESHOLD, ThresholdBook};
use syncbench::site::{self, Rendered};

#[derive(clap::Args)]
pub struct Args {
    /// Output folder, relative to the repository [default:
    /// target/syncbench-report for the repository's database, else
    /// DB-STEM-report next to the --db file].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Search change points over each series' whole history in
    /// overlapping windows of N values (each window costs N², so larger
    /// is slower; a window shorter than a level hides nothing).
    #[arg(long, default_value_t = Settings::default().window as u64, value_parser = clap::value_parser!(u64).range(8..))]
    window: u64,
    /// Smallest relative change of level to mark, where the scenario
    /// file sets no threshold for the metric.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    min_change: f64,
    /// Also render compare/A..B.html for these commits (repeatable).
    #[arg(long, value_name = "A..B")]
    compare: Vec<String>,
    /// Print what was rendered (pages, bytes, the index's path) as JSON
    /// on stdout.
    #[arg(long)]
    json: bool,
}

/// What to render, besides where.
#[derive(Debug, Clone)]
pub struct Settings {
    pub window: usize,
    pub min_change: f64,
    /// Extra comparison pages, (base, new).
    pub compare: Vec<(String, String)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window: syncbench::changepoint::SEARCH_WINDOW,
            min_change: DEFAULT_THRESHOLD,
            compare: Vec::new(),
        }
    }
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let mut compare = Vec::new();
    for c in &args.compare {
        let (a, b) = c
            .split_once("..")
            .with_context(|| format!("--compare {c:?}: expected BASE..NEW"))?;
        // A ref (main, HEAD~1) resolves in the repository; a sha prefix
        // not in it is looked up in the results.
        let resolve = |r: &str| {
            syncbench::git::first_parent_history(&cx.root, r, 1)
                .ok()
                .and_then(|h| h.into_iter().next())
                .unwrap_or_else(|| r.to_owned())
        };
        compare.push((resolve(a), resolve(b)));
    }
    let settings = Settings {
        window: args.window as usize,
        min_change: args.min_change,
        compare,
    };
    let t0 = std::time::Instant::now();
    let out = match &args.out {
        Some(o) => cx.root.join(o),
        None => cx.default_site(),
    };
    let r = render(cx, &out, &settings)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        eprintln!(
            "syncbench: {} pages ({}), {} written, in {:.2} s",
            r.pages,
            Unit::Bytes.human(r.bytes as f64),
            r.written,
            t0.elapsed().as_secs_f64()
        );
        for p in &r.compare_pages {
            outln!("{}", p.display())?;
        }
        outln!("{}", r.index.display())?;
    }
    Ok(0)
}

/// Renders the dashboard of the context's database into `out`.
pub fn render(cx: &Context, out: &Path, settings: &Settings) -> anyhow::Result<Rendered> {
    let store = cx.store()?;
    let opts = site::Options {
        out: out.to_owned(),
        window: settings.window,
        min_effect: ThresholdBook::load(&cx.scenarios_dir, settings.min_change),
        thresholds: ThresholdBook::load(&cx.scenarios_dir, DEFAULT_THRESHOLD),
        compare: settings.compare.clone(),
        // History = the branch: HEAD's first-parent line (every commit
        // outside a repository).
        on_line: Some(cx.on_line("HEAD")?),
    };
    site::render(&*store, &opts).context("rendering the dashboard")
}
