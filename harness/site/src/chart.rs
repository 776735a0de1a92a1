//! Charts of the dashboard as inline SVG: a sparkline, the trend of a
//! series over commits, and the resource curves of a run.
//!
//! Written here rather than with plotters: plotters lays out axis labels
//! with a font engine (font-kit or ab_glyph plus font files) that a bare CI
//! machine lacks, and it draws every point as separate elements; here the
//! browser lays out the text, and a series of 1000 commits is a handful of
//! paths, which keeps rendering 60 of them well under a second.

use std::fmt::Write;
use syncbench_model::{Phase, Unit, Verdict};

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

/// Value range with a little headroom; never empty. Values that are not
/// finite are left out (they are drawn as gaps).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    // Nothing but zeros: a padding of 1e-12 made axes of "0.000000000001 %".
    if !lo.is_finite() || (lo == 0.0 && hi == 0.0) {
        return (0.0, 1.0);
    }
    let lo = if lo > 0.0 && lo < (hi - lo) { 0.0 } else { lo };
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-12);
    (
        (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::MIN }),
        hi + pad,
    )
}

/// An axis: its ends, rounded out to ticks, and the ticks with labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<(f64, String)>,
}

/// About `target` ticks over `lo..hi` at 1-2-5 steps of the unit's scale
/// (20 ms, 40 ms; 256 MiB, 512 MiB would be 1-2-5 of bytes, so the steps
/// are taken after scaling: 200 MiB, 400 MiB), all labelled with as many
/// decimals as the step needs.
pub fn axis(lo: f64, hi: f64, unit: Unit, target: usize) -> Axis {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (
            lo - 0.5 * lo.abs().max(1e-12),
            lo + 0.5 * lo.abs().max(1e-12),
        )
    } else {
        (0.0, 1.0)
    };
    let (div, sym) = unit.scale(lo.abs().max(hi.abs()));
    let (a, b) = (lo / div, hi / div);
    let raw = (b - a) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    // The 1-2-5 step nearest the raw one (by ratio).
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .min_by(|p, q| (p / raw).ln().abs().total_cmp(&(q / raw).ln().abs()))
        .unwrap_or(mag);
    let (first, last) = ((a / step + 1e-9).floor(), (b / step - 1e-9).ceil());
    let decimals = (-(step.log10() + 1e-9).floor()).clamp(0.0, 12.0) as usize;
    let ticks = (0..=(last - first) as usize)
        .map(|k| {
            let v = (first + k as f64) * step;
            // -0 would print as "-0".
            let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
            let text = format!("{v:.decimals$}");
            let label = if sym.is_empty() {
                text
            } else {
                format!("{text} {sym}")
            };
            (v * div, label)
        })
        .collect();
    Axis {
        lo: first * step * div,
        hi: last * step * div,
        ticks,
    }
}

