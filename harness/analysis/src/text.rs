//! Text for people: the tables `run`, `show`, `compare` and `check`
//! print, and the Markdown summary `check` writes for CI.

use crate::history::{Compared, Row};
use std::fmt::Write;
use syncbench_model::{Verdict, is_harness_metric};

/// A plain-text table; units are human, the verdict is marked. The change
/// is given relative and absolute (`+6.2% (+1 B)`: a large share of a
/// small value is no large change), from 0 without a percentage, and a
/// significant change too small to count says what it is below.
pub fn table(rows: &[Row]) -> String {
    let change_cell = |r: &Row, c: f64, p: f64, base: f64| {
        let u = r.unit;
        let delta = r.median - base;
        let p_text = p_text(p);
        let size = change_text(r, c, base);
        // Unchanged with a p that counts: too small to count, either
        // against the metric's absolute floor or its threshold.
        let floor = syncbench_model::absolute_floor(&r.metric);
        let mark = match r.verdict {
            Verdict::Unchanged if p < crate::stats::ALPHA && delta.abs() < floor => {
                format!("  (below its {} floor)", u.human(floor))
            }
            Verdict::Unchanged if p < crate::stats::ALPHA => "  (below the threshold)".to_owned(),
            v => v.table_mark().to_owned(),
        };
        format!("{size} {p_text}{mark}")
    };
    let mut lines = vec![[
        "metric".to_owned(),
        "median".into(),
        "± MAD".into(),
        "min – max".into(),
        "CV".into(),
        "vs baseline".into(),
    ]];
    for r in rows {
        let u = r.unit;
        let change = match (r.change_pct, r.p_value, r.baseline_median) {
            (Some(c), Some(p), Some(base)) => change_cell(r, c, p, base),
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

/// A change's size: relative and absolute (`+6.2% (+1 B)`), from 0
/// without a percentage of nothing.
fn change_text(r: &Row, c: f64, base: f64) -> String {
    let u = r.unit;
    let delta = r.median - base;
    let signed = if delta > 0.0 {
        format!("+{}", u.human(delta))
    } else {
        u.human(delta)
    };
    if !c.is_finite() {
        format!("{signed} from 0")
    } else if delta == 0.0 {
        format!("{c:+.1}%")
    } else {
        format!("{c:+.1}% ({signed})")
    }
}

/// A p-value as the tables print it: never `p=0.000`.
fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".to_owned()
    } else {
        format!("p={p:.3}")
    }
}

/// A regression or improvement `check` found, with where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub scenario: String,
    pub point: String,
    pub metric: String,
    pub verdict: Verdict,
    pub change_pct: f64,
    /// The change over its series' threshold: the rank.
    pub significance: f64,
    pub threshold: f64,
    pub state: FlagState,
}

/// Whether a flag stands: measured again, triaged, or final as it is.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagState {
    /// An exact count: no confirming needed.
    Exact,
    /// A noisy metric not measured again (`--no-confirm`).
    Unconfirmed,
    /// Measured again, interleaved: found (the interval).
    Confirmed(String),
    /// Measured again: no change at the threshold.
    Refuted(String),
    /// Measured again: no answer within the budget.
    Inconclusive(String),
    /// Could not be measured again (a build failed, the scenario is gone).
    NotConfirmable(String),
    /// Acknowledged or marked invalid by a person.
    Triaged(syncbench_model::Triage),
}

impl FlagState {
    pub fn describe(&self) -> String {
        match self {
            FlagState::Exact => "exact count".into(),
            FlagState::Unconfirmed => "not confirmed (--no-confirm)".into(),
            FlagState::Confirmed(i) => format!("confirmed: {i}"),
            FlagState::Refuted(i) => format!("refuted: {i}"),
            FlagState::Inconclusive(i) => format!("inconclusive, not failing: {i}"),
            FlagState::NotConfirmable(e) => format!("could not confirm: {e}"),
            FlagState::Triaged(t) => format!("{}, not failing", t.as_str()),
        }
    }
}

impl Flag {
    /// Whether it fails the gate: a regression that is exact, confirmed,
    /// not measured again, or could not be.
    pub fn fails(&self) -> bool {
        self.verdict == Verdict::Regression
            && matches!(
                self.state,
                FlagState::Exact
                    | FlagState::Unconfirmed
                    | FlagState::Confirmed(_)
                    | FlagState::NotConfirmable(_)
            )
    }
}

