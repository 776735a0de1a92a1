//! Measuring past commits: resolving a range to commits, and one reusable
//! checkout that is moved from commit to commit, so a shared cargo target
//! dir rebuilds only what changed. The checkout is a repository of its own
//! under the cache that borrows the measured repository's objects (git's
//! `objects/info/alternates`, as `git clone --shared`): nothing is
//! registered in the user's repository, no branch, no worktree.

use crate::git::{Commit, GitError, commit_info};
use git2::{Oid, Repository, Sort};
use std::path::{Path, PathBuf};

/// The name earlier versions gave their worktree (and its branch) in the
/// measured repository: removed from it when found.
const WORKTREE: &str = "syncbench-checkout";

/// Commits to measure, oldest first: `A..B` (first-parent commits after A
/// up to B), the last `n` first-parent commits of HEAD, or single revisions.
pub fn resolve(
    root: &Path,
    ranges: &[String],
    last: Option<usize>,
) -> Result<Vec<Commit>, GitError> {
    let repo = Repository::discover(root)?;
    let mut out: Vec<Commit> = Vec::new();
    if let Some(n) = last {
        if repo.head().is_err() {
            return Err(GitError::NoCommits(root.to_owned()));
        }
        let mut walk = repo.revwalk()?;
        walk.push_head()?;
        walk.simplify_first_parent()?;
        let mut shas: Vec<Oid> = walk.take(n).collect::<Result<_, _>>()?;
        shas.reverse();
        for oid in shas {
            out.push(commit_info(&repo.find_commit(oid)?));
        }
    }
    for spec in ranges {
        if let Some((from, to)) = spec.split_once("..") {
            let mut walk = repo.revwalk()?;
            walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
            walk.push(
                repo.revparse_single(if to.is_empty() { "HEAD" } else { to })?
                    .peel_to_commit()?
                    .id(),
            )?;
            walk.hide(repo.revparse_single(from)?.peel_to_commit()?.id())?;
            walk.simplify_first_parent()?;
            for oid in walk {
                out.push(commit_info(&repo.find_commit(oid?)?));
            }
        } else {
            out.push(commit_info(&repo.revparse_single(spec)?.peel_to_commit()?));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.sha.clone()));
    Ok(out)
}

/// Why `-n N` finds fewer than N commits on HEAD's line, when it does: a
/// shallow clone's history ends at its depth (with how to deepen it), or
/// the line is that short.
pub fn fewer_than_asked(root: &Path, n: usize) -> Option<String> {
    let repo = Repository::discover(root).ok()?;
    let mut walk = repo.revwalk().ok()?;
    walk.push_head().ok()?;
    walk.simplify_first_parent().ok()?;
    let found = walk.take(n).count();
    if found >= n {
        return None;
    }
    Some(if repo.is_shallow() {
        format!(
            "only {found} of the {n} commits asked for are in this shallow clone: \
             `git fetch --deepen {}` (or `--unshallow`) brings the rest (in GitHub \
             Actions, actions/checkout with `fetch-depth: 0`)",
            n - found
        )
    } else {
        format!("HEAD's line has {found} commit(s), fewer than the {n} asked for")
    })
}

/// The reusable checkout.
pub struct Checkout {
    pub dir: PathBuf,
    clone: Repository,
    /// Held while the checkout lives: two syncbench processes sharing a
    /// cache (two `confirm` runs, `history` beside `compare --run`) take
    /// turns instead of switching one checkout under each other.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout").field("dir", &self.dir).finish()
    }
}

impl Checkout {
    /// Opens, or creates, the checkout of `root`'s repository in
    /// `cache/checkout`.
    pub fn open(root: &Path, cache: &Path) -> Result<Checkout, GitError> {
        Self::open_named(root, &cache.join("checkout"), WORKTREE)
    }

