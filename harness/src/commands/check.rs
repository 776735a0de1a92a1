//! `syncbench check`: the CI gate. A commit's stored results against the
//! baseline — the merge base with the baseline branch for a branch or
//! pull request, the newest earlier measured commit on its own line for a
//! commit of the branch itself — (or, with `--run`, both measured now
//! A B A B …); a regression of a noisy metric is measured again,
//! interleaved, before it fails the gate; exit 1 on a regression.

use super::{Context, print_compared};
use anyhow::{Context as _, bail};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use syncbench::abtest::Target;
use syncbench::alarms;
use syncbench::history::{Compared, History};
use syncbench::model::{RunStatus, Verdict};
use syncbench::ops::ab;
use syncbench::ops::baseline::{self, Baseline};
use syncbench::ops::confirm::{Again, measure_again};
use syncbench::ops::load_history;
use syncbench::ops::session::MeasureSettings;
use syncbench::scenario::{DEFAULT_THRESHOLD, ThresholdBook, parse_duration};
use syncbench::text::{Flag, FlagState};

#[derive(clap::Args)]
pub struct Args {
    /// The branch the commit is checked against: a commit off it (a pull
    /// request) is compared with their merge base, a commit on it with
    /// the newest earlier measured commit of its line. With --run: the
    /// commit measured as A.
    #[arg(long, default_value = "main")]
    baseline: String,
    /// The commit to check [default: HEAD].
    #[arg(long)]
    commit: Option<String>,
    /// Write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Fail on a stored regression of a noisy metric (time, CPU, memory)
    /// without measuring both commits again first.
    #[arg(long)]
    no_confirm: bool,
    /// Time per point with a stored regression of a noisy metric: both
    /// commits are measured alternately until the answer is clear, or
    /// for this long (e.g. 3m, 90s). Not with --run (see --budget).
    #[arg(long, default_value = "3m", value_parser = parse_duration, value_name = "DURATION")]
    confirm_budget: Duration,
    /// Only these machines' results: a tag (`syncbench machines`; every
    /// machine with it, each its own series) or a prefix of one
    /// machine's fingerprint [default: every machine's]. Regressions of
    /// other machines than this one are not measured again here.
    #[arg(long = "machine-tag", alias = "machine", value_name = "TAG")]
    machine: Option<String>,
    /// Pass when the commit or the baseline has no results for a scenario
    /// the gate covers (said in the summary). Without it that is exit 4:
    /// a gate never passes on data it does not have.
    #[arg(long)]
    allow_missing: bool,
    #[command(flatten)]
    pub target: super::ab::AbTarget,
}

/// `check`'s exit status when the data to judge is missing.
pub const EXIT_MISSING: u8 = 4;

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let new_rev = args.commit.as_deref().unwrap_or("HEAD");
    if args.target.ab.run {
        return args.target.ab.run_ab(
            cx,
            &args.baseline,
            new_rev,
            &args.target.scenarios,
            args.target.json,
            "check",
            args.summary.as_deref(),
            None,
        );
    }
    if !args.target.scenarios.is_empty() {
        bail!("scenarios are chosen only with --run (check covers every stored result)");
    }
    let store = cx.store()?;
    let new = cx.full_sha(new_rev)?;
    let tip = baseline_tip(cx, &args.baseline)?;
    let only = match &args.machine {
        Some(m) => Some(super::machines::resolve(&store.machines()?, m)?),
        None => None,
    };
    // The checked commit's line (its merge base with the baseline is on
    // it): a commit amended away is never the baseline.
    let on_line = cx.on_line(&new)?;
    let history = load_history(&*store, &|r| {
        on_line(&r.sha)
            && only
                .as_ref()
                .is_none_or(|ms| ms.iter().any(|m| r.key.machine == m.fingerprint))
    })?;
    let base = match base_of(cx, &args, (new_rev, &new), &tip, &history)? {
        Ok(base) => base,
        Err(status) => return Ok(status),
    };
    // Every scenario measured at either commit is gated: one the other
    // lacks is missing data, never a pass.
    let mut gaps = Vec::new();
    if history.scenarios_at(&new).is_empty() {
        gaps.push(unmeasured(cx, new_rev, &new));
    }
    gaps.extend(scenario_gaps(&history, (&base, &new), new_rev));
    if !gaps.is_empty() && !args.allow_missing {
        return missing(&args, &gaps.join("\n"));
    }
    let book = ThresholdBook::load(&cx.scenarios_dir, DEFAULT_THRESHOLD);
    let compared = history.compare(&base, &new, &book);
    print_compared(&compared, args.target.json)?;
    let triages = store.triages()?;
    drop(store);
    let silenced = silenced_between(cx, &base, &new)?;
    let mut flags = flags(&history, &compared, &book, &triages, &silenced);
    // A regression is confirmed by measuring here: only for this machine's.
    let this = syncbench::machine::detect_machine().fingerprint();
    let here = only
        .as_ref()
        .is_none_or(|ms| ms.iter().any(|m| m.fingerprint == this));
    if !here && !args.no_confirm {
        eprintln!(
            "syncbench: --machine names other machines: their regressions are not measured again here"
        );
    }
    let interrupted = !args.no_confirm && here && confirm(cx, &args, &base, &new, &mut flags)?;
    conclude(&args, (&base, &new), &compared, &flags, &gaps, interrupted)
}