/// Runs of consecutive present values as SVG path data; gaps (and values
/// that are not finite) break the line.
fn path(points: impl Iterator<Item = Option<(f64, f64)>>) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for p in points {
        match p.filter(|(x, y)| x.is_finite() && y.is_finite()) {
            Some((x, y)) => {
                let _ = write!(d, "{}{x:.1},{y:.1}", if pen_down { "L" } else { "M" });
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

/// A small line of the last values (gaps where a commit has none); empty
/// with fewer than two values. Sized and stroked by the stylesheet, with
/// whole-pixel x: on the index there is one per series.
pub fn sparkline(values: &[Option<f64>]) -> String {
    let (w, h) = (120.0, 22.0);
    if values.iter().flatten().filter(|v| v.is_finite()).count() < 2 {
        return String::new();
    }
    let (lo, hi) = bounds(values.iter().flatten().copied());
    let n = values.len().max(2) as f64 - 1.0;
    let d = path(values.iter().enumerate().map(|(i, v)| {
        v.map(|v| {
            (
                (2.0 + i as f64 / n * (w - 4.0)).round(),
                h - 2.0 - (v - lo) / (hi - lo) * (h - 4.0),
            )
        })
    }))
    .replace(".0,", ",");
    format!(r#"<svg class="spark" viewBox="0 0 {w} {h}"><path d="{d}"/></svg>"#)
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
        r#"<svg class="spark pairs" viewBox="0 0 {w} {h}" role="img" aria-label="each pair's change"><line x1="0" x2="{w}" y1="{z:.1}" y2="{z:.1}" stroke="currentColor" stroke-opacity="0.4"/><g fill="currentColor">{dots}</g></svg>"#,
        z = y(0.0)
    )
}

/// One commit on a trend chart.
#[derive(Debug, Clone, Copy)]
pub struct TrendPoint {
    pub level: Option<f64>,
    pub min: f64,
    pub max: f64,
    /// The commit was measured and failed (drawn as a mark, not a value).
    pub failed: bool,
}

/// A dot's link and hover text, asked for only for the dots drawn.
pub trait DotInfo {
    /// The commit's page.
    fn href(&self, index: usize) -> String;
    /// Sha, subject, date, value.
    fn title(&self, index: usize) -> String;
    /// Sha and value.
    fn short_title(&self, index: usize) -> String;
    /// A short label of the commit for the time axis: sha and date.
    fn axis_label(&self, index: usize) -> (String, String);
}

/// Another series drawn over a trend (another variant of its point): its
/// name and its value per commit, on the trend's commits.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub name: String,
    pub levels: Vec<Option<f64>>,
}

/// Colours of overlays, after the trend's own line.
const OVERLAY_COLORS: [&str; 6] = [
    "#e08a2e", "#2f9a55", "#9b59c0", "#c0392b", "#16a0a0", "#8a6d3b",
];

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
const PLOT_BOTTOM: f64 = 44.0;

/// Horizontal grid lines and their labels.
fn y_axis(out: &mut String, axis: &Axis, y: &dyn Fn(f64) -> f64, width: f64) {
    for (v, label) in &axis.ticks {
        let yy = y(*v);
        let _ = write!(
            out,
            r#"<line x1="{PLOT_LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            width - PLOT_RIGHT,
            PLOT_LEFT - 6.0,
            yy + 4.0,
            esc(label)
        );
    }
}

/// Commits drawn in one pixel column of a long trend.
#[derive(Clone, Copy)]
struct Column {
    first: usize,
    last: usize,
    /// Lowest and highest value, and the band's ends.
    lo: f64,
    hi: f64,
    min: f64,
    max: f64,
    /// The newest commit with a value, and the newest that failed.
    newest: Option<usize>,
    failed: Option<usize>,
}

impl Column {
    /// The columns a dot stands for, as one (the band's ends are the
    /// first column's: a dot does not draw them).
    fn merged(cols: &[Column]) -> Column {
        cols.iter().skip(1).fold(cols[0], |mut acc, c| {
            acc.last = c.last;
            acc.lo = acc.lo.min(c.lo);
            acc.hi = acc.hi.max(c.hi);
            acc.newest = c.newest.or(acc.newest);
            acc.failed = c.failed.or(acc.failed);
            acc
        })
    }
}

/// Whether a trend of `n` commits is drawn a column per pixel rather
/// than a dot per commit.
pub fn aggregated(n: usize) -> bool {
    n > (960.0 - PLOT_LEFT - PLOT_RIGHT) as usize
}

/// A trend point's value, if it has one that is finite.
fn finite_level(p: &TrendPoint) -> Option<f64> {
    p.level.filter(|v| v.is_finite())
}

/// The commits, in order, binned into `count` columns (one per commit
/// when there are no more commits than that), each with the envelope of
/// its values.
fn columns(points: &[TrendPoint], count: usize) -> Vec<Column> {
    let n = points.len();
    let mut cols: Vec<Column> = Vec::with_capacity(count);
    for (i, p) in points.iter().enumerate() {
        let c = i * count / n.max(1);
        if cols.len() <= c {
            cols.push(Column {
                first: i,
                last: i,
                lo: f64::INFINITY,
                hi: f64::NEG_INFINITY,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                newest: None,
                failed: None,
            });
        }
        let col = cols.last_mut().expect("pushed");
        col.last = i;
        match finite_level(p) {
            Some(v) => {
                col.lo = col.lo.min(v);
                col.hi = col.hi.max(v);
                col.min = col.min.min(p.min);
                col.max = col.max.max(p.max);
                col.newest = Some(i);
            }
            None if p.failed => col.failed = Some(i),
            None => {}
        }
    }
    cols
}

/// A trend chart's layout, shared by the parts that draw it: the commits
/// binned into columns, and where commits and values fall.
struct Trend<'a> {
    points: &'a [TrendPoint],
    overlays: &'a [Overlay],
    columns: Vec<Column>,
    /// Fewer columns than commits: drawn a column per pixel.
    aggregated: bool,
    axis: Axis,
    width: f64,
    height: f64,
    /// The plot's width.
    plot: f64,
    /// Commit indices across the plot (at least one).
    span: f64,
    unit: Unit,
    info: &'a dyn DotInfo,
}

impl<'a> Trend<'a> {
    fn new(
        points: &'a [TrendPoint],
        overlays: &'a [Overlay],
        unit: Unit,
        info: &'a dyn DotInfo,
    ) -> Trend<'a> {
        let (width, height) = (960.0, 320.0);
        let plot = width - PLOT_LEFT - PLOT_RIGHT;
        let (lo, hi) = bounds(
            points
                .iter()
                .filter(|p| finite_level(p).is_some())
                .flat_map(|p| [p.min, p.max])
                .chain(
                    overlays
                        .iter()
                        .flat_map(|o| o.levels.iter().flatten().copied()),
                ),
        );
        let axis = axis(lo, hi, unit, 5);
        let n = points.len();
        let columns = columns(points, n.min(plot as usize).max(1));
        Trend {
            points,
            overlays,
            aggregated: columns.len() < n,
            columns,
            axis,
            width,
            height,
            plot,
            // Positions by commit index, so markers and labels line up
            // with columns.
            span: n.max(2) as f64 - 1.0,
            unit,
            info,
        }
    }

    /// The x of commit index `i` (fractional between commits).
    fn x(&self, i: f64) -> f64 {
        PLOT_LEFT + i / self.span * self.plot
    }

    /// The x of a column: the middle of its commits.
    fn xc(&self, c: &Column) -> f64 {
        self.x((c.first + c.last) as f64 / 2.0)
    }

    /// The y of a value, clamped to the axis.
    fn y(&self, v: f64) -> f64 {
        let axis = &self.axis;
        PLOT_TOP
            + (axis.hi - v.clamp(axis.lo, axis.hi)) / (axis.hi - axis.lo)
                * (self.height - PLOT_TOP - PLOT_BOTTOM)
    }

    /// Band: one closed shape per run of columns with values.
    fn band(&self, s: &mut String) {
        let mut run: Vec<&Column> = Vec::new();
        for c in &self.columns {
            if c.newest.is_some() {
                run.push(c);
            } else {
                self.band_shape(s, &mut run);
            }
        }
        self.band_shape(s, &mut run);
    }

    /// One run's shape of the band, along the tops and back along the
    /// bottoms (nothing for an empty run); empties the run.
    fn band_shape(&self, s: &mut String, run: &mut Vec<&Column>) {
        if run.is_empty() {
            return;
        }
        let mut d = String::new();
        for (k, c) in run.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if k == 0 { "M" } else { "L" },
                self.xc(c),
                self.y(c.max)
            );
        }
        for c in run.iter().rev() {
            let _ = write!(d, "L{:.1},{:.1}", self.xc(c), self.y(c.min));
        }
        let _ = write!(s, r#"<path d="{d}Z" class="band"/>"#);
        run.clear();
    }

    /// The line, through each column's lowest and highest value.
    fn line(&self, s: &mut String) {
        let d = path(self.columns.iter().flat_map(|c| {
            let present = c.newest.is_some();
            let at = |v: f64| present.then(|| (self.xc(c), self.y(v)));
            if self.aggregated && c.lo != c.hi {
                vec![at(c.lo), at(c.hi)]
            } else {
                vec![at(c.lo)]
            }
        }));
        let _ = write!(s, r#"<path d="{d}" class="line"/>"#);
    }

    /// The overlays: each a line through its newest value per column, and
    /// a legend naming it (the trend's own series first, `own`).
    fn overlay_lines(&self, s: &mut String, own: &str) {
        if self.overlays.is_empty() {
            return;
        }
        let mut x = PLOT_LEFT + 4.0;
        let mut legend = |s: &mut String, name: &str, color: &str| {
            let _ = write!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" class="legend" fill="{color}">— {}</text>"#,
                PLOT_TOP - 10.0,
                esc(name)
            );
            x += 24.0 + 6.2 * name.chars().count() as f64;
        };
        legend(s, own, "var(--line)");
        for (k, o) in self.overlays.iter().enumerate() {
            let color = OVERLAY_COLORS[k % OVERLAY_COLORS.len()];
            let d = path(self.columns.iter().map(|c| {
                let v = (c.first..=c.last)
                    .rev()
                    .find_map(|i| o.levels.get(i).copied().flatten())?;
                v.is_finite().then(|| (self.xc(c), self.y(v)))
            }));
            let _ = write!(
                s,
                r#"<path d="{d}" class="overlay" stroke="{color}"><title>{}</title></path>"#,
                esc(&o.name)
            );
            legend(s, &o.name, color);
        }
    }

    /// Change points, as labelled vertical lines.
    fn markers(&self, s: &mut String, markers: &[Marker]) {
        for m in markers {
            let xx = self.x(m.index as f64);
            let _ = write!(
                s,
                r#"<g class="{}"><line x1="{xx:.1}" x2="{xx:.1}" y1="{PLOT_TOP}" y2="{:.1}" class="change"/><text x="{:.1}" y="{:.1}" class="change-label">{}</text></g>"#,
                if m.regression {
                    Verdict::Regression.as_str()
                } else {
                    Verdict::Improvement.as_str()
                },
                self.height - PLOT_BOTTOM,
                xx + 3.0,
                PLOT_TOP - 8.0,
                esc(&m.label)
            );
        }
    }

    /// The dots, and the marks of failed commits where there is no dot.
    fn dots(&self, s: &mut String) {
        let radius = if self.columns.len() > 300 { 1.6 } else { 3.0 };
        s.push_str(r#"<g class="dots">"#);
        // One dot per two columns of a long history: a dot is a link with a
        // hover text, most of the chart's bytes.
        let every = if self.aggregated { 2 } else { 1 };
        for pair in self.columns.chunks(every) {
            let c = &Column::merged(pair);
            if let Some(i) = c.newest {
                self.dot(s, c, i, radius);
            } else if let Some(i) = c.failed {
                self.failed_mark(s, c, i);
            }
        }
        s.push_str("</g>");
    }

    /// A dot for the newest commit `i` with a value of the columns `c`: a
    /// link to its page, titled with the commit, or the columns' range.
    fn dot(&self, s: &mut String, c: &Column, i: usize, radius: f64) {
        let info = self.info;
        // A column's hover text is short: there are hundreds.
        let title = if self.aggregated && c.first != c.last {
            format!(
                "{} commits: {} – {}\nnewest {}",
                c.last - c.first + 1,
                self.unit.human(c.lo),
                self.unit.human(c.hi),
                info.short_title(i)
            )
        } else {
            info.title(i)
        };
        let _ = write!(
            s,
            r#"<a href="{}"><circle cx="{:.1}" cy="{:.1}" r="{radius}"><title>{}</title></circle></a>"#,
            esc(&info.href(i)),
            self.xc(c),
            self.y(self.points[i].level.unwrap_or(c.hi)),
            esc(&title)
        );
    }

    /// A red mark for failed commit `i`, where the columns `c` have no value.
    fn failed_mark(&self, s: &mut String, c: &Column, i: usize) {
        let _ = write!(
            s,
            r#"<a href="{}"><text x="{:.1}" y="{:.1}" class="failed" text-anchor="middle">×<title>{}</title></text></a>"#,
            esc(&self.info.href(i)),
            self.xc(c),
            self.height - PLOT_BOTTOM - 4.0,
            esc(&self.info.title(i))
        );
    }

    /// About eight commits named on the time axis, by sha and date.
    fn time_axis(&self, s: &mut String) {
        let n = self.points.len();
        if n == 0 {
            return;
        }
        let every = n.div_ceil(8).max(1);
        for i in (0..n).filter(|i| i % every == 0 || *i == n - 1) {
            // The last label would collide with the one before it.
            if i == n - 1 && i % every != 0 && i % every < every / 2 {
                continue;
            }
            let (sha, date) = self.info.axis_label(i);
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}<tspan x="{:.1}" dy="13">{}</tspan></text>"#,
                self.x(i as f64),
                self.height - PLOT_BOTTOM + 16.0,
                esc(&sha),
                self.x(i as f64),
                esc(&date)
            );
        }
    }
}

