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
