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
/// second are common in scripts and tests). Stable for equal keys.
pub fn sort_history<T>(
    items: &mut [T],
    sha: impl Fn(&T) -> &str,
    parents: impl Fn(&T) -> &[String],
    time: impl Fn(&T) -> i64,
) {
    let index: HashMap<&str, usize> = items.iter().enumerate().map(|(i, t)| (sha(t), i)).collect();
    let mut depth: Vec<Option<usize>> = vec![None; items.len()];
    // Iterative depth-first search: a long history must not overflow the stack.
    for start in 0..items.len() {
        let mut stack = vec![start];
        while let Some(&i) = stack.last() {
            if depth[i].is_some() {
                stack.pop();
                continue;
            }
            let ps: Vec<usize> = parents(&items[i])
                .iter()
                .filter_map(|p| index.get(p.as_str()).copied())
                .collect();
            match ps
                .iter()
                .find(|&&p| depth[p].is_none() && !stack.contains(&p))
            {
                Some(&p) => stack.push(p),
                None => {
                    depth[i] = Some(
                        ps.iter()
                            .filter_map(|&p| depth[p])
                            .map(|d| d + 1)
                            .max()
                            .unwrap_or(0),
                    );
                    stack.pop();
                }
            }
        }
    }
    let keys: HashMap<String, (i64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (sha(t).to_owned(), (time(t), depth[i].unwrap_or(0))))
        .collect();
    items.sort_by_key(|t| keys[sha(t)]);
}

fn history_order(runs: &mut [&OkRun]) {
    sort_history(runs, |r| &r.sha, |r| &r.parents, |r| r.time_unix);
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
