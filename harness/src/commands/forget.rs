//! `syncbench forget`: removes results from the store (a scenario, one of
//! its points, a metric, the runs of a commit, or what these select
//! together) after showing what goes and asking; the store removes it in
//! one transaction and records that it did.

use super::{Context, outln};
use anyhow::bail;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use syncbench::store::{
    ForgetCounts, ForgetPlan, ForgetRecord, ForgetSelector, MachineRow, RunRow, Store,
};

#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("what")
        .args(["scenario", "commit", "metric", "machine", "list"])
        .multiple(true)
        .required(true)
))]
pub struct Args {
    /// The scenario to forget, by the name its results are stored under
    /// (it need not be in scenarios/ any more) [default: every scenario,
    /// with --commit, --metric or --machine-tag].
    scenario: Option<String>,
    /// Only this point of SCENARIO, by its key (e.g. n=1000, as `syncbench
    /// show` prints it).
    #[arg(long, value_name = "KEY", requires = "scenario")]
    point: Option<String>,
    /// Only this metric's values (e.g. wall, server.peak_rss): the runs
    /// stay, with their other metrics.
    #[arg(long, value_name = "NAME")]
    metric: Option<String>,
    /// Only the runs of this commit: a revision (HEAD~2, a tag) or a
    /// prefix of a stored commit's sha, which the repository need not
    /// have (a commit amended or rebased away).
    #[arg(long, value_name = "REV")]
    commit: Option<String>,
    /// Only these machines' results: a tag (`syncbench machines`; every
    /// machine with it) or a prefix of one machine's fingerprint
    /// [default: every machine's].
    #[arg(long = "machine-tag", alias = "machine", value_name = "TAG")]
    machine: Option<String>,
    /// Forget without asking; needed where stdin is not a terminal
    /// (scripts, CI).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Only show what would be forgotten; change nothing.
    #[arg(long, conflicts_with = "yes")]
    dry_run: bool,
    /// Print what was forgotten (with --dry-run: what would be; with
    /// --list: the records) as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// List what earlier forgets removed (when, who, the command line,
    /// the selection, how much) instead.
    #[arg(
        long,
        conflicts_with_all = ["scenario", "point", "metric", "commit", "machine", "yes", "dry_run"]
    )]
    list: bool,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let mut store = cx.store()?;
    if args.list {
        return list(&*store, args.json);
    }
    let machines = store.machines()?;
    let sel = ForgetSelector {
        scenario: args.scenario.clone(),
        point: args.point.clone(),
        metric: args.metric.clone(),
        commit: match &args.commit {
            Some(rev) => Some(cx.stored_commit(&*store, rev)?),
            None => None,
        },
        machines: match &args.machine {
            Some(m) => super::machines::resolve(&machines, m)?
                .into_iter()
                .map(|m| m.fingerprint)
                .collect(),
            None => Vec::new(),
        },
    };
    let plan = store.forget_plan(&sel)?;
    if plan.is_empty() {
        bail!("{}", nothing_there(cx, &*store, &sel, &args, &machines)?);
    }
    let shown = describe(cx, &sel, &plan, &machines);
    if args.dry_run {
        if args.json {
            let v = serde_json::json!({
                "selector": sel,
                "would_remove": plan.counts,
                "groups": plan.groups,
            });
            outln!("{}", serde_json::to_string_pretty(&v)?)?;
        } else {
            outln!("{shown}")?;
            outln!("(--dry-run: nothing was forgotten)")?;
        }
        return Ok(0);
    }
    if !args.yes {
        eprintln!("{shown}");
        if !std::io::stdin().is_terminal() {
            bail!(
                "stdin is not a terminal, so forget cannot ask: pass --yes to forget the above \
                 (--dry-run only shows it); nothing was forgotten"
            );
        }
        if !ask()? {
            eprintln!("syncbench: nothing was forgotten");
            return Ok(1);
        }
    }
    let record = store.forget(&sel, &plan, &who(cx), &command_line())?;
    if args.json {
        let v = serde_json::json!({
            "id": record.id,
            "created_unix": record.created_unix,
            "who": record.who,
            "command_line": record.command_line,
            "selector": record.selector,
            "removed": record.removed,
            "groups": plan.groups,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        outln!(
            "forgot {}: {}; recorded as forget #{} (`syncbench forget --list`)",
            selection(&sel, &machines),
            amounts(&record.removed),
            record.id
        )?;
    }
    Ok(0)
}

/// "y" or "yes" on stdin, after the question on stderr.
fn ask() -> anyhow::Result<bool> {
    eprint!("Forget these? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Who asks: git's user.name of the repository, else $USER.
fn who(cx: &Context) -> String {
    git2::Repository::discover(&cx.root)
        .and_then(|r| r.config())
        .and_then(|c| c.get_string("user.name"))
        .ok()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The command line as runs record it: never with a password.
fn command_line() -> String {
    syncbench::secrets::redact(&std::env::args().collect::<Vec<_>>().join(" "))
}

/// A machine as people know it: its tag, else its fingerprint.
fn machine_name(machines: &[MachineRow], fingerprint: &str) -> String {
    machines
        .iter()
        .find(|m| m.fingerprint == fingerprint)
        .and_then(|m| m.tag.clone())
        .unwrap_or_else(|| fingerprint.to_owned())
}

fn short(sha: &str) -> &str {
    &sha[..12.min(sha.len())]
}

/// `scenario "s", point "n=1", metric "wall", commit 0123456789ab, machine x86`.
fn selection(sel: &ForgetSelector, machines: &[MachineRow]) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &sel.scenario {
        parts.push(format!("scenario {s:?}"));
    }
    if let Some(p) = &sel.point {
        parts.push(format!("point {p:?}"));
    }
    if let Some(m) = &sel.metric {
        parts.push(format!("metric {m:?}"));
    }
    if let Some(c) = &sel.commit {
        parts.push(format!("commit {}", short(c)));
    }
    if !sel.machines.is_empty() {
        let names: BTreeSet<String> = sel
            .machines
            .iter()
            .map(|f| machine_name(machines, f))
            .collect();
        parts.push(format!(
            "machine {}",
            names.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    parts.join(", ")
}

/// How much, in words: what the counts that are not 0 say.
fn amounts(c: &ForgetCounts) -> String {
    let mut parts = Vec::new();
    if c.runs > 0 {
        parts.push(format!("{} run(s)", c.runs));
    }
    if c.runs_changed > 0 {
        parts.push(format!("the metric's values in {} run(s)", c.runs_changed));
    }
    parts.push(format!("{} value(s) of {} series", c.values, c.series));
    for (n, what) in [
        (c.commits, "commit(s) left without runs"),
        (c.ab_runs, "A/B run(s)"),
        (c.confirmations, "confirmation(s)"),
        (c.profiles, "profile(s)"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(", ")
}

/// What will be removed, exactly: the counts, then each point.
fn describe(
    cx: &Context,
    sel: &ForgetSelector,
    plan: &ForgetPlan,
    machines: &[MachineRow],
) -> String {
    const SHOWN: usize = 20;
    let mut out = format!(
        "syncbench: forget {} in {}:\n  {}",
        selection(sel, machines),
        cx.db,
        amounts(&plan.counts)
    );
    if sel.metric.is_some() {
        out.push_str("\n  (the runs stay, with their other metrics)");
    }
    for g in plan.groups.iter().take(SHOWN) {
        let point = if g.point.is_empty() {
            "(no parameters)"
        } else {
            &g.point
        };
        out.push_str(&format!(
            "\n    {} {point}  [{}]  {} run(s) at {} commit(s), {} value(s)",
            g.scenario,
            machine_name(machines, &g.machine),
            g.runs,
            g.commits,
            g.values
        ));
    }
    if plan.groups.len() > SHOWN {
        out.push_str(&format!(
            "\n    … and {} more point(s) (--dry-run --json lists them all)",
            plan.groups.len() - SHOWN
        ));
    }
    out
}

/// Why nothing is selected, naming what the store has nearby.
fn nothing_there(
    cx: &Context,
    store: &Store,
    sel: &ForgetSelector,
    args: &Args,
    machines: &[MachineRow],
) -> anyhow::Result<String> {
    let all = store.runs("")?;
    let db = &cx.db;
    if all.is_empty() {
        return Ok(format!("{db} holds no results: nothing to forget"));
    }
    let names = |runs: &[&RunRow], f: &dyn Fn(&RunRow) -> String| -> BTreeSet<String> {
        runs.iter().map(|r| f(r)).collect()
    };
    let mut runs: Vec<&RunRow> = all.iter().collect();
    let mut scope = String::from("the store");
    if let Some(s) = &sel.scenario {
        let known = names(&runs, &|r| r.scenario.clone());
        runs.retain(|r| &r.scenario == s);
        if runs.is_empty() {
            return Ok(format!(
                "no results of scenario {s:?} in {db}; its scenarios: {} (`syncbench show COMMIT` lists a commit's runs)",
                nearby(&known, s)
            ));
        }
        scope = format!("scenario {s:?}");
    }
    if let Some(p) = &sel.point {
        let known = names(&runs, &|r| r.point.clone());
        runs.retain(|r| &r.point == p);
        if runs.is_empty() {
            return Ok(format!(
                "{scope} has no point {p:?} in {db}; its points: {}",
                nearby(&known, p)
            ));
        }
        scope = format!("{scope}, point {p:?}");
    }
    if let Some(c) = &sel.commit {
        let measured = names(&runs, &|r| r.commit.clone()).len();
        let newest = runs
            .iter()
            .max_by(|a, b| a.started_unix.total_cmp(&b.started_unix))
            .map(|r| r.commit.clone());
        runs.retain(|r| &r.commit == c);
        if runs.is_empty() {
            let at: Vec<&RunRow> = all.iter().filter(|r| &r.commit == c).collect();
            let here = if at.is_empty() {
                format!("commit {} has no results in {db}", short(c))
            } else {
                format!(
                    "its results are of {}",
                    nearby(&names(&at, &|r| r.scenario.clone()), "")
                )
            };
            return Ok(format!(
                "no results of {scope} at commit {}; {here}; {scope} has results at {measured} commit(s){} (`syncbench show COMMIT` lists a commit's runs)",
                short(c),
                newest.map_or(String::new(), |n| format!(", the newest {}", short(&n))),
            ));
        }
        scope = format!("{scope} at commit {}", short(c));
    }
    if !sel.machines.is_empty() {
        let known = names(&runs, &|r| machine_name(machines, &r.machine));
        runs.retain(|r| sel.machines.contains(&r.machine));
        if runs.is_empty() {
            return Ok(format!(
                "no results of {scope} from machine {:?}; its machines: {} (`syncbench machines`)",
                args.machine.as_deref().unwrap_or(""),
                nearby(&known, args.machine.as_deref().unwrap_or(""))
            ));
        }
    }
    if let Some(m) = &sel.metric {
        // The metrics of the newest runs selected: enough to name them.
        let mut metrics = BTreeSet::new();
        let mut newest = runs.clone();
        newest.sort_by(|a, b| b.started_unix.total_cmp(&a.started_unix));
        for r in newest.iter().take(200) {
            metrics.extend(store.series(r.id)?.into_iter().map(|s| s.name));
        }
        if metrics.is_empty() {
            return Ok(format!(
                "{scope} has no metric values in {db}: nothing to forget"
            ));
        }
        return Ok(format!(
            "{scope} has no metric {m:?} in {db}; its metrics: {} (`syncbench show COMMIT` prints a commit's)",
            nearby(&metrics, m)
        ));
    }
    Ok(format!(
        "nothing to forget for {} in {db}",
        selection(sel, machines)
    ))
}

/// Names for a message: the closest to `wanted` first (a likely typo),
/// at most 20.
fn nearby(names: &BTreeSet<String>, wanted: &str) -> String {
    const SHOWN: usize = 20;
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort_by_key(|n| (distance(n, wanted), (*n).clone()));
    let mut out: Vec<String> = sorted
        .iter()
        .take(SHOWN)
        .map(|n| format!("{n:?}"))
        .collect();
    if names.len() > SHOWN {
        out.push(format!("… ({} in all)", names.len()));
    }
    out.join(", ")
}

/// The edit distance of two names, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn list(store: &Store, json: bool) -> anyhow::Result<u8> {
    let records: Vec<ForgetRecord> = store.forgotten()?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&records)?)?;
        return Ok(0);
    }
    if records.is_empty() {
        outln!("nothing was forgotten in this store")?;
        return Ok(0);
    }
    let machines = store.machines()?;
    for r in &records {
        outln!(
            "#{} {} by {}: {}: {}\n    {}",
            r.id,
            syncbench::site::date(r.created_unix as i64),
            r.who,
            selection(&r.selector, &machines),
            amounts(&r.removed),
            r.command_line
        )?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearby_names_come_first() {
        let names = ["wall", "cpu_user", "wal_bytes"]
            .map(String::from)
            .into_iter()
            .collect();
        assert_eq!(
            super::nearby(&names, "wal"),
            "\"wall\", \"wal_bytes\", \"cpu_user\""
        );
        assert_eq!(super::distance("kitten", "sitting"), 3);
    }
}
