//! What a variant's build needs beyond cargo's own flags: its toolchain
//! installed, and its dependency versions applied in a tree of its own.

use super::Failure;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use syncbench_model::RunStatus;
use syncbench_model::scenario::Variant;

/// A toolchain that would not install, a pin that would not resolve:
/// `failed`, not `build_failed` (which is final for the commit), as the
/// cause may be the network's and pass.
fn build_failed(message: String) -> Failure {
    Failure::new(RunStatus::Failed, message)
}

fn run(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null()).output()
}

fn stderr_tail(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let text = text.trim();
    text[text.len().saturating_sub(1500)..].to_owned()
}

/// Toolchain `t` is installed, or rustup installs it (minimal profile);
/// where it cannot (no network, no rustup), the error names the command.
pub(super) fn ensure_toolchain(t: &str) -> Result<(), Failure> {
    let installed =
        run(syncbench_model::secrets::command("rustup").args(["which", "--toolchain", t, "cargo"]));
    match installed {
        Ok(o) if o.status.success() => return Ok(()),
        Ok(_) => {}
        Err(e) => {
            return Err(build_failed(format!(
                "the variant asks for toolchain {t}, which needs rustup (https://rustup.rs): \
                 starting rustup: {e}"
            )));
        }
    }
    tracing::info!("installing toolchain {t}");
    let install = format!("rustup toolchain install {t} --profile minimal");
    let out = run(syncbench_model::secrets::command("rustup").args([
        "toolchain",
        "install",
        t,
        "--profile",
        "minimal",
        "--no-self-update",
    ]))
    .map_err(|e| build_failed(format!("running `{install}`: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(build_failed(format!(
            "toolchain {t} is not installed and `{install}` failed ({}); install it with that \
             command where the network allows, or remove the variant:\n{}",
            out.status,
            stderr_tail(&out)
        )))
    }
}

/// A copy of `tree` (its tracked and untracked, not ignored, files: what
/// cargo would build there, uncommitted changes included) in
/// `target_dir/tree`, with `Cargo.lock` updated to the variant's
/// dependency versions. Files are rewritten only where they differ, so
/// cargo sees the sources it built last time unchanged and rebuilds
/// nothing; the user's tree and its `Cargo.lock` are never written.
pub(super) fn pinned_tree(
    tree: &Path,
    target_dir: &Path,
    variant: &Variant,
) -> Result<PathBuf, Failure> {
    let copy = target_dir.join("tree");
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        build_failed(format!("{what} for variant {}: {e}", variant.name))
    };
    let listed = run(syncbench_model::secrets::command("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(tree))
    .map_err(|e| fail("listing the tree's files", &e))?;
    if !listed.status.success() {
        return Err(fail(
            "listing the tree's files (a variant with dependencies needs a git repository)",
            &stderr_tail(&listed),
        ));
    }
    // The copy may sit inside the tree (its target dir): never copy it into itself.
    let own = copy.strip_prefix(tree).ok().map(Path::to_owned);
    let target_inside = target_dir.strip_prefix(tree).ok().map(Path::to_owned);
    let mut wanted = std::collections::BTreeSet::new();
    for rel in listed.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rel = PathBuf::from(String::from_utf8_lossy(rel).into_owned());
        if own.as_ref().is_some_and(|o| rel.starts_with(o))
            || target_inside.as_ref().is_some_and(|t| rel.starts_with(t))
        {
            continue;
        }
        let from = tree.join(&rel);
        let Ok(bytes) = std::fs::read(&from) else {
            continue; // tracked but deleted in the working tree
        };
        let to = copy.join(&rel);
        if std::fs::read(&to).ok().as_deref() != Some(&bytes[..]) {
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail("copying the tree", &e))?;
            }
            std::fs::write(&to, &bytes).map_err(|e| fail("copying the tree", &e))?;
        }
        wanted.insert(rel);
    }
    remove_others(&copy, &copy, &wanted);
    let lock = tree.join("Cargo.lock");
    if lock.exists() {
        // Start from the tree's lock file every time, so a pin removed
        // from the variant is undone.
        let bytes = std::fs::read(&lock).map_err(|e| fail("reading Cargo.lock", &e))?;
        write_if_changed(&copy.join("Cargo.lock"), &bytes)
            .map_err(|e| fail("copying Cargo.lock", &e))?;
    }
    for (name, version) in &variant.dependencies {
        let mut cmd = syncbench_model::secrets::command("cargo");
        if let Some(t) = &variant.toolchain {
            cmd.arg(format!("+{t}"));
        }
        cmd.args(["update", "-p", name, "--precise", version])
            .current_dir(&copy);
        let out = run(&mut cmd).map_err(|e| fail("running cargo update", &e))?;
        if !out.status.success() {
            return Err(build_failed(format!(
                "variant {}: `cargo update -p {name} --precise {version}` failed ({}); check \
                 that {name} is a dependency and {version} one of its published versions:\n{}",
                variant.name,
                out.status,
                stderr_tail(&out)
            )));
        }
    }
    Ok(copy)
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes)
}

/// Removes the files of the copy the tree no longer has (keeping
/// `Cargo.lock`, which is the variant's own).
fn remove_others(root: &Path, dir: &Path, wanted: &std::collections::BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
        if path.is_dir() {
            remove_others(root, &path, wanted);
        } else if !wanted.contains(&rel) && rel != Path::new("Cargo.lock") {
            let _ = std::fs::remove_file(&path);
        }
    }
}
