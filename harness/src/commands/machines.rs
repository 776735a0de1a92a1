//! `syncbench machines`: the machines with results, by tag and fingerprint.

use super::{Context, outln};

#[derive(clap::Args)]
pub struct Args {
    /// Print the machines (tag, fingerprint, hardware, runs) as JSON on
    /// stdout.
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
    let this = syncbench::machine::detect_machine().fingerprint();
    outln!(
        "{:<16} {:>6}  {:<20}  fingerprint",
        "tag",
        "runs",
        "last run"
    )?;
    for m in machines {
        let last = m
            .last_run_unix
            .map_or("-".into(), |t| syncbench::site::date(t as i64));
        let here = if m.fingerprint == this {
            "  (this machine)"
        } else {
            ""
        };
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

/// The machines a `--machine-tag` argument names: every machine with that
/// tag (a pool of machines may share one; each stays its own series), or
/// the one whose fingerprint starts with it; an error lists the machines
/// when none match, or a prefix matches several.
pub fn resolve(
    machines: &[syncbench::store::MachineRow],
    wanted: &str,
) -> anyhow::Result<Vec<syncbench::store::MachineRow>> {
    let by_tag: Vec<_> = machines
        .iter()
        .filter(|m| m.tag.as_deref() == Some(wanted))
        .cloned()
        .collect();
    if !by_tag.is_empty() {
        return Ok(by_tag);
    }
    let found: Vec<_> = machines
        .iter()
        .filter(|m| m.fingerprint.starts_with(wanted))
        .cloned()
        .collect();
    if found.len() == 1 {
        return Ok(found);
    }
    let list: Vec<String> = machines
        .iter()
        .map(|m| format!("  {} {}", m.tag.as_deref().unwrap_or("-"), m.fingerprint))
        .collect();
    anyhow::bail!(
        "--machine-tag {wanted:?} is no machine's tag and {} fingerprint prefix; give one of:\n{}",
        if found.is_empty() {
            "no"
        } else {
            "more than one"
        },
        list.join("\n")
    )
}
