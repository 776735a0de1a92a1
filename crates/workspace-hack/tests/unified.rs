//! The harness (`syncbench`) and the reference system's binaries must
//! resolve every dependency they share with the same features: otherwise
//! `syncbench run`, which builds the reference system in the same target
//! directory after `cargo run -p syncbench`, recompiles those shared
//! dependencies first (about a minute and a half on a fresh clone here).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each package (name, version, source) with its features, as `cargo
/// tree` resolves them for a build of `packages`.
fn features(packages: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["tree", "--locked", "-e", "normal,build", "--prefix", "none"])
        .args(["-f", "{p}|{f}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = cmd.output().expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_end().trim_end_matches("(*)").trim_end();
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        all.entry(package.trim().to_owned()).or_default().extend(
            features
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
        );
    }
    all
}

#[test]
fn the_harness_and_the_reference_system_share_dependency_features() {
    let harness = features(&["syncbench"]);
    let system = features(&["server", "client", "mx"]);
    let shared: Vec<&String> = harness.keys().filter(|p| system.contains_key(*p)).collect();
    assert!(
        shared.len() > 20,
        "cargo tree listed too little to compare: {shared:?}"
    );
    let differing: Vec<String> = shared
        .into_iter()
        .filter(|p| harness[*p] != system[*p])
        .map(|p| {
            let union: BTreeSet<&String> = harness[p].union(&system[p]).collect();
            format!("{p}: {union:?}")
        })
        .collect();
    assert!(
        differing.is_empty(),
        "these shared dependencies resolve with different features for the harness and \
         the reference system; add the union to crates/workspace-hack/Cargo.toml:\n{}",
        differing.join("\n")
    );
}
