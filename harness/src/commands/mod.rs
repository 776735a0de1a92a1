//! The subcommands: each file turns its flags into settings, calls the
//! operations (`syncbench::ops`, `analysis`, `site`…) and prints. Only
//! this folder prints.

mod ab;
mod bisect;
mod check;
mod comment;
mod compare;
mod confirm;
mod enqueue;
mod export;
mod forget;
mod history;
mod ingest;
mod list;
mod machines;
mod measure;
mod merge;
mod migrate;
pub mod output;
mod profile;
mod queue;
mod regressions;
mod report;
mod run;
mod show;
mod triage;
mod worker;

use anyhow::Context as _;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use syncbench::git;
use syncbench::ops::session::{MeasureSettings, Session};
use syncbench::scenario::{self, Scenario};
use syncbench::store::Location;

pub(crate) use measure::{Bars, MeasureArgs, finish};
pub(crate) use output::{emit, init_logging, outln, print_compared};

#[derive(Subcommand)]
pub enum Cmd {
    /// Measure the current tree: each scenario point, each repetition.
    Run(run::Args),
    /// Measure past commits: each in a reusable checkout, skipping those
    /// already measured on this machine (unless --force).
    ///
    /// Arguments are scenario names/paths and commits: `A..B` (first-parent
    /// commits after A up to B) or single revisions; or use -n N.
    History(history::Args),
    /// Change points over the stored history: regressions ranked by their
    /// size against their series' threshold, then improvements; by default
    /// only alarms (exact counts, and noisy metrics confirmed by `confirm`).
    Regressions(regressions::Args),
    /// Measure change points of noisy metrics (time, CPU, memory) again:
    /// the commit before and the commit after, built side by side and run
    /// alternately until the answer is clear. Records each as confirmed,
    /// refuted or inconclusive. Exit 1 when a regression was confirmed.
    Confirm(confirm::Args),
    /// Record what a person decided about an alarm: acknowledged (CI does
    /// not fail on it again), invalid (a false alarm) or fixed; --list
    /// shows the decisions and the alarms' precision.
    Triage(triage::Args),
    /// Render the results as a static HTML site: an index of every series,
    /// a trend page per series with its change points, a page per commit
    /// with the resource curves of its runs, and comparisons. Works from a
    /// local folder or any file server, offline. Prints the index's path.
    Report(report::Args),
    /// Post the pull request's comment through GitHub's API, or update the
    /// one posted before: only when something is flagged (--flagged) or
    /// the author asked (--asked); an earlier comment is always kept up to
    /// date. Needs GITHUB_TOKEN.
    #[command(mut_args = describe_comment_json)]
    Comment(comment::Args),
    /// Every series measured at both commits, B against A. With --run,
    /// measures both now instead, alternately A B A B … in this job (see
    /// the A/B options).
    Compare(compare::Args),
    /// CI gate: HEAD's results against the newest results on the baseline's
    /// first-parent history; exit 1 on a regression.
    Check(check::Args),
    /// Find the commit that moved METRIC between GOOD and BAD, measuring
    /// only the commits the binary search needs.
    Bisect(bisect::Args),
    /// Where one point's instructions went between two commits: runs it
    /// under callgrind at both and shows the functions whose counts changed
    /// most (inclusive and exclusive). Stored, and linked from the
    /// dashboard's compare page.
    Profile(profile::Args),
    /// Store results other tools produced, for the current commit.
    Ingest(ingest::Args),
    /// List scenarios and their points.
    List(list::Args),
    /// Show stored runs of a commit (default: HEAD).
    Show(show::Args),
    /// Export all results of a commit (default: HEAD).
    Export(export::Args),
    /// Copy the runs of syncbench SQLite files (a CI matrix's artifacts,
    /// another machine's results) into the results database. Merging the
    /// same file twice adds nothing; the files are never written.
    Merge(merge::Args),
    /// Remove results from the store: a scenario, one of its points, a
    /// metric, the runs of a commit, or what these select together. Shows
    /// what goes and asks (--yes where nobody can answer); removes it in one
    /// transaction and records that it did (--list). Nothing else changes.
    Forget(forget::Args),
    /// The machines with results: their tags (--machine-tag), fingerprints
    /// and runs. A commit measured on two machines is two series.
    Machines(machines::Args),
    /// Create the results database, or bring its schema to this build's.
    ///
    /// A SQLite file is created; on a PostgreSQL server, the database
    /// must exist (`createdb NAME` makes one) and its tables are created.
    Migrate(migrate::Args),
    /// Add jobs to the queue of a PostgreSQL results database: one per
    /// commit, for `syncbench worker`s to measure (with no scenario
    /// named, each worker measures its default suite).
    Enqueue(enqueue::Args),
    /// Take jobs from the queue of a PostgreSQL results database and
    /// measure them as `history` does, one at a time, until stopped;
    /// results are stored with the job that completes. Run one per
    /// benchmark machine (e.g. as a systemd service: ci/syncbench-worker.service).
    Worker(worker::Args),
    /// The job queue: pending, running (by whom, since when) and failed
    /// jobs, and the workers seen recently.
    Queue(queue::Args),
}

