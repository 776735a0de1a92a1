//! Charts of the dashboard as inline SVG: a sparkline, the trend of a
//! series over commits, and the resource curves of a run.
//!
//! Written here rather than with plotters: plotters lays out axis labels
//! with a font engine (font-kit or ab_glyph plus font files) that a bare CI
//! machine lacks, and it draws every point as separate elements; here the
//! browser lays out the text, and a series of 1000 commits is a handful of
//! paths, which keeps rendering 60 of them well under a second.

use crate::model::{Phase, Unit, Verdict};
use std::fmt::Write;

/// Escapes text for SVG/HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Value range with a little headroom; never empty.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let lo = if lo > 0.0 && lo < (hi - lo) { 0.0 } else { lo };
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-12);
    (
        (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::MIN }),
        hi + pad,
    )
}

/// Runs of consecutive present values as SVG path data; gaps break the line.
fn path(points: impl Iterator<Item = Option<(f64, f64)>>) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for p in points {
        match p {
            Some((x, y)) => {
                let _ = write!(d, "{}{x:.1},{y:.1}", if pen_down { "L" } else { "M" });
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

/// A small line of the last values (gaps where a commit has none).
pub fn sparkline(values: &[Option<f64>]) -> String {
    let (w, h) = (160.0, 36.0);
    let (lo, hi) = bounds(values.iter().flatten().copied());
    let n = values.len().max(2) as f64 - 1.0;
    let d = path(values.iter().enumerate().map(|(i, v)| {
        v.map(|v| {
            (
                2.0 + i as f64 / n * (w - 4.0),
                h - 2.0 - (v - lo) / (hi - lo) * (h - 4.0),
            )
        })
    }));
    format!(
        r#"<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="recent history"><path d="{d}" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>"#
    )
}

/// Each A/B pair's change (B / A − 1) in measuring order, as dots around
/// a zero line: drift, outliers and a change that grew over the run show.
pub fn pairs(a: &[f64], b: &[f64]) -> String {
    let (w, h) = (160.0, 36.0);
    let changes: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, _)| **x > 0.0)
        .map(|(x, y)| y / x - 1.0)
        .collect();
    let (lo, hi) = bounds(changes.iter().copied().chain([0.0]));
    let (lo, hi) = (lo.min(-(hi.abs()) * 0.05), hi);
    let y = |v: f64| h - 2.0 - (v - lo) / (hi - lo) * (h - 4.0);
    let n = changes.len().max(2) as f64 - 1.0;
    let mut dots = String::new();
    for (i, c) in changes.iter().enumerate() {
        let _ = write!(
            dots,
            r#"<circle cx="{:.1}" cy="{:.1}" r="1.6"/>"#,
            2.0 + i as f64 / n * (w - 4.0),
            y(*c)
        );
    }
    format!(
        r#"<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="each pair's change"><line x1="0" x2="{w}" y1="{z:.1}" y2="{z:.1}" stroke="currentColor" stroke-opacity="0.4"/><g fill="currentColor">{dots}</g></svg>"#,
        z = y(0.0)
    )
}

/// One commit on a trend chart.
#[derive(Debug, Clone)]
pub struct TrendPoint {
    pub level: Option<f64>,
    pub min: f64,
    pub max: f64,
    /// Hover text: sha, subject, date, value.
    pub title: String,
    pub href: String,
    /// The commit was measured and failed (drawn as a mark, not a value).
    pub failed: bool,
}

/// A detected change: at which commit, and its label (e.g. "+12.3%").
#[derive(Debug, Clone)]
pub struct Marker {
    pub index: usize,
    pub label: String,
    pub regression: bool,
}

const PLOT_LEFT: f64 = 80.0;
const PLOT_RIGHT: f64 = 16.0;
const PLOT_TOP: f64 = 24.0;
const PLOT_BOTTOM: f64 = 40.0;

/// Y axis ticks with human labels.
fn y_axis(out: &mut String, lo: f64, hi: f64, y: &dyn Fn(f64) -> f64, width: f64, unit: Unit) {
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            out,
            r#"<line x1="{PLOT_LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            width - PLOT_RIGHT,
            PLOT_LEFT - 6.0,
            yy + 4.0,
            esc(&unit.human(v))
        );
    }
}

