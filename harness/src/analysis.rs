//! Questions asked of the stored history: which commits changed a series
//! (`regressions`), how two commits compare (`compare`, `check`).

use crate::changepoint;
use crate::metric::{Direction, Series};
use crate::report::{self, Row};
use crate::stats;
use crate::store::{OkRun, Store, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A detected change in a series' history.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The first commit of the new level.
    pub commit: String,
    pub subject_time_unix: i64,
    pub scenario: String,
    pub point: String,
    pub params: serde_json::Value,
    pub metric: String,
    pub unit: &'static str,
    /// `regression` or `improvement`, by the metric's direction.
    pub direction: &'static str,
    pub change_pct: f64,
    pub before: f64,
    pub after: f64,
    /// 1 - the permutation test's p-value.
    pub confidence: f64,
    pub machine: String,
}

/// Orders commits as history: parents before children, by commit time
/// where the stored parent links do not decide (commits made in the same
/// second are common in scripts and tests).
fn history_order(runs: &mut [&OkRun]) {
    let shas: HashMap<&str, &OkRun> = runs.iter().map(|r| (r.sha.as_str(), *r)).collect();
    let mut depth: HashMap<String, usize> = HashMap::new();
    fn depth_of(
        sha: &str,
        shas: &HashMap<&str, &OkRun>,
        memo: &mut HashMap<String, usize>,
    ) -> usize {
        if let Some(&d) = memo.get(sha) {
            return d;
        }
        let d = shas.get(sha).map_or(0, |r| {
            r.parents
                .iter()
                .filter(|p| shas.contains_key(p.as_str()))
                .map(|p| depth_of(p, shas, memo) + 1)
                .max()
                .unwrap_or(0)
        });
        memo.insert(sha.to_owned(), d);
        d
    }
    for r in runs.iter() {
        depth_of(&r.sha, &shas, &mut depth);
    }
    runs.sort_by_key(|r| (r.time_unix, depth[&r.sha], r.id));
}

/// One commit's value in a series' history. For times the fastest
/// repetition: on a shared machine noise only ever adds time (another
/// tenant, a migration between cores), so the minimum moves with the code
/// and far less with the neighbours. Other metrics use the median.
pub fn level(s: &Series) -> f64 {
    match (s.unit, s.direction) {
        (crate::metric::Unit::Seconds, Direction::LowerIsBetter) => {
            s.values.iter().copied().fold(f64::INFINITY, f64::min)
        }
        _ => stats::median(&s.values),
    }
}