    /// Opens, or creates, a checkout of `root`'s repository in `dir` (A/B
    /// runs keep one per side). `name` is what an earlier version called
    /// its worktree there: one found is removed from the repository.
    pub fn open_named(root: &Path, dir: &Path, name: &str) -> Result<Checkout, GitError> {
        let dir = dir.to_owned();
        let name = &format!("{name}-{:08x}", fnv(&dir) as u32);
        let repo = Repository::discover(root)?;
        let _lock = lock(&dir)?;
        let objects = repo.commondir().join("objects");
        let objects = objects.canonicalize().unwrap_or(objects);
        // A folder there that is not a checkout: take it only if empty.
        if dir.exists() && !dir.join(".git").exists() {
            let empty = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none());
            if !empty || std::fs::remove_dir(&dir).is_err() {
                return Err(git2::Error::from_str(&format!(
                    "{} exists and is not a syncbench checkout: remove it, or give another --cache-dir",
                    dir.display()
                ))
                .into());
            }
        }
        if dir.join(".git").exists() {
            let found = Repository::open(&dir).ok();
            // An earlier version's worktree of this repository, registered
            // under our name: ours.
            let legacy = dir.join(".git").is_file()
                && found.as_ref().is_some_and(|w| {
                    same_repository(w, &repo) && (registered_as(w, name) || made_here(&dir))
                });
            if !(made_here(&dir) || legacy) {
                // Someone's own checkout (of this repository or another),
                // maybe with uncommitted work: never switched, never deleted.
                return Err(git2::Error::from_str(&format!(
                    "{} is a git checkout syncbench did not make (it may hold someone's work), left as it is: give another --cache-dir, or remove it yourself",
                    dir.display()
                ))
                .into());
            }
            if !legacy && let Some(clone) = found.filter(|c| borrows(c, &objects)) {
                return Ok(Checkout { clone, dir, _lock });
            }
            // Ours, but an earlier version's worktree, or its repository
            // is gone or another one (a cache dir reused): made again.
            tracing::info!("recreating the checkout {}", dir.display());
            std::fs::remove_dir_all(&dir)
                .map_err(|e| git2::Error::from_str(&format!("removing {}: {e}", dir.display())))?;
        }
        // What an earlier version left in the repository: its worktree's
        // registration and branch.
        if let Ok(wt) = repo.find_worktree(name) {
            wt.prune(Some(
                git2::WorktreePruneOptions::new()
                    .valid(true)
                    .working_tree(true),
            ))?;
        }
        if let Ok(mut branch) = repo.find_branch(name, git2::BranchType::Local) {
            branch.delete()?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| git2::Error::from_str(&format!("creating {}: {e}", dir.display())))?;
        let clone = Repository::init(&dir)?;
        let info = clone.path().join("objects/info");
        std::fs::create_dir_all(&info)
            .and_then(|()| {
                std::fs::write(info.join("alternates"), format!("{}\n", objects.display()))
            })
            .map_err(|e| {
                git2::Error::from_str(&format!("sharing objects with {}: {e}", dir.display()))
            })?;
        mark(&dir)?;
        // Opened again: the object database reads its alternates on open.
        Ok(Checkout {
            clone: Repository::open(&dir)?,
            dir,
            _lock,
        })
    }

    /// Moves the checkout to `sha`: tracked files as in the commit,
    /// untracked leftovers (outputs of the previous commit's build) removed.
    pub fn switch(&self, sha: &str) -> Result<(), GitError> {
        let oid = Oid::from_str(sha)?;
        self.clone.set_head_detached(oid)?;
        self.clone.checkout_head(Some(
            git2::build::CheckoutBuilder::new()
                .force()
                .remove_untracked(true),
        ))?;
        Ok(())
    }
}

/// Whether the checkout `clone` borrows its objects from `objects`.
fn borrows(clone: &Repository, objects: &Path) -> bool {
    std::fs::read_to_string(clone.path().join("objects/info/alternates"))
        .is_ok_and(|a| a.lines().any(|l| Path::new(l.trim()) == objects))
}

/// Waits for, and takes, the exclusive lock of the checkout at `dir`
/// (`dir.lock` beside it; the kernel releases it when the process ends,
/// however it ends).
fn lock(dir: &Path) -> Result<std::fs::File, GitError> {
    let fail = |what: &str, e: std::io::Error| {
        git2::Error::from_str(&format!("{what} the lock of {}: {e}", dir.display()))
    };
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|e| fail("creating the folder of", e))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.with_extension("lock"))
        .map_err(|e| fail("opening", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::warn!(
                "{} is in use by another syncbench; waiting for it",
                dir.display()
            );
            file.lock().map_err(|e| fail("taking", e))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(fail("taking", e).into()),
    }
    Ok(file)
}

/// The marker of a checkout this cache made: beside it (inside, a switch
/// would remove it as untracked), holding what identifies the checkout
/// (see [`identity`]), so a marker left behind does not vouch for a
/// checkout someone else put at the same path later.
fn marker(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push(".syncbench-made");
    dir.with_file_name(name)
}

