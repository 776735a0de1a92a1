//! The measured repository, read with libgit2: its root, commits, the
//! first-parent line histories follow, merge bases, and the outputs git
//! should ignore. (Moving a checkout from commit to commit is `checkout`.)

pub use crate::model::records::Commit;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path} is not in a git repository")]
    NotARepo {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    /// git's own words, without libgit2's class and code numbers.
    #[error("{}", describe(.0))]
    Git(git2::Error),
    #[error("{0} has no commits yet: commit first so results can be attached to one")]
    NoCommits(PathBuf),
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> Self {
        GitError::Git(e)
    }
}

/// A git error as a person reads it: a revision that names nothing says
/// so and where to look; anything else is libgit2's message alone.
fn describe(e: &git2::Error) -> String {
    let message = e.message();
    let revspec = message
        .strip_prefix("revspec '")
        .and_then(|m| m.strip_suffix("' not found"));
    match revspec {
        Some(rev) if e.code() == git2::ErrorCode::NotFound => format!(
            "no commit, branch or tag {rev:?} in this repository (`git tag` and `git branch -a` \
             list them; `git fetch --tags` brings a remote's tags)"
        ),
        _ => message.to_owned(),
    }
}

pub fn repo_root(dir: &Path) -> Result<PathBuf, GitError> {
    let repo = git2::Repository::discover(dir).map_err(|source| GitError::NotARepo {
        path: dir.to_owned(),
        source,
    })?;
    Ok(repo.workdir().unwrap_or(repo.path()).to_owned())
}

/// What is recorded of a commit (not dirty, no branch).
pub fn commit_info(c: &git2::Commit) -> Commit {
    Commit {
        sha: c.id().to_string(),
        parents: c.parent_ids().map(|p| p.to_string()).collect(),
        author: c.author().name().unwrap_or("").to_owned(),
        time_unix: c.time().seconds(),
        subject: c.summary().unwrap_or("").to_owned(),
        dirty: false,
        branch: None,
    }
}

/// The commit checked out in `dir`, and whether the tree is dirty.
pub fn head_commit(dir: &Path) -> Result<Commit, GitError> {
    let repo = git2::Repository::discover(dir).map_err(|source| GitError::NotARepo {
        path: dir.to_owned(),
        source,
    })?;
    let head = repo
        .head()
        .map_err(|_| GitError::NoCommits(dir.to_owned()))?;
    let mut commit = commit_info(&head.peel_to_commit()?);
    commit.branch = head.shorthand().filter(|b| *b != "HEAD").map(str::to_owned);
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(false).include_ignored(false);
    commit.dirty = !repo.statuses(Some(&mut opts))?.is_empty();
    Ok(commit)
}

/// Up to `limit` commits along the first-parent history of `rev`, newest
/// first (the baseline branch's own history).
pub fn first_parent_history(dir: &Path, rev: &str, limit: usize) -> Result<Vec<String>, GitError> {
    let repo = git2::Repository::discover(dir).map_err(|source| GitError::NotARepo {
        path: dir.to_owned(),
        source,
    })?;
    let Ok(obj) = repo.revparse_single(rev) else {
        return Ok(vec![]);
    };
    let mut out = vec![];
    let mut c = Some(obj.peel_to_commit()?);
    while let Some(commit) = c {
        if out.len() >= limit {
            break;
        }
        out.push(commit.id().to_string());
        c = commit.parents().next();
    }
    Ok(out)
}

/// The newest common ancestor of two commits (full shas), if they have one.
pub fn merge_base(dir: &Path, a: &str, b: &str) -> Result<Option<String>, GitError> {
    let repo = git2::Repository::discover(dir).map_err(|source| GitError::NotARepo {
        path: dir.to_owned(),
        source,
    })?;
    match repo.merge_base(git2::Oid::from_str(a)?, git2::Oid::from_str(b)?) {
        Ok(oid) => Ok(Some(oid.to_string())),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The commits a history follows: a tip's first-parent line, as asv's
/// branches. Runs of commits off it (amended or rebased away, or of
/// another branch) stay in the store and on their commit pages, out of
/// trends, change points and alarms.
pub struct Line {
    shas: HashSet<String>,
    /// A shallow clone's line ends at its depth: older commits it does not
    /// have cannot be told apart, so they count as on it.
    shallow: Option<git2::Repository>,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Line({} commits, shallow: {})",
            self.shas.len(),
            self.shallow.is_some()
        )
    }
}

impl Line {
    /// `rev`'s first-parent line in the repository around `dir`.
    pub fn of(dir: &Path, rev: &str) -> Result<Line, GitError> {
        let shas = first_parent_history(dir, rev, usize::MAX)?
            .into_iter()
            .collect();
        let repo = git2::Repository::discover(dir).map_err(|source| GitError::NotARepo {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Line {
            shas,
            shallow: repo.is_shallow().then_some(repo),
        })
    }

    pub fn contains(&self, sha: &str) -> bool {
        self.shas.contains(sha)
            || self.shallow.as_ref().is_some_and(|repo| {
                git2::Oid::from_str(sha).is_ok_and(|oid| repo.find_commit(oid).is_err())
            })
    }
}

/// What syncbench writes inside a repository (the default results
/// database and spool, the dashboards), as `.git/info/exclude` lines.
pub const OUTPUTS: &[&str] = &["/.syncbench/", "/target/syncbench-report*/"];

/// Adds [`OUTPUTS`] to the repository's `.git/info/exclude` where they are
/// missing (never to a tracked `.gitignore`): results and dashboards stay
/// out of `git status`. The lines it added (none on every later call).
pub fn exclude_outputs(root: &Path) -> Result<Vec<&'static str>, GitError> {
    let repo = git2::Repository::discover(root).map_err(|source| GitError::NotARepo {
        path: root.to_owned(),
        source,
    })?;
    let path = repo.commondir().join("info/exclude");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let missing: Vec<&str> = OUTPUTS
        .iter()
        .copied()
        .filter(|o| !text.lines().any(|l| l.trim() == *o))
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("# syncbench's results and dashboards\n");
    for m in &missing {
        out.push_str(m);
        out.push('\n');
    }
    let write = |p: &Path| -> std::io::Result<()> {
        std::fs::create_dir_all(p.parent().unwrap_or(p))?;
        std::fs::write(p, &out)
    };
    write(&path).map_err(|e| git2::Error::from_str(&format!("writing {}: {e}", path.display())))?;
    Ok(missing)
}

#[cfg(test)]
mod describe_tests {
    #[test]
    fn a_missing_revision_is_named_without_libgit2_internals() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let e = repo.revparse_single("v1.0").unwrap_err();
        let shown = super::GitError::from(e).to_string();
        assert!(
            shown.starts_with("no commit, branch or tag \"v1.0\""),
            "{shown}"
        );
        assert!(!shown.contains("class="), "{shown}");
    }
}
