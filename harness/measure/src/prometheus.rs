//! The counters of a system under test, read from its Prometheus
//! endpoint at each phase boundary; a phase's metrics are the differences
//! (`PHASE.server.counter.NAME.LABELS`).
//!
//! The parser is ours, for the part of the text exposition format (and
//! OpenMetrics) that counters use: `prometheus-parse`, the crate for it,
//! skips lines it cannot read, so an endpoint answering garbage would
//! pass as "no counters", and it brings chrono and regex for timestamps
//! we ignore. Here any line that is not a comment or a sample is an error.

use std::collections::BTreeMap;
use std::time::Duration;

/// Monotonic samples of one scrape by flattened name: counters, and the
/// `_count`/`_sum` of histograms and summaries. Gauges and buckets are
/// left out (a gauge's difference means nothing; buckets are many).
pub type Counters = BTreeMap<String, f64>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScrapeError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("not the Prometheus text format, line {line}: {text:?}")]
    Format { line: usize, text: String },
}

/// Parses one exposition. Names are `NAME.LABELVALUE…` (label values in
/// label-name order, characters other than letters, digits, `_` and `-`
/// as `_`), with a counter's `_total` dropped.
pub fn parse(text: &str) -> Result<Counters, ScrapeError> {
    let mut types: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = Counters::new();
    let bad = |i: usize, l: &str| ScrapeError::Format {
        line: i + 1,
        text: l.chars().take(80).collect(),
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    return Err(bad(i, line));
                };
                types.insert(name, kind);
            }
            continue;
        }
        let (name, labels, rest) = split_sample(line).ok_or(bad(i, line))?;
        // An OpenMetrics exemplar (`# {trace_id="…"} 0.5`) follows the value.
        let rest = rest.split('#').next().unwrap_or_default();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let value = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok());
        let (true, Some(value)) = (valid_name, value) else {
            return Err(bad(i, line));
        };
        let labels = parse_labels(labels).ok_or(bad(i, line))?;
        let family = |suffix: &str| name.strip_suffix(suffix).filter(|f| !f.is_empty());
        let kept = match family("_total") {
            Some(f) if matches!(types.get(f).or(types.get(name)), Some(&"counter") | None) => {
                Some(f)
            }
            _ if types.get(name) == Some(&"counter") => Some(name),
            _ => ["_count", "_sum"]
                .iter()
                .find_map(|s| {
                    family(s)
                        .filter(|f| matches!(types.get(f), Some(&"histogram") | Some(&"summary")))
                })
                .map(|_| name),
        };
        if let Some(kept) = kept
            && value.is_finite()
        {
            let mut key = kept.to_owned();
            for (_, v) in labels {
                key.push('.');
                key.extend(v.chars().map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                }));
            }
            *out.entry(key).or_default() += value;
        }
    }
    Ok(out)
}

/// `name{labels} rest` or `name rest`: the label set ends at the first
/// `}` outside a quoted value.
fn split_sample(line: &str) -> Option<(&str, &str, &str)> {
    let end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..end];
    if !line[end..].starts_with('{') {
        return Some((name, "", &line[end..]));
    }
    let (mut quoted, mut escaped) = (false, false);
    for (j, c) in line[end + 1..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => {
                let close = end + 1 + j;
                return Some((name, &line[end + 1..close], &line[close + 1..]));
            }
            _ => {}
        }
    }
    None
}

/// `a="x",b="y"` sorted by label name; `None` if malformed.
fn parse_labels(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (j, '"') => break j,
                (_, c) => value.push(c),
            }
        };
        out.insert(name.trim().to_owned(), value);
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(out)
}

/// Reads one endpoint.
pub fn scrape(url: &str, timeout: Duration) -> Result<Counters, ScrapeError> {
    let http = |e: reqwest::Error| ScrapeError::Http {
        url: url.to_owned(),
        message: syncbench_model::error_chain(&e),
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(http)?;
    let resp = client.get(url).send().map_err(http)?;
    if !resp.status().is_success() {
        return Err(ScrapeError::Status {
            url: url.to_owned(),
            status: resp.status().as_u16(),
        });
    }
    parse(&resp.text().map_err(http)?)
}

/// What the counters did between two scrapes: the differences, and the
/// counters that went backwards or vanished (a restarted process), which
/// are reported and never recorded as negative values.
pub fn difference(before: &Counters, after: &Counters) -> (Counters, Vec<String>) {
    let mut out = Counters::new();
    let mut backwards = vec![];
    for (name, now) in after {
        let then = before.get(name).copied().unwrap_or(0.0);
        if *now < then {
            backwards.push(name.clone());
        } else {
            out.insert(name.clone(), now - then);
        }
    }
    backwards.extend(before.keys().filter(|k| !after.contains_key(*k)).cloned());
    (out, backwards)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP requests Requests by route and status.
# TYPE requests counter
requests_total{route="sync/info",status="200"} 12
requests_total{status="404",route="blobs"} 3
# TYPE open_connections gauge
open_connections 7
# TYPE batch histogram
batch_bucket{le="1"} 4
batch_count 9
batch_sum 40.5 1700000000000
# TYPE fsyncs counter
fsyncs_total 5
legacy_total 2
# EOF
"#;

    #[test]
    fn counters_and_histogram_totals_are_kept() {
        let c = parse(TEXT).unwrap();
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            vec![
                ("batch_count".into(), 9.0),
                ("batch_sum".into(), 40.5),
                ("fsyncs".into(), 5.0),
                ("legacy".into(), 2.0),
                ("requests.blobs.404".into(), 3.0),
                ("requests.sync_info.200".into(), 12.0),
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_an_empty_scrape() {
        for bad in [
            "<html>Service unavailable</html>",
            "requests_total{route=\"x\" 3",
            "requests_total twelve",
            "requests_total",
        ] {
            assert!(
                matches!(parse(bad), Err(ScrapeError::Format { line: 1, .. })),
                "{bad}"
            );
        }
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn exemplars_and_braces_in_label_values() {
        let c = parse(
            "# TYPE x counter\nx_total{a=\"b}c\"} 1 # {trace_id=\"t\"} 0.5\nx_total 2 # {t=\"u\"} 9\n",
        )
        .unwrap();
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            vec![("x".into(), 2.0), ("x.b_c".into(), 1.0)]
        );
    }

    #[test]
    fn escaped_label_values() {
        let c = parse("# TYPE x counter\nx_total{path=\"a\\\"b,c\"} 1\n").unwrap();
        assert_eq!(c.keys().collect::<Vec<_>>(), ["x.a_b_c"]);
    }

    #[test]
    fn a_counter_that_goes_backwards_is_reported_not_negative() {
        let before = Counters::from([("a".into(), 10.0), ("b".into(), 5.0), ("gone".into(), 1.0)]);
        let after = Counters::from([("a".into(), 12.0), ("b".into(), 2.0), ("new".into(), 4.0)]);
        let (d, backwards) = difference(&before, &after);
        assert_eq!(d, Counters::from([("a".into(), 2.0), ("new".into(), 4.0)]));
        assert_eq!(backwards, ["b", "gone"]);
    }
}
