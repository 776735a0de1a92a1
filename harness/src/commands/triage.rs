//! `syncbench triage`: what a person decided about an alarm, stored with
//! who and when; and the precision of the alarms so far.

use super::{Context, outln};
use anyhow::bail;
use syncbench::alarms;
use syncbench::model::Triage;
use syncbench::store::{Store, TriageRecord};

#[derive(clap::Args)]
pub struct Args {
    /// The commit the alarm is at (a revision, or a stored sha prefix).
    #[arg(required_unless_present = "list")]
    commit: Option<String>,
    /// The metric, as `regressions` names it (e.g. wall, upload.server.cpu_user).
    #[arg(required_unless_present = "list")]
    metric: Option<String>,
    /// acknowledged: real and accepted, CI does not fail on it again;
    /// invalid: a false alarm (counts against precision); fixed: real,
    /// fixed by a later commit.
    #[arg(value_enum, required_unless_present = "list")]
    state: Option<State>,
    /// The commit that acknowledged or fixed it.
    #[arg(long, value_name = "SHA")]
    by: Option<String>,
    /// Only the alarm of this scenario [default: the metric in every scenario].
    #[arg(long)]
    scenario: Option<String>,
    /// Why it was decided (e.g. "accepted: the new index costs 5% on
    /// upload"), shown by --list.
    #[arg(long)]
    note: Option<String>,
    /// Who decided [default: git's user.name, else $USER].
    #[arg(long)]
    who: Option<String>,
    /// List the decisions and the alarms' precision instead.
    #[arg(long, conflicts_with_all = ["commit", "metric", "state"])]
    list: bool,
    /// Print the decision recorded (with --list: the decisions and the
    /// precision) as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The states as the command line offers them (the vocabulary itself,
/// `model::Triage`, knows nothing of clap).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum State {
    /// Real and accepted (the price of a feature): CI does not fail on it
    /// again.
    Acknowledged,
    /// Not real: a false alarm. Counts against the alarms' precision.
    Invalid,
    /// Real, and fixed by a later commit.
    Fixed,
}

impl From<State> for Triage {
    fn from(s: State) -> Triage {
        match s {
            State::Acknowledged => Triage::Acknowledged,
            State::Invalid => Triage::Invalid,
            State::Fixed => Triage::Fixed,
        }
    }
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    if args.list {
        let store = cx.store()?;
        return list(&*store, args.json);
    }
    let (Some(commit), Some(metric), Some(state)) =
        (args.commit, args.metric, args.state.map(Triage::from))
    else {
        unreachable!("clap requires them without --list");
    };
    let mut store = cx.store()?;
    let sha = stored_commit(cx, &*store, &commit)?;
    check_metric(&*store, &sha, &metric, args.scenario.as_deref())?;
    let by = match &args.by {
        Some(b) => Some(cx.stored_commit(&*store, b)?),
        None => None,
    };
    if state == Triage::Fixed && by.is_none() {
        bail!("fixed needs --by SHA: the commit that fixed it");
    }
    let record = TriageRecord {
        id: 0,
        commit: sha,
        metric,
        scenario: args.scenario,
        state,
        by,
        who: args.who.unwrap_or_else(|| who(cx)),
        note: args.note,
        created_unix: syncbench::model::unix_now(),
    };
    let id = store.record_triage(&record)?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&TriageRecord { id, ..record })?
        )?;
    } else {
        outln!(
            "{} {} {}: {} by {}",
            &record.commit[..12],
            record.scenario.as_deref().unwrap_or("*"),
            record.metric,
            record.state.as_str(),
            record.who
        )?;
    }
    Ok(0)
}

/// The full sha of a commit with stored runs: a sha prefix of a stored
/// commit, or a revision of the repository that has runs.
fn stored_commit(cx: &Context, store: &Store, arg: &str) -> anyhow::Result<String> {
    let sha = cx.stored_commit(store, arg)?;
    if store.runs(&sha)?.is_empty() {
        bail!(
            "{arg}: no results are stored for commit {}; nothing to triage",
            &sha[..12]
        );
    }
    Ok(sha)
}

/// The metric must have been recorded at the commit (in the scenario).
fn check_metric(
    store: &Store,
    sha: &str,
    metric: &str,
    scenario: Option<&str>,
) -> anyhow::Result<()> {
    let runs: Vec<_> = store
        .runs(sha)?
        .into_iter()
        .filter(|r| scenario.is_none_or(|s| s == r.scenario))
        .collect();
    if runs.is_empty() {
        bail!(
            "no runs of scenario {:?} at {}; nothing to triage",
            scenario.unwrap_or(""),
            &sha[..12]
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for r in &runs {
        for s in store.series(r.id)? {
            if s.name == metric {
                return Ok(());
            }
            names.insert(s.name);
        }
    }
    let close: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(metric) || metric.ends_with(n.as_str()))
        .take(5)
        .collect();
    bail!(
        "no metric {metric:?} at {}{}; `syncbench regressions --all` names the alarms' metrics",
        &sha[..12],
        if close.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {close:?}?)")
        }
    )
}

/// git's user.name of the repository, else $USER.
fn who(cx: &Context) -> String {
    git2::Repository::discover(&cx.root)
        .and_then(|r| r.config())
        .and_then(|c| c.get_string("user.name"))
        .ok()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn list(store: &Store, json: bool) -> anyhow::Result<u8> {
    let triages = store.triages()?;
    let precision = alarms::precision(&triages);
    if json {
        let all = serde_json::json!({ "triage": triages, "precision": precision });
        outln!("{}", serde_json::to_string_pretty(&all)?)?;
        return Ok(0);
    }
    for t in &triages {
        outln!(
            "{} {} {}: {} by {}{}{}",
            &t.commit[..12.min(t.commit.len())],
            t.scenario.as_deref().unwrap_or("*"),
            t.metric,
            t.state.as_str(),
            t.who,
            t.by.as_ref().map_or(String::new(), |b| format!(
                " (commit {})",
                &b[..12.min(b.len())]
            )),
            t.note.as_ref().map_or(String::new(), |n| format!(": {n}"))
        )?;
    }
    outln!("{}", precision_line(precision))?;
    Ok(0)
}

/// "precision 80% (1 of 5 triaged alarms invalid)", or that none are.
pub fn precision_line(p: Option<alarms::Precision>) -> String {
    match p {
        None => "precision: no alarm triaged yet (`syncbench triage SHA METRIC invalid` marks a false one)".to_owned(),
        Some(p) => format!(
            "precision {:.0}% ({} of {} triaged alarms invalid)",
            p.precision * 100.0,
            p.invalid,
            p.triaged
        ),
    }
}