/// What the new commit is judged against (`ops::baseline`), or the exit
/// status when there is nothing to judge it against.
fn base_of(
    cx: &Context,
    args: &Args,
    (new_rev, new): (&str, &str),
    tip: &str,
    history: &History,
) -> anyhow::Result<Result<String, u8>> {
    let measured: HashSet<&str> = history
        .runs
        .iter()
        .filter(|r| r.status == RunStatus::Ok)
        .map(|r| r.sha.as_str())
        .collect();
    let status = match baseline::choose(&cx.root, new, tip, &|sha| measured.contains(sha))? {
        Baseline::At(base) => return Ok(Ok(base)),
        Baseline::MergeBaseUnmeasured(mb) => missing(
            args,
            &format!(
                "the baseline, the merge base {} of {new_rev} and {}, has no stored \
                 results in {}: measure it (`syncbench history {}`), or restore the \
                 results database that has them",
                &mb[..12],
                args.baseline,
                cx.db,
                &mb[..12]
            ),
        ),
        // The first results of a line: the start of its history, not
        // missing data, when this commit has some.
        Baseline::NoneEarlier { measured: true } => {
            nothing_to_check(args, "no earlier results on its line")
        }
        Baseline::NoneEarlier { measured: false } => missing(args, &unmeasured(cx, new_rev, new)),
        Baseline::Unrelated => bail!(
            "{new_rev} and {} have no common history; give --baseline a branch it grew from",
            args.baseline
        ),
    };
    status.map(Err)
}

/// That the new commit has no stored results, and what measures it.
fn unmeasured(cx: &Context, new_rev: &str, new: &str) -> String {
    format!(
        "{new_rev} ({}) has no stored results in {}: measure it first \
         (`syncbench run`, or `syncbench history {}`)",
        &new[..12],
        cx.db,
        &new[..12]
    )
}

/// The summary file, the gaps and regressions on stderr, and the exit
/// status: 1 with a failing regression, 130 when Ctrl-C cut the
/// confirmation short.
fn conclude(
    args: &Args,
    (base, new): (&str, &str),
    compared: &[Compared],
    flags: &[Flag],
    gaps: &[String],
    interrupted: bool,
) -> anyhow::Result<u8> {
    if let Some(path) = &args.summary {
        let mut text = syncbench::text::markdown(base, new, compared, flags);
        if !gaps.is_empty() {
            text.push_str("\n**Not checked** (`--allow-missing`):\n\n");
            for g in gaps {
                text.push_str(&format!("- {g}\n"));
            }
        }
        write_summary(path, &text)?;
    }
    for g in gaps {
        eprintln!("syncbench: not checked (--allow-missing): {g}");
    }
    for f in flags.iter().filter(|f| f.verdict == Verdict::Regression) {
        eprintln!(
            "syncbench: {} {} {}: {:+.1}% ({:.1}x its threshold): {}",
            f.scenario,
            f.point,
            f.metric,
            f.change_pct,
            f.significance,
            f.state.describe()
        );
    }
    let failing = flags.iter().filter(|f| f.fails()).count();
    eprintln!(
        "syncbench: {failing} regression(s) against {} @ {}",
        args.baseline,
        &base[..12]
    );
    if interrupted {
        eprintln!("syncbench: interrupted; the regressions not measured again are not confirmed");
        return Ok(130);
    }
    Ok(u8::from(failing > 0))
}