/// The trend of a series over commits in history order: the per-commit
/// value as a line with a dot per commit (each a link with a hover title),
/// the min–max band of its repetitions, failed commits as red marks,
/// commits without a value as gaps, change points as labelled lines.
/// A history longer than the plot is wide is drawn at the screen's
/// resolution: per pixel column the envelope of its commits' values and
/// one dot, for the newest of them, whose title names the range.
pub fn trend(points: &[TrendPoint], markers: &[Marker], unit: Unit, info: &dyn DotInfo) -> String {
    trend_with(points, markers, unit, info, (&[], ""))
}

/// [`trend`] with other series drawn over it (the other variants of its
/// point), and a legend naming its own (`own`) and theirs.
pub fn trend_with(
    points: &[TrendPoint],
    markers: &[Marker],
    unit: Unit,
    info: &dyn DotInfo,
    (overlays, own): (&[Overlay], &str),
) -> String {
    let t = Trend::new(points, overlays, unit, info);
    let (width, height) = (t.width, t.height);
    let mut s = format!(
        r#"<svg class="trend" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="trend over commits">"#
    );
    y_axis(&mut s, &t.axis, &|v| t.y(v), width);
    t.band(&mut s);
    t.overlay_lines(&mut s, own);
    t.line(&mut s);
    t.markers(&mut s, markers);
    t.dots(&mut s);
    t.time_axis(&mut s);
    s.push_str("</svg>");
    s
}

