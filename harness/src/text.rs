//! Text for people: the tables `run`, `show`, `compare` and `check`
//! print, and the Markdown summary `check` writes for CI.

use crate::analysis::{Compared, Row};
use crate::model::{Verdict, is_harness_metric};
use std::fmt::Write;

/// A plain-text table; units are human, the verdict is marked.
pub fn table(rows: &[Row]) -> String {
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
        let change = match (r.change_pct, r.p_value) {
            (Some(c), Some(p)) => format!("{c:+.1}% p={p:.3}{}", r.verdict.table_mark()),
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

/// The Markdown summary `check` writes for a CI job or a pull request.
pub fn markdown(base: &str, new: &str, compared: &[Compared]) -> String {
    let regressions = compared
        .iter()
        .flat_map(|c| &c.rows)
        .filter(|r| r.verdict == Verdict::Regression)
        .count();
    let mut md = format!(
        "## syncbench: `{}` vs `{}`\n\n",
        &new[..new.len().min(12)],
        &base[..base.len().min(12)]
    );
    if compared.is_empty() {
        md.push_str("No series was measured at both commits.\n");
        return md;
    }
    md.push_str(&if regressions == 0 {
        format!("No regression in {} series.\n\n", compared.len())
    } else {
        format!(
            "**{regressions} regression(s)** in {} series.\n\n",
            compared.len()
        )
    });
    md.push_str("| scenario | point | metric | baseline | this | change | p | verdict |\n|---|---|---|---|---|---|---|---|\n");
    for c in compared {
        for r in c.rows.iter().filter(|r| !is_harness_metric(&r.metric)) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:+.1}% | {:.3} | {} |",
                escape_md(&c.scenario),
                escape_md(&c.point),
                escape_md(&r.metric),
                r.baseline_median.map_or("–".into(), |v| r.unit.human(v)),
                r.unit.human(r.median),
                r.change_pct.unwrap_or(0.0),
                r.p_value.unwrap_or(1.0),
                r.verdict.markdown_mark(),
            );
        }
    }
    md
}

fn escape_md(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
