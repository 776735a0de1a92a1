//! `syncbench list`: the scenarios and their points.

use super::{Context, outln};
use syncbench::scenario;

#[derive(clap::Args)]
pub struct Args {
    /// Print the scenarios (name, whether in the default suite, points)
    /// as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let all = scenario::load_dir(&cx.scenarios_dir)?;
    if args.json {
        let v: Vec<_> = all
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "default": s.default,
                    "points": s.points.iter().map(|p| p.key()).collect::<Vec<_>>(),
                    "variants": s.variants.iter().map(|v| serde_json::json!({
                        "name": v.name,
                        "default": v.is_default,
                        "description": v.description,
                        "settings": v.summary(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    for s in all {
        let default = if s.default {
            ""
        } else {
            "  (not in the default suite)"
        };
        outln!(
            "{}  {} repetitions + {} warm-up{default}\n  {}",
            s.name,
            s.repetitions,
            s.warmup,
            s.description
        )?;
        if s.variants.len() > 1 {
            // Each point is measured once per variant (its key gains
            // variant=NAME, but for the default's).
            outln!("  variants:")?;
            for v in &s.variants {
                let about = [v.summary(), v.description.clone()]
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(": ");
                outln!("    {:<12} {about}", v.name)?;
            }
        }
        for p in &s.points {
            let key = if p.0.is_empty() {
                "(no parameters)".into()
            } else {
                p.key()
            };
            outln!("    {key}")?;
        }
    }
    Ok(0)
}