/// One process's samples: (ms since the repetition started, CPU %, RSS bytes).
pub type Samples = Vec<Sample>;
/// (ms since the repetition started, CPU %, RSS bytes).
pub type Sample = (f64, f64, f64);
/// A panel of the resources chart: its label, unit and what it plots.
type Panel = (&'static str, Unit, fn(&Sample) -> f64);

/// Rows of phase labels, so none overlaps another: each label goes on the
/// first row where it fits after the one before it, and a label that fits
/// on none is left to its shaded area's hover title. Label widths are
/// estimated (the browser lays out the text): 6.2 px per character at
/// 11 px, a little more than the average of system-ui.
fn label_rows(starts: &[(f64, usize)], rows: usize) -> Vec<Option<usize>> {
    let mut ends = vec![f64::NEG_INFINITY; rows];
    starts
        .iter()
        .map(|&(x, chars)| {
            let w = chars as f64 * 6.2 + 6.0;
            let row = ends.iter().position(|&e| e <= x)?;
            ends[row] = x + w;
            Some(row)
        })
        .collect()
}

/// The height of a row of phase labels.
const PHASE_ROW: f64 = 13.0;

/// A resources chart's layout, shared by the parts that draw it: its
/// processes, their exact peaks, and the time scale.
struct Resources<'a> {
    processes: &'a [(String, Samples)],
    /// The exact peaks worth drawing: (process, bytes).
    peaks: Vec<(usize, f64)>,
    width: f64,
    /// The height of each panel.
    panel: f64,
    /// The end of the time axis, in ms.
    t_max: f64,
}