/// `comment --json`'s description while comment.rs gives none (that file
/// is maintained apart); a description given there wins.
fn describe_comment_json(arg: clap::Arg) -> clap::Arg {
    if arg.get_id() == "json" && arg.get_help().is_none() {
        arg.help("Print what was done (posted, updated, or nothing, with the comment's URL) as JSON on stdout")
    } else {
        arg
    }
}

impl Cmd {
    /// Whether -v asked for details on stderr.
    pub fn verbose(&self) -> bool {
        match self {
            Cmd::Run(a) => a.measure.verbose,
            Cmd::History(a) => a.measure.verbose,
            Cmd::Worker(a) => a.measure.verbose,
            Cmd::Bisect(a) => a.measure.verbose,
            Cmd::Compare(a) => a.target.ab.verbose,
            Cmd::Check(a) => a.target.ab.verbose,
            Cmd::Profile(a) => a.verbose,
            _ => false,
        }
    }
}

pub fn dispatch(cx: &Context, cmd: Cmd) -> anyhow::Result<u8> {
    // These read only the database (and a commit given by its sha).
    if !matches!(
        cmd,
        Cmd::Report(_)
            | Cmd::Comment(_)
            | Cmd::Regressions(_)
            | Cmd::Show(_)
            | Cmd::Export(_)
            | Cmd::Triage(_)
            | Cmd::Merge(_)
            | Cmd::Forget(_)
            | Cmd::Machines(_)
            | Cmd::Migrate(_)
            | Cmd::Queue(_)
    ) {
        cx.repo()?;
    }
    let result = match cmd {
        Cmd::Run(a) => run::run(cx, a),
        Cmd::History(a) => history::run(cx, a),
        Cmd::Regressions(a) => regressions::run(cx, a),
        Cmd::Confirm(a) => confirm::run(cx, a),
        Cmd::Triage(a) => triage::run(cx, a),
        Cmd::Report(a) => report::run(cx, a),
        Cmd::Comment(a) => comment::run(a),
        Cmd::Compare(a) => compare::run(cx, a),
        Cmd::Check(a) => check::run(cx, a),
        Cmd::Bisect(a) => bisect::run(cx, a),
        Cmd::Profile(a) => profile::run(cx, a),
        Cmd::Ingest(a) => ingest::run(cx, a),
        Cmd::List(a) => list::run(cx, a),
        Cmd::Show(a) => show::run(cx, a),
        Cmd::Export(a) => export::run(cx, a),
        Cmd::Merge(a) => merge::run(cx, a),
        Cmd::Forget(a) => forget::run(cx, a),
        Cmd::Machines(a) => machines::run(cx, a),
        Cmd::Migrate(a) => migrate::run(cx, a),
        Cmd::Enqueue(a) => enqueue::run(cx, a),
        Cmd::Worker(a) => worker::run(cx, a),
        Cmd::Queue(a) => queue::run(cx, a),
    };
    result.map_err(|e| missing_database(&cx.db, e))
}

