//! What a commit is judged against (`check`): one rule, so the gate and
//! anything else that asks agree.
//!
//! A branch or pull request is judged against where it left the baseline
//! (their merge base), not the baseline's tip, which may have moved on,
//! faster or slower. A commit of the baseline's own line (a push to main)
//! is judged against the newest measured commit before it.

use crate::git::{GitError, first_parent_history, merge_base};
use std::path::Path;

/// How far back the baseline's line is searched for a measured commit.
const SEARCH: usize = 1000;

/// The baseline of a commit, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    /// Measured: the branch's merge base, or the newest measured commit
    /// before this one on its line.
    At(String),
    /// The branch's merge base, which has no stored results.
    MergeBaseUnmeasured(String),
    /// A commit of the baseline's line with no measured commit before it
    /// (`measured`: whether the commit itself has results, so this is the
    /// start of the line's history rather than missing data).
    NoneEarlier { measured: bool },
    /// The two commits share no history.
    Unrelated,
}

/// The baseline of `new` against the branch tip `tip`; `measured` says
/// which commits have results.
pub fn choose(
    root: &Path,
    new: &str,
    tip: &str,
    measured: &dyn Fn(&str) -> bool,
) -> Result<Baseline, GitError> {
    Ok(match merge_base(root, new, tip)? {
        Some(mb) if mb != new && measured(&mb) => Baseline::At(mb),
        Some(mb) if mb != new => Baseline::MergeBaseUnmeasured(mb),
        Some(_) => match first_parent_history(root, new, SEARCH)?
            .into_iter()
            .find(|sha| sha != new && measured(sha))
        {
            Some(b) => Baseline::At(b),
            None => Baseline::NoneEarlier {
                measured: measured(new),
            },
        },
        None => Baseline::Unrelated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::{Oid, Repository, Signature};

    /// A commit of `repo` with `parents`, updating `refname` (None: an
    /// orphan on no branch).
    fn commit(repo: &Repository, refname: Option<&str>, parents: &[Oid], msg: &str) -> String {
        let sig = Signature::new("t", "t@t", &git2::Time::new(1_700_000_000, 0)).unwrap();
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let parents: Vec<git2::Commit> = parents
            .iter()
            .map(|p| repo.find_commit(*p).unwrap())
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(refname, &sig, &sig, msg, &tree, &parents)
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_branch_is_judged_at_its_merge_base_and_a_line_commit_at_its_newest_measured_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let oid = |s: &str| Oid::from_str(s).unwrap();
        let c1 = commit(&repo, Some("refs/heads/main"), &[], "c1");
        let c2 = commit(&repo, Some("refs/heads/main"), &[oid(&c1)], "c2");
        let c3 = commit(&repo, Some("refs/heads/main"), &[oid(&c2)], "c3");
        let f1 = commit(&repo, Some("refs/heads/feature"), &[oid(&c2)], "f1");
        let orphan = commit(&repo, None, &[], "orphan");
        let root = dir.path();
        let with = |shas: &[&str]| {
            let set: Vec<String> = shas.iter().map(|s| s.to_string()).collect();
            move |sha: &str| set.iter().any(|s| s == sha)
        };
        // A branch: its merge base with the tip, measured or not.
        assert_eq!(
            choose(root, &f1, &c3, &with(&[&c2, &c3])).unwrap(),
            Baseline::At(c2.clone())
        );
        assert_eq!(
            choose(root, &f1, &c3, &with(&[&c1, &c3])).unwrap(),
            Baseline::MergeBaseUnmeasured(c2.clone())
        );
        // The tip's own line: the newest measured commit before it.
        assert_eq!(
            choose(root, &c3, &c3, &with(&[&c1, &c3])).unwrap(),
            Baseline::At(c1.clone())
        );
        assert_eq!(
            choose(root, &c3, &c3, &with(&[&c3])).unwrap(),
            Baseline::NoneEarlier { measured: true }
        );
        assert_eq!(
            choose(root, &c2, &c3, &with(&[])).unwrap(),
            Baseline::NoneEarlier { measured: false }
        );
        assert_eq!(
            choose(root, &orphan, &c3, &with(&[&c1])).unwrap(),
            Baseline::Unrelated
        );
    }
}