impl Resources<'_> {
    /// The x of a time in ms.
    fn x(&self, t: f64) -> f64 {
        PLOT_LEFT + t / self.t_max * (self.width - PLOT_LEFT - PLOT_RIGHT)
    }

    /// The phases shaded over both panels (from `top`), and named on
    /// their label rows.
    fn phases(&self, s: &mut String, phases: &[Phase], rows: &[Option<usize>], top: f64) {
        for (k, (p, row)) in phases.iter().zip(rows).enumerate() {
            let (name, start, end) = (&p.name, p.start_ms, p.end_ms);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{top}" width="{:.1}" height="{:.1}" class="phase p{}"><title>{} ({})</title></rect>"#,
                self.x(start),
                (self.x(end) - self.x(start)).max(0.5),
                2.0 * self.panel - PLOT_TOP,
                k % 2,
                esc(name),
                Unit::Seconds.human((end - start) / 1000.0),
            );
            if let Some(row) = row {
                let _ = write!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" class="phase-label">{}</text>"#,
                    self.x(start) + 2.0,
                    PLOT_TOP - 6.0 + PHASE_ROW * *row as f64,
                    esc(name)
                );
            }
        }
    }

    /// One panel, from `top`: its axis and label, a curve per process,
    /// and on the memory panel the exact peaks.
    fn panel(&self, s: &mut String, top: f64, (label, unit, get): Panel) {
        let bottom = top + self.panel - 30.0;
        let memory = unit == Unit::Bytes;
        let (lo, hi) = bounds(
            self.processes
                .iter()
                .flat_map(|(_, s)| s.iter().map(get))
                .chain([0.0])
                .chain(self.peaks.iter().filter(|_| memory).map(|p| p.1)),
        );
        let axis = axis(lo, hi, unit, 4);
        let y = |v: f64| top + (axis.hi - v) / (axis.hi - axis.lo) * (bottom - top);
        y_axis(s, &axis, &y, self.width);
        let _ = write!(
            s,
            r#"<text x="8" y="{:.1}" class="axis-label">{label}</text>"#,
            top + 12.0
        );
        for (k, (name, samples)) in self.processes.iter().enumerate() {
            let d = path(samples.iter().map(|p| Some((self.x(p.0), y(get(p))))));
            let _ = write!(
                s,
                r#"<path d="{d}" class="proc c{}"><title>{}</title></path>"#,
                k % 4,
                esc(name)
            );
        }
        if memory {
            self.peak_lines(s, &y);
        }
    }

    /// Each process's exact peak memory as a dashed line, at `y`.
    fn peak_lines(&self, s: &mut String, y: &dyn Fn(f64) -> f64) {
        let width = self.width;
        for &(k, peak) in &self.peaks {
            let (yy, text) = (y(peak), format!("peak_rss {}", Unit::Bytes.human(peak)));
            let _ = write!(
                s,
                r#"<g class="peak"><line x1="{PLOT_LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" class="proc c{}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><title>{}: {text} (the kernel's high-water mark)</title></g>"#,
                width - PLOT_RIGHT,
                k % 4,
                width - PLOT_RIGHT - 2.0,
                yy - 3.0,
                esc(&text),
                esc(&self.processes[k].0),
            );
        }
    }

    /// The time axis's labels, along the bottom at `height`.
    fn time_ticks(&self, s: &mut String, time: &Axis, height: f64) {
        for (t, label) in &time.ticks {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
                self.x(t * 1000.0),
                height - 6.0,
                esc(label)
            );
        }
    }
}

