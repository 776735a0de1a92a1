//! Results from other tools: criterion's output directory and the Bencher
//! Metric Format (BMF). Everything is parsed and checked before anything
//! is stored, so a bad file stores nothing.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use syncbench_model::{Direction, Series, Unit};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON of the expected shape")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}: {why} (this reader knows criterion 0.8's output; was it written by another version?)"
    )]
    Shape { path: PathBuf, why: String },
    #[error("{path}: {why}")]
    Bmf { path: PathBuf, why: String },
    #[error(
        "{path}: no unit known for measure {measure:?} of {bench:?}; known: latency (ns), throughput (ops/s), file-size (B), build-time (s), and syncbench's own metric names (…wall, …cpu_user, …peak_rss, …throughput, …)"
    )]
    UnknownUnit {
        path: PathBuf,
        bench: String,
        measure: String,
    },
    #[error("{0} holds no criterion results (no */new/benchmark.json); run `cargo bench` first")]
    Empty(PathBuf),
}

/// One benchmark's results, ready to be recorded as a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub scenario: String,
    pub point: String,
    pub metrics: Vec<Series>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, IngestError> {
    let text = std::fs::read_to_string(path).map_err(|source| IngestError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| IngestError::Json {
        path: path.to_owned(),
        source,
    })
}

#[derive(Deserialize)]
struct CriterionBenchmark {
    full_id: String,
    throughput: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct CriterionSample {
    sampling_mode: String,
    iters: Vec<f64>,
    times: Vec<f64>,
}

/// Reads every benchmark under criterion's output directory (default
/// `target/criterion`): each `…/new/` holds `benchmark.json` (ids,
/// throughput) and `sample.json` (iterations and total nanoseconds per
/// sample). Each sample becomes one value: seconds per iteration, and
/// MB/s or elements/s where a throughput is declared.
pub fn criterion(dir: &Path) -> Result<Vec<Ingested>, IngestError> {
    criterion_since(dir, std::time::SystemTime::UNIX_EPOCH)
}

/// As [`criterion`], for the benchmarks whose samples were written at or
/// after `since` (the ones a `cargo bench` just ran); none is not an error.
pub fn criterion_since(
    dir: &Path,
    since: std::time::SystemTime,
) -> Result<Vec<Ingested>, IngestError> {
    let everything = since == std::time::SystemTime::UNIX_EPOCH;
    let mut found = vec![];
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // No criterion directory yet: nothing ran.
            Err(e) if !everything && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(IngestError::Io {
                    path: d.clone(),
                    source,
                });
            }
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir()
                && p.file_name().is_some_and(|n| n == "new")
                && p.join("benchmark.json").is_file()
            {
                let fresh = std::fs::metadata(p.join("sample.json"))
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since);
                if everything || fresh {
                    found.push(p);
                }
            } else if p.is_dir() && p.file_name().is_some_and(|n| n != "report" && n != "base") {
                todo.push(p);
            }
        }
    }
    if found.is_empty() && everything {
        return Err(IngestError::Empty(dir.to_owned()));
    }
    found.sort();
    found.iter().map(|d| criterion_one(d)).collect()
}

fn criterion_one(dir: &Path) -> Result<Ingested, IngestError> {
    let bench_path = dir.join("benchmark.json");
    let sample_path = dir.join("sample.json");
    let bench: CriterionBenchmark = read_json(&bench_path)?;
    let sample: CriterionSample = read_json(&sample_path)?;
    let shape = |why: String| IngestError::Shape {
        path: sample_path.clone(),
        why,
    };
    if !matches!(sample.sampling_mode.as_str(), "Linear" | "Flat") {
        return Err(shape(format!(
            "unknown sampling_mode {:?}",
            sample.sampling_mode
        )));
    }
    if sample.iters.is_empty() || sample.iters.len() != sample.times.len() {
        return Err(shape(format!(
            "{} iteration counts for {} times",
            sample.iters.len(),
            sample.times.len()
        )));
    }
    if sample.iters.iter().any(|&i| i <= 0.0)
        || sample.times.iter().any(|&t| t < 0.0 || !t.is_finite())
    {
        return Err(shape("non-positive iteration count or invalid time".into()));
    }
    let per_iter: Vec<f64> = sample
        .times
        .iter()
        .zip(&sample.iters)
        .map(|(t, i)| t / i / 1e9)
        .collect();
    let mut metrics = vec![Series {
        name: "time".into(),
        unit: Unit::Seconds,
        direction: Direction::LowerIsBetter,
        values: per_iter.clone(),
    }];
    match &bench.throughput {
        None | Some(serde_json::Value::Null) => {}
        Some(t) => {
            let (kind, amount) = t
                .as_object()
                .and_then(|o| o.iter().next())
                .and_then(|(k, v)| v.as_f64().map(|n| (k.as_str(), n)))
                .ok_or_else(|| IngestError::Shape {
                    path: bench_path.clone(),
                    why: format!("throughput {t} is not {{\"Bytes\": N}} or {{\"Elements\": N}}"),
                })?;
            let (unit, scale) = match kind {
                "Bytes" | "BytesDecimal" => (Unit::MegabytesPerSecond, 1e-6),
                "Elements" => (Unit::OpsPerSecond, 1.0),
                other => {
                    return Err(IngestError::Shape {
                        path: bench_path.clone(),
                        why: format!("unknown throughput kind {other:?}"),
                    });
                }
            };
            metrics.push(Series {
                name: "throughput".into(),
                unit,
                direction: Direction::HigherIsBetter,
                values: per_iter.iter().map(|s| amount * scale / s).collect(),
            });
        }
    }
    Ok(Ingested {
        scenario: "criterion".into(),
        point: bench.full_id,
        metrics,
    })
}

