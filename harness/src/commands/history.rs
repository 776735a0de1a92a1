//! `syncbench history`: measure past commits in a reusable checkout.

use super::{Bars, Context, MeasureArgs, finish};
use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use syncbench::ops::session::{Baseline, Tally};
use syncbench::scenario::{self, Point, Scenario};

/// Commits (`A..B`: first-parent commits after A up to B; single
/// revisions; or -n N) and scenarios, as `history` and `enqueue` take them.
#[derive(clap::Args)]
pub struct CommitsArgs {
    /// Scenarios and commits, in any order.
    pub args: Vec<String>,
    /// The last N first-parent commits of HEAD.
    #[arg(short = 'n', value_name = "N")]
    pub last: Option<usize>,
}

impl CommitsArgs {
    /// The scenarios named (none named: the default suite when
    /// `default_suite`, else none) and the commits, oldest first.
    pub fn resolve(
        &self,
        cx: &Context,
        default_suite: bool,
    ) -> anyhow::Result<(Vec<Scenario>, Vec<syncbench::git::Commit>)> {
        let (scenarios, revs) = split_args(cx, &self.args, default_suite)?;
        let commits =
            syncbench::checkout::resolve(&cx.root, &revs, self.last).with_context(|| {
                format!(
                    "{:?} names no scenario (`syncbench list` shows them) and no commit",
                    revs.join(" ")
                )
            })?;
        let empty: Vec<String> = revs
            .iter()
            .filter_map(|r| empty_range(cx, r).transpose())
            .collect::<anyhow::Result<_>>()?;
        if !empty.is_empty() {
            bail!("{}", empty.join("\n"));
        }
        if commits.is_empty() {
            bail!("no commits: give A..B, revisions or -n N");
        }
        if let Some(note) = self
            .last
            .and_then(|n| syncbench::checkout::fewer_than_asked(&cx.root, n))
        {
            eprintln!("syncbench: {note}");
        }
        Ok((scenarios, commits))
    }
}

/// Why a range `A..B` holds no commit, when it holds none: B is A, or
/// older than A (written the wrong way round).
pub(super) fn empty_range(cx: &Context, rev: &str) -> anyhow::Result<Option<String>> {
    let Some((a, b)) = rev.split_once("..") else {
        return Ok(None);
    };
    if !syncbench::checkout::resolve(&cx.root, &[rev.to_owned()], None)?.is_empty() {
        return Ok(None);
    }
    let b = if b.is_empty() { "HEAD" } else { b };
    let (a_sha, b_sha) = (cx.full_sha(a)?, cx.full_sha(b)?);
    Ok(Some(if a_sha == b_sha {
        format!(
            "{rev} is empty: {a} and {b} are the same commit; A..B is the commits after A up to B"
        )
    } else if syncbench::git::merge_base(&cx.root, &a_sha, &b_sha)?.as_deref() == Some(&b_sha) {
        format!(
            "{rev} is reversed: {b} is older than {a}, so no commit is after {a} up to {b}; give {b}..{a}"
        )
    } else {
        format!("{rev} holds no commit: every first-parent commit of {b} is also one of {a}")
    }))
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    commits: CommitsArgs,
    /// Measure again points that have results on this machine (without
    /// it they are skipped, and said so).
    #[arg(long)]
    force: bool,
    /// Then confirm the change points of noisy metrics that have no
    /// answer yet (see `syncbench confirm`).
    #[arg(long)]
    confirm: bool,
    #[command(flatten)]
    confirm_args: super::confirm::ConfirmArgs,
    #[command(flatten)]
    pub measure: MeasureArgs,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let (all_variants, commits) = args.commits.resolve(cx, true)?;
    let chosen = args.measure.variants(all_variants.clone())?;
    let mut session = args.measure.session(cx)?;
    let (checkout, runner) = session.checkout(&cx.root)?;
    let mut bars = Bars::new(args.measure.json);
    let bar = bars.multi.add(ProgressBar::new(commits.len() as u64));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} commits  {msg}  (eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_prefix("history");
    let mut total = Tally::default();
    // Points measured before, at how many commits: said at the end, or
    // "0 point(s) recorded" would not say why.
    let (mut skipped, mut skipped_commits) = (0, 0);
    for commit in &commits {
        bar.set_message(format!("{} {}", &commit.sha[..10], commit.subject));
        let todo = session.unmeasured(&chosen, &commit.sha, args.force)?;
        skipped += todo.done.len();
        skipped_commits += usize::from(!todo.done.is_empty());
        let skip = |s: &Scenario, p: &Point| todo.skip(s, p);
        if !todo.scenarios.is_empty() {
            checkout.switch(&commit.sha)?;
            let baseline = Baseline {
                name: "parent".into(),
                commits: commit.parents.iter().take(1).cloned().collect(),
            };
            total.add(session.measure(
                &runner,
                commit,
                &todo.scenarios,
                &baseline,
                &skip,
                &mut bars,
            )?);
        }
        bar.inc(1);
        if session.interrupted() {
            break;
        }
    }
    bar.finish_and_clear();
    drop(checkout);
    if skipped > 0 {
        eprintln!(
            "syncbench: {skipped} point(s) at {skipped_commits} commit(s) already measured on this \
             machine were skipped: --force measures them again"
        );
    }
    let status = finish(&session, total, args.measure.json)?;
    if !args.confirm || session.interrupted() {
        return Ok(status);
    }
    let confirmed = super::confirm::confirm_and_print(
        cx,
        &mut session,
        // Every variant: confirm finds each change point's point in these
        // (one left out would be answered "no longer has the point").
        &all_variants,
        &|_| true,
        &args.confirm_args,
        if args.measure.json {
            super::confirm::Output::Quiet
        } else {
            super::confirm::Output::Text
        },
    )?;
    Ok(status.max(confirmed))
}

/// `history` arguments: scenario names or files, and revisions; with no
/// scenario named, the default suite when `default_suite`, else none.
fn split_args(
    cx: &Context,
    args: &[String],
    default_suite: bool,
) -> anyhow::Result<(Vec<Scenario>, Vec<String>)> {
    let (mut scenarios, mut revs) = (vec![], vec![]);
    for a in args {
        match scenario::find(&cx.scenarios_dir, a) {
            Ok(s) => scenarios.push(s),
            Err(scenario::ScenarioError::NotFound(_)) => revs.push(a.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    if scenarios.is_empty() && default_suite {
        scenarios = cx.choose(&[])?;
    }
    Ok((scenarios, revs))
}