/// CPU % and RSS over time of every process of one repetition, on a
/// shared time axis, with the driver's phases shaded and named, and each
/// process's exact peak memory (`peaks`, by process; the kernel's, which
/// the samples miss when it falls between them) as a dashed line.
pub fn resources(
    processes: &[(String, Samples)],
    phases: &[Phase],
    peaks: &[Option<f64>],
) -> String {
    let (width, panel) = (960.0, 170.0);
    let t_end = processes
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .chain(phases.iter().map(|p| p.end_ms))
        .filter(|t| t.is_finite())
        .fold(1.0, f64::max);
    let time = axis(0.0, t_end / 1000.0, Unit::Seconds, 6);
    let chart = Resources {
        processes,
        peaks: peaks
            .iter()
            .enumerate()
            .take(processes.len())
            .filter_map(|(k, p)| p.filter(|p| p.is_finite() && *p > 0.0).map(|p| (k, p)))
            .collect(),
        width,
        panel,
        t_max: time.hi * 1000.0,
    };
    let rows = label_rows(
        &phases
            .iter()
            .map(|p| (chart.x(p.start_ms) + 2.0, p.name.chars().count()))
            .collect::<Vec<_>>(),
        3,
    );
    let used = rows.iter().flatten().max().map_or(1, |r| r + 1);
    let top = PLOT_TOP + PHASE_ROW * (used - 1) as f64;
    let height = top + 2.0 * panel + 6.0;
    let mut s = format!(
        r#"<svg class="resources" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="CPU and memory over time">"#
    );
    chart.phases(&mut s, phases, &rows, top);
    let panels: [Panel; 2] = [
        ("CPU", Unit::Percent, |p| p.1),
        ("RSS", Unit::Bytes, |p| p.2),
    ];
    for (row, p) in panels.into_iter().enumerate() {
        chart.panel(&mut s, top + row as f64 * panel, p);
    }
    chart.time_ticks(&mut s, &time, height);
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Info;
    impl DotInfo for Info {
        fn href(&self, _: usize) -> String {
            "runs/\"x\".html".into()
        }
        fn title(&self, _: usize) -> String {
            "<script>alert(1)</script>".into()
        }
        fn short_title(&self, _: usize) -> String {
            "<script>".into()
        }
        fn axis_label(&self, _: usize) -> (String, String) {
            ("<b>".into(), "2026-01-01".into())
        }
    }

    fn point(v: f64) -> TrendPoint {
        TrendPoint {
            level: Some(v),
            min: v,
            max: v,
            failed: false,
        }
    }

    #[test]
    fn text_from_outside_is_escaped() {
        let svg = trend(&[point(1.0)], &[], Unit::Seconds, &Info);
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("runs/&quot;x&quot;.html"));
    }

    /// Coordinates of an SVG, all finite.
    fn numbers_are_finite(svg: &str) -> bool {
        !svg.contains("NaN") && !svg.contains("inf")
    }

    #[test]
    fn odd_values_draw_a_chart_that_is_not_broken() {
        let odd: Vec<Vec<TrendPoint>> = vec![
            vec![point(3.0)],
            vec![point(2.0); 50],
            vec![
                point(1.0),
                point(f64::NAN),
                point(f64::INFINITY),
                point(2.0),
            ],
            vec![point(0.0), point(-5.0), point(0.0)],
            vec![point(f64::NEG_INFINITY)],
            vec![],
        ];
        for points in odd {
            let svg = trend(&points, &[], Unit::Seconds, &Info);
            assert!(numbers_are_finite(&svg), "{points:?}: {svg}");
            let present = points
                .iter()
                .filter(|p| p.level.is_some_and(f64::is_finite))
                .count();
            assert_eq!(svg.matches("<circle").count(), present, "{points:?}");
        }
        assert!(numbers_are_finite(&sparkline(&[
            Some(f64::NAN),
            Some(1.0),
            None
        ])));
    }

    #[test]
    fn a_long_history_is_drawn_one_column_per_pixel() {
        let points: Vec<TrendPoint> = (0..10_000).map(|i| point(1.0 + (i % 7) as f64)).collect();
        let svg = trend(&points, &[], Unit::Seconds, &Info);
        let dots = svg.matches("<circle").count();
        assert!((400..=432).contains(&dots), "{dots} dots");
        // A dot stands for two columns of 11 or 12 commits, and names
        // their range; the line through each column reaches 1 s and 7 s.
        let titled = (22..=24)
            .map(|k| {
                svg.matches(&format!("{k} commits: 1.00 s – 7.00 s"))
                    .count()
            })
            .sum::<usize>();
        assert_eq!(titled, dots, "dot titles");
        assert!(
            svg.matches("L").count() >= 2 * 864 - 10,
            "a line through every column"
        );
        assert!(svg.len() < 400_000, "{} bytes", svg.len());
    }

    #[test]
    fn ticks_are_1_2_5_steps_in_human_units() {
        let labels = |a: Axis| a.ticks.into_iter().map(|t| t.1).collect::<Vec<_>>();
        assert_eq!(
            labels(axis(0.0, 0.1, Unit::Seconds, 5)),
            ["0 ms", "20 ms", "40 ms", "60 ms", "80 ms", "100 ms"]
        );
        assert_eq!(
            labels(axis(3e-9, 4.1e-9, Unit::Seconds, 5)),
            [
                "3.0 ns", "3.2 ns", "3.4 ns", "3.6 ns", "3.8 ns", "4.0 ns", "4.2 ns"
            ]
        );
        let mib = axis(0.0, 900.0 * 1048576.0, Unit::Bytes, 4);
        assert_eq!(
            labels(mib.clone()),
            [
                "0 MiB", "200 MiB", "400 MiB", "600 MiB", "800 MiB", "1000 MiB"
            ]
        );
        assert_eq!(mib.hi, 1000.0 * 1048576.0);
        assert_eq!(
            labels(axis(120.5, 131.0, Unit::Percent, 5)),
            [
                "120 %", "122 %", "124 %", "126 %", "128 %", "130 %", "132 %"
            ]
        );
        // A flat or empty range still has ticks.
        assert!(!axis(2.0, 2.0, Unit::Count, 5).ticks.is_empty());
        assert!(!axis(f64::NAN, f64::NAN, Unit::Count, 5).ticks.is_empty());
    }

    #[test]
    fn a_cpu_axis_of_zeros_is_labelled_in_whole_steps() {
        let labels = |a: Axis| a.ticks.into_iter().map(|t| t.1).collect::<Vec<_>>();
        let (lo, hi) = bounds([0.0, 0.0].into_iter());
        assert_eq!(
            labels(axis(lo, hi, Unit::Percent, 4)),
            ["0.0 %", "0.2 %", "0.4 %", "0.6 %", "0.8 %", "1.0 %"]
        );
    }

    #[test]
    fn the_exact_peak_is_drawn_where_the_samples_missed_it() {
        let samples: Samples = (0..5).map(|i| (i as f64 * 50.0, 0.0, 2.4e6)).collect();
        let svg = resources(&[("command".into(), samples)], &[], &[Some(51.2e6)]);
        assert!(svg.contains("<g class=\"peak\">"), "{svg}");
        assert!(svg.contains("peak_rss 48.8 MiB"), "{svg}");
        // The RSS axis reaches it.
        assert!(svg.contains(">50 MiB<"), "{svg}");
        assert!(!svg.contains("class=\"phase"), "{svg}");
    }

    #[test]
    fn phase_labels_never_overlap() {
        // Three short phases close together, then a long one: the second
        // and third go on rows of their own.
        let rows = label_rows(&[(100.0, 10), (104.0, 10), (108.0, 10), (400.0, 4)], 3);
        assert_eq!(rows, [Some(0), Some(1), Some(2), Some(0)]);
        // A fourth that fits nowhere is left to its hover title.
        let rows = label_rows(&[(0.0, 10), (1.0, 10), (2.0, 10), (3.0, 10)], 3);
        assert_eq!(rows[3], None);
    }

    #[test]
    fn gaps_break_the_line() {
        assert_eq!(
            path([Some((1.0, 2.0)), None, Some((3.0, 4.0)), Some((5.0, 6.0))].into_iter()),
            "M1.0,2.0M3.0,4.0L5.0,6.0"
        );
    }
}
