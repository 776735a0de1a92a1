//! The harness's invariants (ARCHITECTURE.md, "Invariants"), checked: each
//! crate's dependencies are the ones its place in the layering allows,
//! SQL appears only in the store, the analysis crate does no IO, nothing
//! below the binary prints, `unsafe` is only in `measure/src/proc.rs`, and
//! no function of the harness runs over 100 lines. A failure names the
//! file and line, and what to do if the change is meant.
//!
//! These read the sources and manifests (no build of their own), so they
//! run in a second; clippy (`.ci/run`) enforces the same rules at compile
//! time where it can (`print_stdout`, `disallowed-methods`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The crates that ship (test-support is a dev-dependency only), by
/// directory under `harness/`.
const SHIPPED: &[&str] = &["model", "analysis", "store", "measure", "site", "."];

/// Every `.rs` file under `dir`, recursively, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The source lines of a shipped crate's `src/`, without comments (a line
/// whose first non-blank characters are `//`).
fn code_lines(krate: &str) -> Vec<(PathBuf, usize, String)> {
    let mut out = Vec::new();
    for file in rust_files(&harness().join(krate).join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") {
                out.push((file.clone(), i + 1, line.to_owned()));
            }
        }
    }
    out
}

fn dependencies(krate: &str, table: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(harness().join(krate).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest
        .get(table)
        .and_then(|t| t.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn each_crate_depends_only_on_what_its_layer_allows() {
    // The arrows of the design: model <- analysis <- site -> store -> model,
    // measure -> model, and the CLI over all. A dependency outside these
    // sets is a new arrow: if it is meant, add it here and to
    // ARCHITECTURE.md's crate graph.
    let allowed: &[(&str, &[&str])] = &[
        (
            "model",
            &["serde", "serde_json", "thiserror", "toml", "workspace-hack"],
        ),
        (
            "analysis",
            &["serde", "serde_json", "syncbench-model", "workspace-hack"],
        ),
        (
            "store",
            &[
                "postgres",
                "rusqlite",
                "rustls",
                "rustls-native-certs",
                "serde",
                "serde_json",
                "sqlite-util",
                "syncbench-model",
                "thiserror",
                "tokio-postgres-rustls",
                "workspace-hack",
            ],
        ),
        (
            "measure",
            &[
                "libc",
                "perf-event2",
                "protocol",
                "reqwest",
                "serde",
                "serde_json",
                "syncbench-model",
                "sysinfo",
                "tempfile",
                "thiserror",
                "tracing",
                "workspace-hack",
            ],
        ),
        (
            "site",
            &[
                "minijinja",
                "serde",
                "serde_json",
                "syncbench-analysis",
                "syncbench-model",
                "syncbench-store",
                "thiserror",
                "tracing",
                "workspace-hack",
            ],
        ),
        (
            ".",
            &[
                "anyhow",
                "clap",
                "ctrlc",
                "git2",
                "indicatif",
                "reqwest",
                "rustls",
                "serde",
                "serde_json",
                "syncbench-analysis",
                "syncbench-measure",
                "syncbench-model",
                "syncbench-site",
                "syncbench-store",
                "tempfile",
                "thiserror",
                "toml",
                "tracing",
                "tracing-subscriber",
                "workspace-hack",
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (krate, allowed) in allowed {
        let allowed: BTreeSet<String> = allowed.iter().map(|s| s.to_string()).collect();
        let actual = dependencies(krate, "dependencies");
        for extra in actual.difference(&allowed) {
            wrong.push(format!(
                "harness/{krate} depends on {extra}, which its layer does not allow"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n(if the new arrow is meant, add it to this test and to ARCHITECTURE.md's crate graph)",
        wrong.join("\n")
    );
}

#[test]
fn the_test_support_crate_is_only_ever_a_dev_dependency() {
    let root = harness().join("..");
    let mut manifests: Vec<PathBuf> = SHIPPED
        .iter()
        .map(|k| harness().join(k).join("Cargo.toml"))
        .collect();
    for entry in std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(Result::unwrap)
    {
        manifests.push(entry.path().join("Cargo.toml"));
    }
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        for section in ["dependencies", "build-dependencies"] {
            let has = table
                .get(section)
                .and_then(|t| t.as_table())
                .is_some_and(|t| t.contains_key("syncbench-test-support"));
            assert!(
                !has,
                "{}: syncbench-test-support under [{section}]: it is for tests only ([dev-dependencies])",
                manifest.display()
            );
        }
    }
}

#[test]
fn sql_is_written_only_in_the_store() {
    const SQL: &[&str] = &[
        "SELECT ",
        "INSERT INTO",
        "CREATE TABLE",
        "CREATE INDEX",
        "ALTER TABLE",
        "DROP TABLE",
        "DELETE FROM",
        "PRAGMA ",
    ];
    let mut found = Vec::new();
    for krate in SHIPPED.iter().filter(|k| **k != "store") {
        for (file, n, line) in code_lines(krate) {
            if SQL.iter().any(|s| line.contains(s)) {
                found.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside harness/store (add a query to the Connection trait instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn analysis_does_no_io_and_reads_no_clock() {
    // What clippy.toml of the crate disallows, found in the source too
    // (so this holds even where clippy is not run).
    const IO: &[&str] = &[
        "std::fs",
        "std::process",
        "std::net",
        "std::env",
        "std::io::std",
        "Instant",
        "SystemTime",
        "tokio",
        "File::",
    ];
    let mut found = Vec::new();
    for (file, n, line) in code_lines("analysis") {
        if IO.iter().any(|s| line.contains(s)) {
            found.push(format!("{}:{n}: {}", file.display(), line.trim()));
        }
    }
    assert!(
        found.is_empty(),
        "IO or a clock in harness/analysis (take the value as an argument):\n{}",
        found.join("\n")
    );
    let clippy = std::fs::read_to_string(harness().join("analysis/clippy.toml")).unwrap();
    for entry in [
        "std::fs::read_to_string",
        "std::fs::File",
        "std::time::Instant",
        "std::env::var",
    ] {
        assert!(
            clippy.contains(&format!("\"{entry}\"")),
            "harness/analysis/clippy.toml no longer disallows {entry}"
        );
    }
}

#[test]
fn only_the_binary_prints() {
    let mut found = Vec::new();
    for krate in SHIPPED {
        let lib = harness().join(krate).join("src/lib.rs");
        let text = std::fs::read_to_string(&lib).unwrap();
        assert!(
            text.contains("#![deny(clippy::print_stdout, clippy::print_stderr)]"),
            "{}: the crate must deny print_stdout and print_stderr",
            lib.display()
        );
        for (file, n, line) in code_lines(krate) {
            // The binary's commands/ and main.rs print; nothing else does.
            let binary = *krate == "."
                && (file.ends_with("main.rs") || file.to_string_lossy().contains("/src/commands/"));
            let prints = ["println!", "eprintln!", "print!(", "eprint!("]
                .iter()
                .any(|p| line.contains(p));
            if prints && !binary {
                found.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "printing outside the binary's commands (return the text; commands/ prints it):\n{}",
        found.join("\n")
    );
}

#[test]
fn unsafe_code_is_only_in_the_process_module() {
    let allowed = harness().join("measure/src/proc.rs");
    let mut found = Vec::new();
    for krate in SHIPPED {
        for (file, n, line) in code_lines(krate) {
            let t = line.trim_start();
            let is_unsafe = t.contains("unsafe {")
                || t.starts_with("unsafe ")
                || t.contains(" unsafe fn")
                || t.contains("unsafe impl")
                || t.contains("allow(unsafe_code)");
            if is_unsafe && file != allowed {
                found.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "unsafe code outside harness/measure/src/proc.rs:\n{}",
        found.join("\n")
    );
}

/// Functions of `lines` (rustfmt'd Rust) longer than `max` lines, from the
/// `fn` line to the closing brace at the same indentation.
fn long_functions(lines: &[&str], max: usize) -> Vec<(usize, String, usize)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        let Some(name) = fn_name(t) else { continue };
        // The body opens where the signature's last line ends with `{`; a
        // signature ending with `;` (a trait's) or a one-line body has none.
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';') || (l.ends_with('}') && l.contains('{'))
        }) else {
            continue;
        };
        if !lines[open].trim_end().ends_with('{') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = (open + 1..lines.len()).find(|&j| lines[j].trim_end() == close) {
            let length = end - i + 1;
            if length > max {
                out.push((i + 1, name, length));
            }
        }
    }
    out
}

/// The name of the function a trimmed line declares, if it declares one.
fn fn_name(t: &str) -> Option<String> {
    let mut rest = t;
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
        "extern \"C\" ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

#[test]
fn the_length_check_finds_a_long_function_and_passes_a_short_one() {
    let mut long = vec!["    pub fn long(", "        a: u8,", "    ) -> u8 {"];
    long.extend(std::iter::repeat_n("        a;", 100));
    long.extend([
        "        a",
        "    }",
        "    fn short() -> u8 { 1 }",
        "    fn decl(&self);",
    ]);
    assert_eq!(
        long_functions(&long, 100),
        vec![(1, "long".to_owned(), 105)]
    );
    assert_eq!(long_functions(&long, 105), vec![]);
}

#[test]
fn no_function_of_the_harness_runs_over_100_lines() {
    let mut found = Vec::new();
    for krate in SHIPPED.iter().chain(&["test-support"]) {
        for file in rust_files(&harness().join(krate).join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (line, name, length) in long_functions(&lines, 100) {
                found.push(format!(
                    "{}:{line}: {name} is {length} lines",
                    file.display()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "functions over 100 lines (split them where the steps are):\n{}",
        found.join("\n")
    );
}