/// The Markdown summary `check` writes for a CI job or a pull request:
/// the flagged changes ranked (regressions first, by their size against
/// their series' threshold) with where each stands, then every series.
pub fn markdown(base: &str, new: &str, compared: &[Compared], flags: &[Flag]) -> String {
    let failing = flags.iter().filter(|f| f.fails()).count();
    let mut md = format!(
        "## syncbench: `{}` vs `{}`\n\n",
        &new[..new.len().min(12)],
        &base[..base.len().min(12)]
    );
    if compared.is_empty() {
        md.push_str("No series was measured at both commits.\n");
        return md;
    }
    md.push_str(&if failing == 0 {
        format!("No regression in {} series.\n\n", compared.len())
    } else {
        format!(
            "**{failing} regression(s)** in {} series.\n\n",
            compared.len()
        )
    });
    if !flags.is_empty() {
        md.push_str("| | scenario | point | metric | change | × threshold | state |\n|---|---|---|---|---|---|---|\n");
        for f in flags {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.1} (±{:.1}%) | {} |",
                if f.fails() {
                    "🔴"
                } else if f.verdict == Verdict::Regression {
                    "⚪"
                } else {
                    "🟢"
                },
                escape_md(&f.scenario),
                escape_md(&f.point),
                escape_md(&f.metric),
                if f.change_pct.is_finite() {
                    format!("{:+.1}%", f.change_pct)
                } else {
                    "from 0".to_owned()
                },
                f.significance,
                f.threshold * 100.0,
                escape_md(&f.state.describe()),
            );
        }
        md.push('\n');
    }
    if let Some(note) = too_few_note(compared.iter().flat_map(|c| &c.rows)) {
        let _ = writeln!(md, "❔ {note}\n");
    }
    md.push_str("<details><summary>Every series</summary>\n\n");
    md.push_str("| scenario | point | metric | baseline | this | change | p | verdict |\n|---|---|---|---|---|---|---|---|\n");
    for c in compared {
        for r in c.rows.iter().filter(|r| !is_harness_metric(&r.metric)) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                escape_md(&c.scenario),
                escape_md(&c.point),
                escape_md(&r.metric),
                r.baseline_median.map_or("–".into(), |v| r.unit.human(v)),
                r.unit.human(r.median),
                match (r.change_pct, r.baseline_median) {
                    (Some(c), Some(base)) => change_text(r, c, base),
                    _ => "–".to_owned(),
                },
                r.p_value.map_or("–".to_owned(), |p| {
                    p_text(p).trim_start_matches("p=").to_owned()
                }),
                r.verdict.markdown_mark(),
            );
        }
    }
    md.push_str("\n</details>\n");
    md
}

fn escape_md(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What to say when some changes were as large as count but the values
/// behind them could not show it (Mann-Whitney's smallest p with that
/// many values is not below 0.05): how many, and what would decide.
pub fn too_few_note<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Option<String> {
    let rows: Vec<&Row> = rows
        .into_iter()
        .filter(|r| r.verdict == Verdict::Inconclusive)
        .collect();
    let fewest = rows.iter().map(|r| r.values.len()).min()?;
    let need = crate::stats::repetitions_for(crate::stats::ALPHA);
    Some(format!(
        "{} change(s) as large as the threshold could not be judged: with {fewest} value(s) a \
         side, Mann-Whitney cannot go below p = {:.3} (0.05 needs {need} a side). Measure with \
         more repetitions (`--repetitions {need}` or `repetitions = {need}` in the scenario), or \
         compare both commits now, interleaved: `syncbench compare A B --run`.",
        rows.len(),
        crate::stats::min_p(fewest, fewest),
    ))
}

/// A text cell of CSV (never a number: those are written as numbers, so
/// -3.5 stays a value). Quoted when it holds a comma, a quote or a line
/// break; and one that starts as a formula would (`=`, `+`, `-`, `@`, a
/// tab or a carriage return) is prefixed with `'` and quoted, as OWASP's
/// CSV injection advice says: a spreadsheet shows it as text instead of
/// evaluating it, and quoting alone does not stop that.
pub fn csv_text(s: &str) -> String {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula || s.contains([',', '"', '\n', '\r']) {
        format!(
            "\"{}{}\"",
            if formula { "'" } else { "" },
            s.replace('"', "\"\"")
        )
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::rows;
    use syncbench_model::{Direction, Series, Unit};

    /// The summary CI shows: a change from 0 is no `+inf%`, and a p below
    /// 0.001 no `0.000`, in either table.
    #[test]
    fn the_summary_says_from_0_and_never_p_0() {
        let series = |values: &[f64]| Series {
            name: "command.peak_rss".into(),
            unit: Unit::Bytes,
            direction: Direction::LowerIsBetter,
            values: values.to_vec(),
        };
        let compared = [Compared {
            machine: "m".into(),
            scenario: "s".into(),
            point: "n=1".into(),
            rows: rows(
                &[series(&[1_048_576.0; 12])],
                &[series(&[0.0; 12])],
                &|_| 0.05,
            ),
        }];
        let flag = Flag {
            scenario: "s".into(),
            point: "n=1".into(),
            metric: "command.peak_rss".into(),
            verdict: Verdict::Regression,
            change_pct: f64::INFINITY,
            significance: f64::INFINITY,
            threshold: 0.05,
            state: FlagState::Unconfirmed,
        };
        let md = markdown("a", "b", &compared, &[flag]);
        assert!(!md.contains("inf%") && !md.contains("0.000"), "{md}");
        assert!(
            md.contains("+1.00 MiB from 0") && md.contains("<0.001"),
            "{md}"
        );
    }
}

#[cfg(test)]
mod csv_tests {
    use super::csv_text;

    #[test]
    fn csv_cells_are_quoted_when_needed_and_never_formulas() {
        assert_eq!(csv_text("plain"), "plain");
        assert_eq!(csv_text(""), "");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("two\nlines"), "\"two\nlines\"");
        assert_eq!(
            csv_text("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        for (cell, out) in [
            ("@SUM(1)", "\"'@SUM(1)\""),
            ("-cmd", "\"'-cmd\""),
            ("+1", "\"'+1\""),
            ("\tx", "\"'\tx\""),
            ("\rx", "\"'\rx\""),
        ] {
            assert_eq!(csv_text(cell), out);
        }
        // Further in, those characters are text as they are.
        assert_eq!(csv_text("a=b-c@d"), "a=b-c@d");
    }
}
