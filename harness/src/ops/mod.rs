//! Operations: what the commands do, as a library. Each takes settings
//! and returns results; none prints (the commands in `src/commands`
//! decide what people and scripts see).
//!
//! - `session`: measuring points at a commit and recording them (the one
//!   place a `RunRecord` is assembled, via `Recorder`).
//! - `baseline`: what a commit is judged against (`check`).
//! - `bisect`: the binary search for a culprit, over a probe closure.
//! - `ab`: interleaved A/B runs of two commits, over a measure closure.
//! - `confirm`: change points of noisy metrics measured again, A/B.
//! - `export`: a commit's results as JSON, BMF or CSV.
//! - `profile`: where one point's instructions went at two commits.
//! - `merge`: runs of other results files copied into a store.
//! - `worker`: a benchmark machine taking jobs from the queue.

pub mod ab;
pub mod baseline;
pub mod bisect;
pub mod confirm;
pub mod export;
pub mod merge;
pub mod profile;
pub mod session;
pub mod worker;

use crate::history::History;
use crate::store::{CommitRun, Store, StoreError};

/// The history of the stored runs `wanted` accepts (e.g. of the commits
/// on one line, or one machine's).
pub fn load_history(
    store: &Store,
    wanted: &dyn Fn(&CommitRun) -> bool,
) -> Result<History, StoreError> {
    let (runs, values) = store.runs_with_values(wanted)?;
    Ok(History::from_values(runs, values))
}