/// The commit `--baseline` names. A CI gate whose baseline is a typo must
/// fail, not pass quietly; the error says how to fetch a branch CI's
/// checkout lacks.
fn baseline_tip(cx: &Context, baseline: &str) -> anyhow::Result<String> {
    cx.full_sha(baseline).with_context(|| {
        // CI's checkout often has the remote's branch only, or not even
        // that (a shallow clone of one ref).
        let remote = format!("origin/{baseline}");
        let fix = if cx.full_sha(&remote).is_ok() {
            format!("the remote's is here: `--baseline {remote}`")
        } else {
            format!(
                "fetch it first (`git fetch origin {baseline}`, then `--baseline origin/{baseline}`; in GitHub Actions, actions/checkout with `fetch-depth: 0`)"
            )
        };
        format!("--baseline {baseline}: no such branch or commit in this repository; {fix}")
    })
}

/// The scenarios measured at one of the two commits and not the other,
/// each with what measures it.
fn scenario_gaps(history: &History, (base, new): (&str, &str), new_rev: &str) -> Vec<String> {
    let (at_base, at_new) = (history.scenarios_at(base), history.scenarios_at(new));
    let mut gaps = Vec::new();
    for s in at_base.difference(&at_new).filter(|_| !at_new.is_empty()) {
        gaps.push(format!(
            "{s}: no results at {new_rev} ({}): measure it (`syncbench run {s}`, or \
             `syncbench history {s} {}`)",
            &new[..12],
            &new[..12]
        ));
    }
    for s in at_new.difference(&at_base) {
        gaps.push(format!(
            "{s}: no results at the baseline {}: measure it (`syncbench history {s} {}`)",
            &base[..12],
            &base[..12]
        ));
    }
    gaps
}

fn nothing_to_check(args: &Args, why: &str) -> anyhow::Result<u8> {
    let msg = format!("{why} to compare with; nothing to check");
    if let Some(path) = &args.summary {
        write_summary(path, &format!("## syncbench\n\n{msg}\n"))?;
    }
    eprintln!("syncbench: {msg}");
    Ok(0)
}

/// The gate lacks data: exit 4 (with `--allow-missing`, 0), the reason
/// in the summary too.
fn missing(args: &Args, why: &str) -> anyhow::Result<u8> {
    let (status, verdict) = if args.allow_missing {
        (0, "passed without checking it (--allow-missing)")
    } else {
        (
            EXIT_MISSING,
            "failed: a gate never passes on data it does not have (--allow-missing to let it)",
        )
    };
    if let Some(path) = &args.summary {
        let lines: String = why.lines().map(|l| format!("- {l}\n")).collect();
        write_summary(
            path,
            &format!("## syncbench: missing results\n\n{lines}\nThe gate {verdict}.\n"),
        )?;
    }
    for l in why.lines() {
        eprintln!("syncbench: {l}");
    }
    eprintln!("syncbench: the gate {verdict}");
    Ok(status)
}

fn write_summary(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing the summary {}", path.display()))
}

/// The commits after `base` up to `new` (`base..new` on `new`'s
/// first-parent line, never commits `base` already has): a triage
/// decision at any of them applies.
fn silenced_between(cx: &Context, base: &str, new: &str) -> anyhow::Result<Vec<String>> {
    Ok(
        syncbench::checkout::resolve(&cx.root, &[format!("{base}..{new}")], None)?
            .into_iter()
            .map(|c| c.sha)
            .collect(),
    )
}

