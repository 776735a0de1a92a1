//! `syncbench ingest`: results other tools produced (criterion's output,
//! a Bencher Metric Format file), stored for the current commit.

use super::Context;
use clap::Subcommand;
use std::path::PathBuf;
use syncbench::git;
use syncbench::ingest;
use syncbench::model::unix_now as now;
use syncbench::ops::session::Recorder;
use syncbench::store::RunRecord;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    from: From,
}

#[derive(Subcommand)]
enum From {
    /// criterion's output (the raw samples of every benchmark).
    Criterion {
        /// criterion's output folder (its `criterion/`, with one folder
        /// per benchmark) [default: target/criterion in the repository].
        dir: Option<PathBuf>,
    },
    /// A Bencher Metric Format JSON file.
    Bmf {
        /// The file: {"BENCHMARK": {"MEASURE": {"value": …}}}, where a
        /// benchmark named SCENARIO/POINT is stored as that point.
        file: PathBuf,
    },
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let (source, found) = match args.from {
        From::Criterion { dir } => {
            let dir = dir.unwrap_or_else(|| cx.root.join("target/criterion"));
            let found = ingest::criterion(&dir)?;
            (dir, found)
        }
        From::Bmf { file } => {
            let found = ingest::bmf(&file)?;
            (file, found)
        }
    };
    let mut store = cx.store_or_create()?;
    let commit = git::head_commit(&cx.root)?;
    let recorder = Recorder::new(syncbench::machine::detect_machine());
    let params = serde_json::json!({ "source": source.display().to_string() }).to_string();
    let started = now();
    let records: Vec<RunRecord> = found
        .into_iter()
        .map(|i| {
            recorder.record_found(
                &commit,
                &i.scenario,
                i.point,
                params.clone(),
                i.metrics,
                started,
            )
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