/// The trend of a series over commits in history order: the per-commit
/// value as a line with a dot per commit (each a link with a hover title),
/// the min–max band of its repetitions, failed commits as red marks,
/// commits without a value as gaps, change points as labelled lines.
pub fn trend(
    points: &[TrendPoint],
    markers: &[Marker],
    unit: Unit,
    x_labels: &[(usize, String)],
) -> String {
    let (width, height) = (960.0, 320.0);
    let (lo, hi) = bounds(
        points
            .iter()
            .filter(|p| p.level.is_some())
            .flat_map(|p| [p.min, p.max]),
    );
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| PLOT_LEFT + i as f64 / n * (width - PLOT_LEFT - PLOT_RIGHT);
    let y = |v: f64| PLOT_TOP + (hi - v) / (hi - lo) * (height - PLOT_TOP - PLOT_BOTTOM);
    let mut s = format!(
        r#"<svg class="trend" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="trend over commits">"#
    );
    y_axis(&mut s, lo, hi, &y, width, unit);
    // Band: one closed shape per run of present values.
    let mut run: Vec<(usize, &TrendPoint)> = Vec::new();
    let flush = |run: &mut Vec<(usize, &TrendPoint)>, s: &mut String| {
        if run.is_empty() {
            return;
        }
        let mut d = String::new();
        for (k, (i, p)) in run.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if k == 0 { "M" } else { "L" },
                x(*i),
                y(p.max)
            );
        }
        for (i, p) in run.iter().rev() {
            let _ = write!(d, "L{:.1},{:.1}", x(*i), y(p.min));
        }
        let _ = write!(s, r#"<path d="{d}Z" class="band"/>"#);
        run.clear();
    };
    for (i, p) in points.iter().enumerate() {
        if p.level.is_some() {
            run.push((i, p));
        } else {
            flush(&mut run, &mut s);
        }
    }
    flush(&mut run, &mut s);
    let d = path(
        points
            .iter()
            .enumerate()
            .map(|(i, p)| p.level.map(|v| (x(i), y(v)))),
    );
    let _ = write!(s, r#"<path d="{d}" class="line"/>"#);
    for m in markers {
        let xx = x(m.index);
        let _ = write!(
            s,
            r#"<g class="{}"><line x1="{xx:.1}" x2="{xx:.1}" y1="{PLOT_TOP}" y2="{:.1}" class="change"/><text x="{:.1}" y="{:.1}" class="change-label">{}</text></g>"#,
            if m.regression {
                Verdict::Regression.as_str()
            } else {
                Verdict::Improvement.as_str()
            },
            height - PLOT_BOTTOM,
            xx + 3.0,
            PLOT_TOP - 8.0,
            esc(&m.label)
        );
    }
    let radius = if points.len() > 300 { 1.6 } else { 3.0 };
    for (i, p) in points.iter().enumerate() {
        let title = esc(&p.title);
        let href = esc(&p.href);
        match p.level {
            Some(v) => {
                let _ = write!(
                    s,
                    r#"<a href="{href}"><circle cx="{:.1}" cy="{:.1}" r="{radius}"><title>{title}</title></circle></a>"#,
                    x(i),
                    y(v)
                );
            }
            None if p.failed => {
                let _ = write!(
                    s,
                    r#"<a href="{href}"><text x="{:.1}" y="{:.1}" class="failed" text-anchor="middle">×<title>{title}</title></text></a>"#,
                    x(i),
                    height - PLOT_BOTTOM - 4.0
                );
            }
            None => {}
        }
    }
    for (i, label) in x_labels {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
            x(*i),
            height - PLOT_BOTTOM + 18.0,
            esc(label)
        );
    }
    s.push_str("</svg>");
    s
}