/// A PostgreSQL server without the database named in the URL: the error
/// says how to create it (syncbench creates tables, never databases).
fn missing_database(db: &Location, e: anyhow::Error) -> anyhow::Error {
    use syncbench::store::StoreError;
    use syncbench::store::queue::QueueError;
    let Location::Postgres(url) = db else {
        return e;
    };
    let missing = e.chain().any(|c| {
        let store = match c.downcast_ref::<QueueError>() {
            Some(QueueError::Store(s)) => Some(s),
            _ => c.downcast_ref::<StoreError>(),
        };
        matches!(store, Some(StoreError::Postgres(pg)) if pg.is_missing_database())
    });
    if !missing {
        return e;
    }
    let (host, port, user, name) = postgres_parts(url);
    let mut createdb = "createdb".to_owned();
    for (flag, value) in [("-h", host), ("-p", port), ("-U", user)] {
        if !value.is_empty() {
            createdb.push_str(&format!(" {flag} {value}"));
        }
    }
    anyhow::anyhow!(
        "{e:#}: syncbench makes tables, not databases: create it (`{createdb} {name}`, \
         or CREATE DATABASE in psql), then `syncbench migrate` makes its tables"
    )
}

/// The host, port, user and database of a `postgres://` URL, as given
/// (never the password); empty where the URL leaves them out.
fn postgres_parts(url: &str) -> (&str, &str, &str, &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    let (authority, name) = rest.split_once('/').unwrap_or((rest, ""));
    // The user part runs to the last `@` (a password may hold one).
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let user = userinfo.split(':').next().unwrap_or("");
    let (host, port) = match hostport.strip_prefix('[') {
        // An IPv6 address: [::1]:5432.
        Some(v6) => {
            let (h, p) = v6.split_once(']').unwrap_or((v6, ""));
            (h, p.trim_start_matches(':'))
        }
        None => hostport.split_once(':').unwrap_or((hostport, "")),
    };
    (host, port, user, name)
}

#[cfg(test)]
mod postgres_parts_tests {
    #[test]
    fn a_url_gives_createdb_its_flags_never_the_password() {
        use super::postgres_parts as parts;
        assert_eq!(
            parts("postgres://sb:p@ss@db.example.org:5433/results?sslmode=require"),
            ("db.example.org", "5433", "sb", "results")
        );
        assert_eq!(parts("postgresql:///sb"), ("", "", "", "sb"));
        assert_eq!(
            parts("postgres://u@[::1]:5432/x"),
            ("::1", "5432", "u", "x")
        );
    }
}

/// The heading of the flags that only matter to scenarios cargo builds:
/// a project measuring its own commands can skip them.
pub const CARGO_HEADING: &str =
    "Cargo builds (sync and criterion scenarios; command scenarios ignore these)";

/// Where the dashboard goes when the repository's default database is
/// used (relative to the repository).
pub const DEFAULT_SITE: &str = "target/syncbench-report";

/// What every command is given: where the repository, the database and
/// the scenarios are.
pub struct Context {
    pub root: PathBuf,
    /// Why `root` is not a repository (outside one, with --db).
    not_a_repo: Option<String>,
    pub db: Location,
    /// --db named another database than the repository's default.
    pub own_db: bool,
    pub scenarios_dir: PathBuf,
    interrupted: OnceLock<Arc<AtomicBool>>,
}

impl Context {
    pub fn new(db: Option<String>, repo: Option<PathBuf>) -> anyhow::Result<Context> {
        let db = db.filter(|d| !d.is_empty()).map(|d| Location::parse(&d));
        let cwd = std::env::current_dir()?;
        let (root, not_a_repo) = match (git::repo_root(repo.as_deref().unwrap_or(&cwd)), &db, &repo)
        {
            (Ok(root), _, _) => (root, None),
            // Outside a repository, commands that read only the database
            // (report, regressions, show COMMIT, export COMMIT) still work.
            (Err(e), Some(_), None) => (cwd, Some(format!("{:#}", anyhow::Error::from(e)))),
            (Err(e), _, _) => return Err(e.into()),
        };
        let default_db = root.join(".syncbench/results.sqlite");
        let own_db = match &db {
            Some(Location::Sqlite(d)) => !same_file(d, &default_db),
            Some(Location::Postgres(_)) => true,
            None => false,
        };
        Ok(Context {
            not_a_repo,
            db: db.unwrap_or(Location::Sqlite(default_db)),
            own_db,
            scenarios_dir: root.join("scenarios"),
            root,
            interrupted: OnceLock::new(),
        })
    }

