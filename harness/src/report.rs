//! What `run`, `show` and `export` print.

use crate::metric::Series;
use crate::stats::{self, Comparison};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One metric's row in the table after a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub metric: String,
    pub unit: &'static str,
    pub direction: &'static str,
    pub values: Vec<f64>,
    pub median: f64,
    pub mad: f64,
    pub min: f64,
    pub max: f64,
    pub cv: f64,
    pub baseline_median: Option<f64>,
    pub change_pct: Option<f64>,
    pub p_value: Option<f64>,
    /// `regression`, `improvement`, `unchanged`, `no_baseline`, or
    /// `informational` (the harness's own metrics, never gated on).
    pub verdict: &'static str,
}

/// Smallest relative change that counts for `metric`: the scenario's
/// setting for the full name, else for its last part, else 5%.
pub fn threshold(thresholds: &BTreeMap<String, f64>, metric: &str) -> f64 {
    thresholds
        .get(metric)
        .or_else(|| {
            metric
                .rsplit('.')
                .next()
                .and_then(|last| thresholds.get(last))
        })
        .copied()
        .unwrap_or(0.05)
}

pub fn rows(new: &[Series], baseline: &[Series], thresholds: &BTreeMap<String, f64>) -> Vec<Row> {
    new.iter()
        .map(|s| {
            let base = baseline.iter().find(|b| b.name == s.name);
            let cmp: Option<Comparison> =
                base.map(|b| stats::compare(&b.values, &s.values, threshold(thresholds, &s.name)));
            let worse = |c: &Comparison| match s.direction {
                crate::metric::Direction::LowerIsBetter => c.change > 0.0,
                crate::metric::Direction::HigherIsBetter => c.change < 0.0,
            };
            Row {
                metric: s.name.clone(),
                unit: s.unit.as_str(),
                direction: s.direction.as_str(),
                values: s.values.clone(),
                median: stats::median(&s.values),
                mad: stats::mad(&s.values),
                min: s.values.iter().copied().fold(f64::INFINITY, f64::min),
                max: s.values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                cv: stats::cv(&s.values),
                baseline_median: base.map(|b| stats::median(&b.values)),
                change_pct: cmp.as_ref().map(|c| c.change * 100.0),
                p_value: cmp.as_ref().map(|c| c.p_value),
                verdict: match &cmp {
                    // The harness's own cost is shown, never gated on.
                    Some(_) if s.name.starts_with("harness.") => "informational",
                    None => "no_baseline",
                    Some(c) if !c.changed => "unchanged",
                    Some(c) if worse(c) => "regression",
                    Some(_) => "improvement",
                },
            }
        })
        .collect()
}

/// A plain-text table; units are human, the verdict is marked.
pub fn table(rows: &[Row]) -> String {
    let unit = |r: &Row| crate::metric::Unit::parse(r.unit).unwrap_or(crate::metric::Unit::Count);
    let mut lines = vec![[
        "metric".to_owned(),
        "median".into(),
        "± MAD".into(),
        "min – max".into(),
        "CV".into(),
        "vs baseline".into(),
    ]];
    for r in rows {
        let u = unit(r);
        let change = match (r.change_pct, r.p_value) {
            (Some(c), Some(p)) => {
                let mark = match r.verdict {
                    "regression" => "  REGRESSION",
                    "improvement" => "  improvement",
                    "informational" => "  (harness, not gated)",
                    _ => "  (within noise)",
                };
                format!("{c:+.1}% p={p:.3}{mark}")
            }
            _ => "no baseline".into(),
        };
        lines.push([
            r.metric.clone(),
            u.human(r.median),
            u.human(r.mad),
            format!("{} – {}", u.human(r.min), u.human(r.max)),
            format!("{:.1}%", r.cv * 100.0),
            change,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, l) in lines.iter().enumerate() {
        for (i, cell) in l.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i == 0 || i == 5 {
                let _ = write!(out, "{cell}{}", " ".repeat(if i == 5 { 0 } else { pad }));
            } else {
                let _ = write!(out, "{}{cell}", " ".repeat(pad));
            }
            if i < 5 {
                out.push_str("  ");
            }
        }
        out.push('\n');
        if n == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 10));
            out.push('\n');
        }
    }
    out
}

/// Bencher Metric Format: `{benchmark: {measure: {value, lower_value, upper_value}}}`.
pub fn bmf(runs: &[(String, Vec<Series>)]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (bench, series) in runs {
        let mut measures = serde_json::Map::new();
        for s in series {
            let min = s.values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = s.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            measures.insert(
                s.name.clone(),
                serde_json::json!({ "value": stats::median(&s.values), "lower_value": min, "upper_value": max }),
            );
        }
        out.insert(bench.clone(), serde_json::Value::Object(measures));
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{Direction, Unit};

    fn series(name: &str, values: &[f64]) -> Series {
        Series {
            name: name.into(),
            unit: Unit::Percent,
            direction: Direction::LowerIsBetter,
            values: values.to_vec(),
        }
    }

    // Regression test: the sampler's own CPU share once failed a `check`.
    #[test]
    fn harness_metrics_are_never_a_regression() {
        let base = [
            series("harness.sampler_cpu", &[0.5, 0.51, 0.49, 0.5, 0.52]),
            series("wall", &[1.0, 1.01, 0.99, 1.0, 1.02]),
        ];
        let new = [
            series("harness.sampler_cpu", &[0.9, 0.91, 0.89, 0.9, 0.92]),
            series("wall", &[2.0, 2.01, 1.99, 2.0, 2.02]),
        ];
        let rows = rows(&new, &base, &BTreeMap::new());
        assert_eq!(rows[0].verdict, "informational");
        assert_eq!(rows[1].verdict, "regression");
    }
}