/// One process's samples: (ms since the repetition started, CPU %, RSS bytes).
pub type Samples = Vec<Sample>;
/// (ms since the repetition started, CPU %, RSS bytes).
pub type Sample = (f64, f64, f64);
/// A panel of the resources chart: its label, unit and what it plots.
type Panel = (&'static str, Unit, fn(&Sample) -> f64);

/// CPU % and RSS over time of every process of one repetition, on a
/// shared time axis, with the driver's phases shaded and named.
pub fn resources(processes: &[(String, Samples)], phases: &[Phase]) -> String {
    let (width, panel) = (960.0, 170.0);
    let height = 2.0 * panel + 30.0;
    let t_max = processes
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .chain(phases.iter().map(|p| p.end_ms))
        .fold(1.0, f64::max);
    let x = |t: f64| PLOT_LEFT + t / t_max * (width - PLOT_LEFT - PLOT_RIGHT);
    let mut s = format!(
        r#"<svg class="resources" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="CPU and memory over time">"#
    );
    for (k, p) in phases.iter().enumerate() {
        let (name, start, end) = (&p.name, &p.start_ms, &p.end_ms);
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{PLOT_TOP}" width="{:.1}" height="{:.1}" class="phase p{}"><title>{} ({:.0} ms)</title></rect><text x="{:.1}" y="{:.1}" class="phase-label">{}</text>"#,
            x(*start),
            (x(*end) - x(*start)).max(0.5),
            2.0 * panel - PLOT_TOP,
            k % 2,
            esc(name),
            end - start,
            x(*start) + 2.0,
            PLOT_TOP - 6.0,
            esc(name)
        );
    }
    let panels: [Panel; 2] = [
        ("CPU", Unit::Percent, |p| p.1),
        ("RSS", Unit::Bytes, |p| p.2),
    ];
    for (row, (label, unit, get)) in panels.into_iter().enumerate() {
        let top = PLOT_TOP + row as f64 * panel;
        let bottom = top + panel - 30.0;
        let (lo, hi) = bounds(
            processes
                .iter()
                .flat_map(|(_, s)| s.iter().map(get))
                .chain([0.0]),
        );
        let y = |v: f64| top + (hi - v) / (hi - lo) * (bottom - top);
        y_axis(&mut s, lo, hi, &y, width, unit);
        let _ = write!(
            s,
            r#"<text x="8" y="{:.1}" class="axis-label">{label}</text>"#,
            top + 12.0
        );
        for (k, (name, samples)) in processes.iter().enumerate() {
            let d = path(samples.iter().map(|p| Some((x(p.0), y(get(p))))));
            let _ = write!(
                s,
                r#"<path d="{d}" class="proc c{}"><title>{}</title></path>"#,
                k % 4,
                esc(name)
            );
        }
    }
    for k in 0..=4 {
        let t = t_max * k as f64 / 4.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
            x(t),
            height - 6.0,
            esc(&Unit::Seconds.human(t / 1000.0))
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_outside_is_escaped() {
        let p = TrendPoint {
            level: Some(1.0),
            min: 1.0,
            max: 1.0,
            title: "<script>alert(1)</script>".into(),
            href: "runs/\"x\".html".into(),
            failed: false,
        };
        let svg = trend(&[p], &[], Unit::Seconds, &[(0, "<b>".into())]);
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("runs/&quot;x&quot;.html"));
    }

    #[test]
    fn gaps_break_the_line() {
        assert_eq!(
            path([Some((1.0, 2.0)), None, Some((3.0, 4.0)), Some((5.0, 6.0))].into_iter()),
            "M1.0,2.0M3.0,4.0L5.0,6.0"
        );
    }
}