/// Records that the checkout at `dir` is this cache's.
fn mark(dir: &Path) -> Result<(), GitError> {
    let fail = |e: std::io::Error| {
        git2::Error::from_str(&format!("marking {} as syncbench's: {e}", dir.display()))
    };
    let id = identity(dir).map_err(fail)?;
    if std::fs::read(marker(dir)).is_ok_and(|m| m == id) {
        return Ok(());
    }
    std::fs::write(marker(dir), id).map_err(fail)?;
    Ok(())
}

/// What identifies the checkout at `dir`: an earlier version's worktree
/// by its `.git` file; a checkout of this version by its repository's
/// folder (inode and birth time of `.git`: not its change time, which
/// every checkout moves).
fn identity(dir: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let git = dir.join(".git");
    if git.is_file() {
        return std::fs::read(git);
    }
    let m = std::fs::metadata(&git)?;
    let born = m
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("syncbench checkout: inode {} born {born}\n", m.ino()).into_bytes())
}

/// Whether this cache made the checkout at `dir` (see [`marker`]).
fn made_here(dir: &Path) -> bool {
    match (std::fs::read(marker(dir)), identity(dir)) {
        (Ok(m), Ok(id)) => m == id,
        _ => false,
    }
}

/// Whether git registered the worktree as `name` (its folder in the
/// repository's `worktrees/`).
fn registered_as(worktree: &Repository, name: &str) -> bool {
    worktree.path().file_name().is_some_and(|n| n == name)
}

/// Whether a worktree belongs to `repo` (shares its git directory).
fn same_repository(worktree: &Repository, repo: &Repository) -> bool {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    canon(worktree.commondir()) == canon(repo.commondir())
}

/// Default cache: `$XDG_CACHE_HOME` (or `~/.cache`)`/syncbench/<repo>-<hash>`.
/// FNV-1a of a path: a stable, short, collision-unlikely suffix.
fn fnv(path: &Path) -> u64 {
    crate::model::hash::fnv1a(path.to_string_lossy().as_bytes())
}

pub fn default_cache(root: &Path) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let hash = fnv(root);
    let name = root
        .file_name()
        .map_or("repo".into(), |n| n.to_string_lossy().into_owned());
    base.join("syncbench").join(format!("{name}-{hash:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = crate::secrets::command("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@e"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Files that differ only in content (same size) between commits made
    /// in the same second: each switch must write the commit's content.
    #[test]
    fn switching_rewrites_files_of_the_same_size_within_one_second() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir(&root).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        let mut shas = Vec::new();
        for (i, v) in ["0.05", "0.05", "0.10", "0.10", "0.05"].iter().enumerate() {
            std::fs::write(root.join("delay"), format!("{v}\n")).unwrap();
            std::fs::write(root.join("n"), format!("{i}\n")).unwrap();
            git(&root, &["add", "-A"]);
            git(&root, &["commit", "-q", "-m", &format!("c{i}")]);
            shas.push((git(&root, &["rev-parse", "HEAD"]), *v));
        }
        let cache = dir.path().join("cache");
        for round in 0..20 {
            let c = Checkout::open_named(&root, &cache.join("ab-a"), "t-ab-a").unwrap();
            for (sha, v) in shas.iter().rev().chain(shas.iter()) {
                c.switch(sha).unwrap();
                let got = std::fs::read_to_string(c.dir.join("delay")).unwrap();
                assert_eq!(got.trim(), *v, "round {round}, {sha}");
            }
        }
    }

    #[test]
    fn checkouts_of_one_repository_in_two_caches_keep_their_own_worktrees() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir(&root).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        let mut shas = Vec::new();
        for i in 0..2 {
            std::fs::write(root.join("n"), format!("{i}\n")).unwrap();
            git(&root, &["add", "-A"]);
            git(&root, &["commit", "-q", "-m", &format!("c{i}")]);
            shas.push(git(&root, &["rev-parse", "HEAD"]));
        }
        let a = Checkout::open(&root, &dir.path().join("cache-a")).unwrap();
        a.switch(&shas[0]).unwrap();
        let b = Checkout::open(&root, &dir.path().join("cache-b")).unwrap();
        b.switch(&shas[1]).unwrap();
        drop((a, b));
        // Opening one again finds it where it was; the other is intact.
        let a = Checkout::open(&root, &dir.path().join("cache-a")).unwrap();
        assert_eq!(std::fs::read_to_string(a.dir.join("n")).unwrap(), "0\n");
        let b = Checkout::open(&root, &dir.path().join("cache-b")).unwrap();
        assert_eq!(std::fs::read_to_string(b.dir.join("n")).unwrap(), "1\n");
    }
}