    /// The flag Ctrl-C sets (the handler is installed on first use).
    pub fn interrupted(&self) -> anyhow::Result<Arc<AtomicBool>> {
        if let Some(f) = self.interrupted.get() {
            return Ok(f.clone());
        }
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        ctrlc::set_handler(move || set.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
        Ok(self.interrupted.get_or_init(|| flag).clone())
    }

    /// The dashboard's default folder: the repository's for its default
    /// database, else next to the database given (tests and other
    /// histories never overwrite the user's dashboard).
    pub fn default_site(&self) -> PathBuf {
        match &self.db {
            Location::Sqlite(db) if self.own_db => {
                let stem = db
                    .file_stem()
                    .map_or("results".into(), |s| s.to_string_lossy().into_owned());
                db.with_file_name(format!("{stem}-report"))
            }
            // A shared database's site never mixes with the repository's
            // SQLite one, nor with another server's: named after it.
            Location::Postgres(url) => self
                .root
                .join(format!("{DEFAULT_SITE}-{}", postgres_site_name(url))),
            _ => self.root.join(DEFAULT_SITE),
        }
    }

    /// The repository, for commands that need one.
    pub fn repo(&self) -> anyhow::Result<&Path> {
        match &self.not_a_repo {
            None => Ok(&self.root),
            Some(why) => anyhow::bail!(
                "{why}: this command needs one (with --db alone: report, regressions, show COMMIT, export COMMIT)"
            ),
        }
    }

    /// The results database, which must exist (commands that only read
    /// it never create one).
    pub fn store(&self) -> anyhow::Result<Box<syncbench::store::Store>> {
        if let Location::Sqlite(db) = &self.db
            && !db.exists()
        {
            anyhow::bail!(
                "no results database at {}: `syncbench run` records one (or give --db)",
                db.display()
            );
        }
        self.store_or_create()
    }

    /// The results database, created if missing.
    pub fn store_or_create(&self) -> anyhow::Result<Box<syncbench::store::Store>> {
        Ok(syncbench::store::open(&self.db)?)
    }

    /// A measuring session on the results database. With a database
    /// server, runs it could not take before (kept locally) are stored
    /// first, and said so.
    pub fn session(&self, settings: MeasureSettings) -> anyhow::Result<Session> {
        if self.not_a_repo.is_none() {
            // Said once: the first measuring command in a repository.
            match git::exclude_outputs(&self.root) {
                Ok(added) if !added.is_empty() => eprintln!(
                    "syncbench: added {} to .git/info/exclude (results and dashboards stay out of git status)",
                    added.join(" and ")
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("could not update .git/info/exclude: {e}"),
            }
        }
        let spool = self.db.spool_in(&self.root.join(".syncbench"));
        let mut session = Session::open(&self.db, settings, self.interrupted()?, Some(spool))?;
        let restored = session.restore_spool()?;
        if restored > 0 {
            eprintln!(
                "syncbench: stored {restored} run(s) kept locally when {} was unreachable",
                self.db
            );
        }
        Ok(session)
    }

    /// A commit given by a revision (`HEAD~2`, `main`) or by a sha
    /// prefix of a stored commit (which the repository may not have).
    pub fn commit_arg(&self, arg: Option<String>) -> anyhow::Result<String> {
        match arg {
            None => Ok(git::head_commit(&self.root)?.sha),
            // A sha (prefix) is looked up among the stored commits as given.
            Some(sha) if sha.len() >= 4 && sha.chars().all(|c| c.is_ascii_hexdigit()) => Ok(sha),
            Some(rev) => self.full_sha(&rev),
        }
    }

    /// A commit by a prefix of a stored sha (unambiguous; the repository
    /// may no longer have it, e.g. amended away), else by a revision of
    /// the repository: its full sha.
    pub fn stored_commit(
        &self,
        store: &syncbench::store::Store,
        arg: &str,
    ) -> anyhow::Result<String> {
        let lower = arg.to_ascii_lowercase();
        if lower.len() >= 4 && lower.chars().all(|c| c.is_ascii_hexdigit()) {
            let found: Vec<String> = store
                .commits()?
                .into_iter()
                .map(|c| c.sha)
                .filter(|s| s.starts_with(&lower))
                .collect();
            match found.len() {
                1 => return Ok(found.into_iter().next().expect("one")),
                0 => {}
                n => anyhow::bail!("{arg}: {n} stored commits start with it; give more of the sha"),
            }
        }
        self.repo().and_then(|_| self.full_sha(arg)).map_err(|_| {
            anyhow::anyhow!(
                "{arg}: no such commit in {} or in the repository (`syncbench show COMMIT` lists a commit's runs)",
                self.db
            )
        })
    }

    /// A revision's full sha.
    pub fn full_sha(&self, rev: &str) -> anyhow::Result<String> {
        let commits = syncbench::checkout::resolve(&self.root, &[rev.to_owned()], None)?;
        Ok(commits
            .into_iter()
            .next()
            .with_context(|| format!("no commit {rev:?}"))?
            .sha)
    }

    /// Whether a commit is on `tip`'s first-parent line (the commits a
    /// history follows: `git::Line`); every commit outside a repository
    /// (`report --db` alone), where there is no line to follow.
    pub fn on_line(&self, tip: &str) -> anyhow::Result<OnLine> {
        if self.not_a_repo.is_some() {
            return Ok(Box::new(|_| true));
        }
        let line = git::Line::of(&self.root, tip)?;
        Ok(Box::new(move |sha| line.contains(sha)))
    }

    /// The scenarios a run measures: these names or files, or the
    /// default suite.
    pub fn choose(&self, names: &[String]) -> anyhow::Result<Vec<Scenario>> {
        Ok(if names.is_empty() {
            scenario::load_dir(&self.scenarios_dir)?
                .into_iter()
                .filter(|s| s.default)
                .collect()
        } else {
            names
                .iter()
                .map(|s| scenario::find(&self.scenarios_dir, s))
                .collect::<Result<_, _>>()?
        })
    }

    /// As [`Context::choose`], by name only (never a path): what a job
    /// may ask of a worker.
    pub fn choose_named(&self, names: &[String]) -> anyhow::Result<Vec<Scenario>> {
        if names.is_empty() {
            return self.choose(names);
        }
        Ok(names
            .iter()
            .map(|s| scenario::find_named(&self.scenarios_dir, s))
            .collect::<Result<_, _>>()?)
    }
}

/// Whether a commit (full sha) is on a line: see [`Context::on_line`].
pub type OnLine = Box<dyn Fn(&str) -> bool>;

/// `pg-HOST-DATABASE` of a `postgres://` URL, as a file name: the server
/// and database a site was rendered from (never the user or password).
fn postgres_site_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    // The user part runs to the last `@` before the path.
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next().unwrap_or(host);
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let host = if host.is_empty() {
        "localhost".to_owned()
    } else {
        clean(host)
    };
    let db = if db.is_empty() {
        "postgres".to_owned()
    } else {
        clean(db)
    };
    format!("pg-{host}-{db}")
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod site_name_tests {
    #[test]
    fn a_postgres_site_is_named_after_its_server_and_database() {
        use super::postgres_site_name as name;
        assert_eq!(
            name("postgres://u:p@db.example.org:5432/sb"),
            "pg-db.example.org-sb"
        );
        assert_eq!(name("postgresql://u:p@ss@h/x?sslmode=require"), "pg-h-x");
        assert_eq!(name("postgres:///sb"), "pg-localhost-sb");
        assert_eq!(name("postgres://h/a%2Fb"), "pg-h-a_2Fb");
    }
}
