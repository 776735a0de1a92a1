//! `syncbench profile`: where the instructions of one point went at two
//! commits, function by function. Both commits are built in worktrees of
//! their own (as for A/B runs) and the point is run once under callgrind
//! at each; the comparison keeps the functions whose counts changed most,
//! by inclusive and by exclusive (self) count.

use crate::ops::ab;
use crate::ops::session::Session;
pub use crate::profile::{FunctionChange, ProcessTotal, ProfileDiff, diff};
use crate::scenario::{Point, Scenario};
use crate::store::ProfileRecord;
use std::path::Path;

/// Builds both commits, runs `point` under callgrind at each, compares,
/// and stores the comparison.
pub fn run(
    session: &mut Session,
    root: &Path,
    (base_sha, new_sha): (&str, &str),
    scenario: &Scenario,
    point: &Point,
    keep: usize,
) -> anyhow::Result<ProfileDiff> {
    let sides = ab::sides(session, root, (base_sha, new_sha))?;
    let mut profiles = vec![];
    for side in &sides {
        let fail = |f: crate::runner::Failure| {
            anyhow::anyhow!("{} ({}): {}", side.label, &side.sha[..12], f.message)
        };
        side.runner
            .build(scenario, scenario.variant_of(point))
            .map_err(fail)?;
        tracing::info!(
            "{}: {} {} under callgrind",
            side.label,
            scenario.name,
            point.key()
        );
        profiles.push(side.runner.profile(scenario, point).map_err(fail)?);
    }
    let (totals, functions) = diff(&profiles[0], &profiles[1], keep);
    let out = ProfileDiff {
        scenario: scenario.name.clone(),
        point: point.key(),
        base_sha: base_sha.to_owned(),
        new_sha: new_sha.to_owned(),
        totals,
        functions,
    };
    let record = ProfileRecord {
        machine: session.machine().fingerprint(),
        scenario: out.scenario.clone(),
        point: out.point.clone(),
        base_sha: out.base_sha.clone(),
        new_sha: out.new_sha.clone(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        diff: serde_json::to_string(&out)?,
    };
    session.store.record_profile(&record)?;
    Ok(out)
}