/// Change points over every series in the database, newest first.
/// `min_effect(scenario, metric)` is the smallest change of level reported.
pub fn regressions(
    store: &Store,
    min_effect: &dyn Fn(&str, &str) -> f64,
) -> Result<Vec<Change>, StoreError> {
    let runs = store.ok_runs()?;
    let mut groups: BTreeMap<(String, String, String), Vec<&OkRun>> = BTreeMap::new();
    for r in &runs {
        groups
            .entry((r.machine.clone(), r.scenario.clone(), r.point.clone()))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for ((machine, scenario, point), mut history) in groups {
        history_order(&mut history);
        let mut per_metric: BTreeMap<String, (Series, Vec<Option<f64>>)> = BTreeMap::new();
        for (i, run) in history.iter().enumerate() {
            for s in store.series(run.id)? {
                let entry = per_metric
                    .entry(s.name.clone())
                    .or_insert_with(|| (s.clone(), vec![None; history.len()]));
                entry.1[i] = Some(level(&s));
            }
        }
        for (name, (template, medians)) in per_metric {
            if name.starts_with("harness.") {
                continue;
            }
            // Commits without this metric are gaps, not zeros.
            let present: Vec<(usize, f64)> = medians
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.map(|v| (i, v)))
                .collect();
            let values: Vec<f64> = present.iter().map(|p| p.1).collect();
            for step in changepoint::steps(&values, min_effect(&scenario, &name)) {
                let run = history[present[step.index].0];
                let worse = match template.direction {
                    Direction::LowerIsBetter => step.change > 0.0,
                    Direction::HigherIsBetter => step.change < 0.0,
                };
                out.push(Change {
                    commit: run.sha.clone(),
                    subject_time_unix: run.time_unix,
                    scenario: scenario.clone(),
                    point: point.clone(),
                    params: serde_json::from_str(&run.params).unwrap_or_default(),
                    metric: name.clone(),
                    unit: template.unit.as_str(),
                    direction: if worse { "regression" } else { "improvement" },
                    change_pct: step.change * 100.0,
                    before: values[step.index - 1],
                    after: values[step.index],
                    confidence: 1.0 - step.p_value,
                    machine: machine.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| {
        b.subject_time_unix
            .cmp(&a.subject_time_unix)
            .then(a.metric.cmp(&b.metric))
    });
    Ok(out)
}

/// One series compared between two commits.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub machine: String,
    pub scenario: String,
    pub point: String,
    pub rows: Vec<Row>,
}

/// Every series measured at both `base` and `new` (full shas), compared
/// with the two-sample test and the thresholds.
pub fn compare(
    store: &Store,
    base: &str,
    new: &str,
    thresholds: &dyn Fn(&str) -> BTreeMap<String, f64>,
) -> Result<Vec<Compared>, StoreError> {
    let runs = store.ok_runs()?;
    let find = |sha: &str, r: &OkRun| {
        runs.iter()
            .find(|b| {
                b.sha == sha
                    && b.machine == r.machine
                    && b.scenario == r.scenario
                    && b.point == r.point
            })
            .map(|b| b.id)
    };
    let mut out = Vec::new();
    for r in runs.iter().filter(|r| r.sha == new) {
        let Some(base_id) = find(base, r) else {
            continue;
        };
        out.push(Compared {
            machine: r.machine.clone(),
            scenario: r.scenario.clone(),
            point: r.point.clone(),
            rows: report::rows(
                &store.series(r.id)?,
                &store.series(base_id)?,
                &thresholds(&r.scenario),
            ),
        });
    }
    Ok(out)
}

/// The Markdown summary `check` writes for a CI job or a pull request.
pub fn markdown(base: &str, new: &str, compared: &[Compared]) -> String {
    let regressions: Vec<_> = compared
        .iter()
        .flat_map(|c| {
            c.rows
                .iter()
                .filter(|r| r.verdict == "regression")
                .map(move |r| (c, r))
        })
        .collect();
    let mut md = format!(
        "## syncbench: `{}` vs `{}`\n\n",
        &new[..new.len().min(12)],
        &base[..base.len().min(12)]
    );
    if compared.is_empty() {
        md.push_str("No series was measured at both commits.\n");
        return md;
    }
    md.push_str(&if regressions.is_empty() {
        format!("No regression in {} series.\n\n", compared.len())
    } else {
        format!(
            "**{} regression(s)** in {} series.\n\n",
            regressions.len(),
            compared.len()
        )
    });
    md.push_str("| scenario | point | metric | baseline | this | change | p | verdict |\n|---|---|---|---|---|---|---|---|\n");
    for c in compared {
        for r in &c.rows {
            if r.metric.starts_with("harness.") {
                continue;
            }
            let unit = crate::metric::Unit::parse(r.unit).unwrap_or(crate::metric::Unit::Count);
            let mark = match r.verdict {
                "regression" => "🔴 regression",
                "improvement" => "🟢 improvement",
                _ => "within noise",
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:+.1}% | {:.3} | {mark} |\n",
                escape_md(&c.scenario),
                escape_md(&c.point),
                escape_md(&r.metric),
                r.baseline_median.map_or("–".into(), |v| unit.human(v)),
                unit.human(r.median),
                r.change_pct.unwrap_or(0.0),
                r.p_value.unwrap_or(1.0),
            ));
        }
    }
    md
}

fn escape_md(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
