//! `syncbench machines`: the machines with results, by tag and fingerprint.

use super::{Context, outln};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let machines = cx.store()?.machines()?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&machines)?)?;
        return Ok(0);
    }
    if machines.is_empty() {
        outln!("no machines in {}", cx.db)?;
        return Ok(0);
    }
    let this = syncbench::env::Machine::detect().fingerprint();
    outln!("{:<16} {:>6}  {:<20}  fingerprint", "tag", "runs", "last run")?;
    for m in machines {
        let last = m
            .last_run_unix
            .map_or("-".into(), |t| syncbench::site::date(t as i64));
        let here = if m.fingerprint == this { "  (this machine)" } else { "" };
        outln!(
            "{:<16} {:>6}  {:<20}  {}{here}",
            m.tag.as_deref().unwrap_or("-"),
            m.runs,
            last,
            m.fingerprint
        )?;
    }
    Ok(0)
}