/// The unit (and scale to it) of a BMF measure: Bencher's built-in
/// measures, then syncbench's own metric names (what `export --format
/// bmf` writes).
fn bmf_unit(measure: &str) -> Option<(Unit, Direction, f64)> {
    use Direction::{HigherIsBetter as H, LowerIsBetter as L};
    let last = measure.rsplit('.').next().unwrap_or(measure);
    Some(match (measure, last) {
        ("latency", _) => (Unit::Seconds, L, 1e-9),
        ("throughput", _) => (Unit::OpsPerSecond, H, 1.0),
        ("file-size", _) => (Unit::Bytes, L, 1.0),
        ("build-time", _) => (Unit::Seconds, L, 1.0),
        (m, _) if m.contains(".server.counter.") || m.contains(".http.requests.") => {
            (Unit::Count, L, 1.0)
        }
        (_, "wall" | "cpu_user" | "cpu_sys" | "time" | "callgrind_wall") => (Unit::Seconds, L, 1.0),
        (_, "rchar" | "wchar" | "read_bytes" | "write_bytes" | "sent" | "received") => {
            (Unit::Bytes, L, 1.0)
        }
        (_, "syscr" | "syscw" | "requests" | "retries") => (Unit::Count, L, 1.0),
        (_, "peak_rss") => (Unit::Bytes, L, 1.0),
        (_, "throughput") => (Unit::MegabytesPerSecond, H, 1.0),
        (_, "ops") => (Unit::OpsPerSecond, H, 1.0),
        (_, "instructions" | "cycles") => (Unit::Count, L, 1.0),
        (_, "sampler_cpu") => (Unit::Percent, L, 1.0),
        _ => return None,
    })
}

/// A BMF measure: a value and optionally the bounds around it.
#[derive(Deserialize)]
struct BmfMeasure {
    value: f64,
    lower_value: Option<f64>,
    upper_value: Option<f64>,
}

impl BmfMeasure {
    /// The values stored for the measure. BMF carries a summary, not the
    /// repetitions: with bounds it is stored as `[lower, value, upper]`,
    /// whose median is the value and whose range is the bounds, so
    /// `export --format bmf` gives back exactly what was ingested (a
    /// missing bound is the value itself).
    fn values(&self) -> Result<Vec<f64>, String> {
        let (lo, hi) = (
            self.lower_value.unwrap_or(self.value),
            self.upper_value.unwrap_or(self.value),
        );
        if ![self.value, lo, hi].iter().all(|v| v.is_finite()) {
            return Err("value, lower_value and upper_value must be finite numbers".into());
        }
        if !(lo <= self.value && self.value <= hi) {
            return Err(format!(
                "lower_value {lo} <= value {} <= upper_value {hi} does not hold",
                self.value
            ));
        }
        Ok(
            if self.lower_value.is_none() && self.upper_value.is_none() {
                vec![self.value]
            } else {
                vec![lo, self.value, hi]
            },
        )
    }
}

/// Reads a BMF file: `{benchmark: {measure: {value, lower_value?,
/// upper_value?}}}`. A benchmark named `scenario/point` keeps that split.
pub fn bmf(path: &Path) -> Result<Vec<Ingested>, IngestError> {
    let doc: std::collections::BTreeMap<String, std::collections::BTreeMap<String, BmfMeasure>> =
        read_json(path)?;
    let mut out = vec![];
    for (bench, measures) in doc {
        let (scenario, point) = bench.split_once('/').unwrap_or((&bench, ""));
        let mut metrics = vec![];
        for (measure, m) in measures {
            let (unit, direction, scale) =
                bmf_unit(&measure).ok_or_else(|| IngestError::UnknownUnit {
                    path: path.to_owned(),
                    bench: bench.clone(),
                    measure: measure.clone(),
                })?;
            let values = m.values().map_err(|why| IngestError::Bmf {
                path: path.to_owned(),
                why: format!("{bench} {measure}: {why}"),
            })?;
            metrics.push(Series {
                name: measure,
                unit,
                direction,
                values: values.into_iter().map(|v| v * scale).collect(),
            });
        }
        out.push(Ingested {
            scenario: scenario.to_owned(),
            point: point.to_owned(),
            metrics,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `export --format bmf` of any run ingests back with its units.
    #[test]
    fn every_kind_of_syncbench_metric_has_a_bmf_unit() {
        for (name, unit) in [
            ("upload.server.instructions", Unit::Count),
            ("server.io.wchar", Unit::Bytes),
            ("download.driver.io.syscw", Unit::Count),
            ("upload.http.requests", Unit::Count),
            ("upload.http.requests.send", Unit::Count),
            ("upload.http.sent", Unit::Bytes),
            ("upload.http.retries", Unit::Count),
            ("upload.server.counter.blob_bytes_written.file", Unit::Count),
            ("harness.callgrind_wall", Unit::Seconds),
        ] {
            assert_eq!(bmf_unit(name).map(|u| u.0), Some(unit), "{name}");
        }
    }
}