/// The regressions and improvements of a comparison, ranked, each with
/// its state: exact counts are final; noisy metrics wait for
/// confirmation; an alarm acknowledged or marked invalid between the
/// commits does not fail again.
fn flags(
    history: &syncbench::history::History,
    compared: &[Compared],
    book: &ThresholdBook,
    triages: &[syncbench::store::TriageRecord],
    commits: &[String],
) -> Vec<Flag> {
    let mut out = Vec::new();
    for c in compared {
        for r in &c.rows {
            if !matches!(r.verdict, Verdict::Regression | Verdict::Improvement) {
                continue;
            }
            let key = syncbench::model::SeriesKey {
                machine: c.machine.clone(),
                scenario: c.scenario.clone(),
                point: c.point.clone(),
                metric: r.metric.clone(),
            };
            let threshold = history.threshold(&key, book);
            let triage = commits
                .iter()
                .find_map(|sha| alarms::triage_of(triages, sha, &c.scenario, &r.metric))
                .cloned();
            let exact = book.is_exact(&c.scenario, &r.metric);
            let state = match &triage {
                Some(t) if t.state.silences() => FlagState::Triaged(t.state),
                _ if exact => FlagState::Exact,
                _ => FlagState::Unconfirmed,
            };
            out.push(Flag {
                scenario: c.scenario.clone(),
                point: c.point.clone(),
                metric: r.metric.clone(),
                verdict: r.verdict,
                change_pct: r.change_pct.unwrap_or(0.0),
                significance: r.change_pct.unwrap_or(0.0).abs() / 100.0 / threshold.value,
                threshold: threshold.value,
                state,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.verdict != Verdict::Regression)
            .cmp(&(b.verdict != Verdict::Regression))
            .then(b.significance.total_cmp(&a.significance))
    });
    out
}

/// Measures both commits again, interleaved, for every point with an
/// unconfirmed regression, and records each answer in its flag; whether
/// Ctrl-C cut it short.
fn confirm(
    cx: &Context,
    args: &Args,
    base: &str,
    new: &str,
    flags: &mut [Flag],
) -> anyhow::Result<bool> {
    let points = points_to_confirm(flags);
    if points.is_empty() {
        return Ok(false);
    }
    eprintln!(
        "syncbench: measuring {} point(s) again at both commits to confirm their regressions",
        points.len()
    );
    let settings = MeasureSettings::side_by_side(
        args.target.ab.cargo_profile(),
        args.target.ab.cache_dir().cloned(),
    );
    let mut session = cx.session(settings)?;
    let sides = ab::sides(&session, &cx.root, (base, new))?;
    for (scenario, point) in points {
        let s = match syncbench::scenario::find(&cx.scenarios_dir, &scenario) {
            Ok(s) => s,
            Err(e) => {
                unconfirmed(
                    flags,
                    &scenario,
                    &point,
                    FlagState::NotConfirmable(format!("{e}")),
                );
                continue;
            }
        };
        let Some(p) = s.points.iter().find(|p| p.key() == point) else {
            unconfirmed(
                flags,
                &scenario,
                &point,
                FlagState::NotConfirmable(format!("{scenario} has no point {point} now")),
            );
            continue;
        };
        let targets: Vec<Target> = flags
            .iter()
            .filter(|f| {
                f.scenario == scenario
                    && f.point == point
                    && f.state == FlagState::Unconfirmed
                    && f.verdict == Verdict::Regression
            })
            .map(|f| Target {
                metric: f.metric.clone(),
                threshold: f.threshold,
                resolution: None,
            })
            .collect();
        let again = Again {
            scenario: &s,
            point: p,
            commits: (base, new),
            targets,
            budget: args.confirm_budget,
            purpose: "check",
        };
        let results = match measure_again(&mut session, &sides, again)? {
            Ok(results) => results.into_iter().map(|(r, _)| r),
            Err(e) => {
                unconfirmed(flags, &scenario, &point, FlagState::NotConfirmable(e));
                continue;
            }
        };
        for r in results {
            let state = match (r.verdict, &r.error) {
                (Verdict::Failed, Some(e)) => FlagState::NotConfirmable(e.clone()),
                (Verdict::Regression, _) => FlagState::Confirmed(interval(&r)),
                (Verdict::Improvement | Verdict::Unchanged, _) => FlagState::Refuted(interval(&r)),
                _ => FlagState::Inconclusive(interval(&r)),
            };
            if let Some(f) = flags
                .iter_mut()
                .find(|f| f.scenario == scenario && f.point == point && f.metric == r.metric)
            {
                f.state = state;
            }
        }
        if session.interrupted() {
            break;
        }
    }
    Ok(session.interrupted())
}

/// The points with an unconfirmed regression, each once, in rank order.
fn points_to_confirm(flags: &[Flag]) -> Vec<(String, String)> {
    let mut points: Vec<(String, String)> = Vec::new();
    for f in flags
        .iter()
        .filter(|f| f.verdict == Verdict::Regression && f.state == FlagState::Unconfirmed)
    {
        let p = (f.scenario.clone(), f.point.clone());
        if !points.contains(&p) {
            points.push(p);
        }
    }
    points
}

/// Answers the point's flags that are still unconfirmed with `state`.
fn unconfirmed(flags: &mut [Flag], scenario: &str, point: &str, state: FlagState) {
    for f in flags
        .iter_mut()
        .filter(|f| f.scenario == scenario && f.point == point && f.state == FlagState::Unconfirmed)
    {
        f.state = state.clone();
    }
}

fn interval(r: &ab::AbResult) -> String {
    r.estimate.map_or_else(
        || {
            r.stop
                .map_or("no answer".to_owned(), |s| s.describe().to_owned())
        },
        |e| {
            format!(
                "{:+.2}% [{:+.2}%, {:+.2}%] in {} pairs{}",
                e.change * 100.0,
                e.low * 100.0,
                e.high * 100.0,
                r.pairs,
                r.stop
                    .map_or(String::new(), |s| format!(", {}", s.describe()))
            )
        },
    )
}
