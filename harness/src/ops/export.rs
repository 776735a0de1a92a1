//! A commit's stored results for other tools: JSON (every run with its
//! raw values, plus BMF), the Bencher Metric Format, or CSV.

use crate::model::{RunStatus, Series};
use crate::stats;
use crate::store::{Store, StoreError};
use crate::text::csv_text;

/// The formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Bmf,
    Csv,
}

/// Bencher Metric Format: `{benchmark: {measure: {value, lower_value,
/// upper_value}}}`: the median and the range of the repetitions.
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

/// Every run stored for commits starting with `sha`, in `format`, as the
/// text to print.
pub fn export(store: &Store, sha: &str, format: Format) -> Result<String, StoreError> {
    let runs = store.runs(sha)?;
    if format == Format::Csv {
        let mut out =
            "commit,machine,scenario,point,status,metric,unit,direction,repetition,value\n"
                .to_owned();
        for r in &runs {
            for s in store.series(r.id)? {
                for (i, v) in s.values.iter().enumerate() {
                    let cells = [
                        r.commit.as_str(),
                        &r.machine,
                        &r.scenario,
                        &r.point,
                        r.status.as_str(),
                        &s.name,
                        s.unit.as_str(),
                        s.direction.as_str(),
                    ]
                    .map(csv_text);
                    // The repetition and the value are numbers, as they are.
                    out += &format!("{},{i},{v}\n", cells.join(","));
                }
            }
        }
        return Ok(out);
    }
    let mut named = vec![];
    let mut full = vec![];
    for r in &runs {
        let series = store.series(r.id)?;
        let bench = if r.point.is_empty() {
            r.scenario.clone()
        } else {
            format!("{}/{}", r.scenario, r.point)
        };
        full.push(serde_json::json!({"run": r, "metrics": series}));
        if r.status == RunStatus::Ok {
            named.push((bench, series));
        }
    }
    let value = match format {
        Format::Bmf => bmf(&named),
        _ => serde_json::json!({"commit": sha, "runs": full, "bmf": bmf(&named)}),
    };
    Ok(serde_json::to_string_pretty(&value).expect("JSON values serialize") + "\n")
}
