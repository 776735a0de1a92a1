//! `syncbench export [COMMIT]`: a commit's results as JSON, BMF or CSV.

use super::{Context, emit};
use clap::ValueEnum;
use syncbench::ops::export::{self, Format as Out};

#[derive(clap::Args)]
pub struct Args {
    /// A revision (HEAD~2, main, a tag) or a prefix of a stored commit's
    /// sha, which the repository need not have [default: HEAD].
    commit: Option<String>,
    /// What to write on stdout.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
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

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let store = cx.store()?;
    let sha = cx.commit_arg(args.commit)?;
    let format = match args.format {
        Format::Json => Out::Json,
        Format::Bmf => Out::Bmf,
        Format::Csv => Out::Csv,
    };
    emit(format_args!("{}", export::export(&*store, &sha, format)?))?;
    Ok(0)
}
