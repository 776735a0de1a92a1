//! A results database that is not ours is refused and left untouched.

use crate::support::*;

fn refused_untouched(path: &std::path::Path, expect: &str) {
    let before = std::fs::read(path).unwrap();
    let repo = repo_with(&[("x", "y")]);
    let out = syncbench(&[
        "--repo",
        repo.path().to_str().unwrap(),
        "show",
        "--db",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(expect) && err.contains("left untouched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the file was modified"
    );
    for suffix in ["-wal", "-shm"] {
        assert!(!std::path::Path::new(&format!("{}{suffix}", path.display())).exists());
    }
}

#[test]
fn a_text_file_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.sqlite");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(100)).unwrap();
    refused_untouched(&path, "is not a SQLite database");
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance REAL); INSERT INTO accounts VALUES (1, 9.5);")
            .unwrap();
    }
    refused_untouched(&path, "of another program");
}

#[test]
fn a_corrupt_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    let repo = repo_with(&[(
        "scenarios/t.toml",
        "name = \"t\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 1\nwarmup = 0\n",
    )]);
    let out = syncbench(&[
        "--repo",
        repo.path().to_str().unwrap(),
        "run",
        "t",
        "--db",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // Checkpoint, then overwrite the middle of the file with junk.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 4..len - 16] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", path.display()));
    let _ = std::fs::remove_file(format!("{}-shm", path.display()));
    refused_untouched(&path, "cannot be used as a results database");
}
