//! `syncbench merge FILE.sqlite…`: runs recorded elsewhere copied into
//! the results database.

use super::{Context, outln};
use std::path::PathBuf;
use syncbench::ops::merge;

#[derive(clap::Args)]
pub struct Args {
    /// syncbench SQLite results files (e.g. a CI matrix's artifacts);
    /// each is read, never written.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print what each file added as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let mut store = cx.store_or_create()?;
    let mut all = Vec::new();
    for file in &args.files {
        let merged = merge::merge_file(&mut *store, file)
            .map_err(|e| anyhow::Error::new(e).context(format!("merging {}", file.display())))?;
        if !args.json {
            outln!(
                "{}: {} run(s), {} new{}; {} A/B run(s), {} triage decision(s), {} profile(s) new",
                file.display(),
                merged.runs,
                merged.runs_added,
                if merged.runs_forgotten > 0 {
                    format!(
                        " ({} forgotten here before, not brought back: `syncbench forget --list`)",
                        merged.runs_forgotten
                    )
                } else {
                    String::new()
                },
                merged.ab_added,
                merged.triage_added,
                merged.profiles_added
            )?;
        }
        all.push(serde_json::json!({"file": file, "merged": merged}));
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&all)?)?;
    } else {
        eprintln!("syncbench: merged into {}", cx.db);
    }
    Ok(0)
}
