//! PostgreSQL over TLS against a throwaway server with certificates of a
//! test CA: each `sslmode` checks what it says, each refusal names its
//! cause (a wrong CA, a wrong host name, an expired certificate, a server
//! without TLS), a worker's reconnect after the certificate expired
//! included; and a run over TLS stores what one over plain TCP does.

use crate::support::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::Path;
use std::process::{Command, Stdio};
use syncbench_test_support::pgtest::{self, PASSWORD, USER};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A server certificate for `names`, valid from `from` to `to`
    /// (years); its PEM and its key's.
    fn server(&self, names: &[&str], from: i32, to: i32) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).unwrap();
    }
}

/// `syncbench --db URL ARGS…`, in `repo`.
fn with_db(repo: &Path, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(SYNCBENCH)
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env("SYNCBENCH_DB", url)
        .env_remove("SYNCBENCH_MACHINE_TAG")
        .output()
        .unwrap()
}

fn url(host: &str, port: u16, db: &str, tls: &str) -> String {
    format!("postgres://{USER}:{PASSWORD}@{host}:{port}/{db}?{tls}")
}

#[test]
fn each_sslmode_checks_what_it_says_and_names_why_it_refuses() {
    let Some(mut pg) = pgtest::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with(&[("x", "y")]);
    let r = repo.path();
    let port = pg.port;
    pg.database("sb");
    let ca = Ca::new("syncbench test CA");
    let ca_pem = dir.path().join("ca.pem");
    ca.write(&ca_pem);
    let other = Ca::new("another CA");
    let other_pem = dir.path().join("other.pem");
    other.write(&other_pem);
    let ca_s = ca_pem.to_str().unwrap();
    let connects = |host: &str, tls: &str| with_db(r, &url(host, port, "sb", tls), &["queue"]);
    let refused = |host: &str, tls: &str, says: &str| {
        let out = connects(host, tls);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{tls}: {}", text(&out));
        assert!(
            err.contains(says),
            "{host} {tls}: expected {says:?} in {err}"
        );
        assert!(!err.contains(PASSWORD), "{err}");
    };

    // No TLS on the server yet: require says so; prefer (the default)
    // and disable connect.
    refused("127.0.0.1", "sslmode=require", "does not accept TLS");
    for tls in ["sslmode=prefer", "sslmode=disable", ""] {
        let out = connects("127.0.0.1", tls);
        assert!(out.status.success(), "{tls}: {}", text(&out));
    }

    // A certificate for "localhost" from the test CA.
    let (cert, key) = ca.server(&["localhost"], 2020, 2099);
    pg.use_tls(&cert, &key).unwrap();
    let full = format!("sslmode=verify-full&sslrootcert={ca_s}");
    let out = connects("localhost", &full);
    assert!(out.status.success(), "{}", text(&out));
    // The right CA, but the server is reached by a name the certificate
    // does not hold: verify-full refuses, verify-ca connects.
    refused("127.0.0.1", &full, "not valid for the host name 127.0.0.1");
    let out = connects(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca_s}"),
    );
    assert!(out.status.success(), "{}", text(&out));
    // Another CA.
    refused(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other_pem.display()),
        "not signed by a CA of sslrootcert=",
    );
    // require: encrypted, not verified.
    let out = connects("127.0.0.1", "sslmode=require");
    assert!(out.status.success(), "{}", text(&out));
    // Settings that cannot work, before any connection.
    refused(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        "/nonexistent/ca.pem",
    );
    refused("localhost", "sslmode=sometimes", "is not a mode");

    // The certificate expired: refused, by name.
    let (cert, key) = ca.server(&["localhost"], 2020, 2021);
    pg.use_tls(&cert, &key).unwrap();
    refused("localhost", &full, "certificate has expired");
}

#[test]
fn a_worker_reconnecting_after_the_certificate_expired_says_so() {
    let Some(mut pg) = pgtest::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("syncbench test CA");
    let ca_pem = dir.path().join("ca.pem");
    ca.write(&ca_pem);
    let (cert, key) = ca.server(&["localhost"], 2020, 2099);
    pg.use_tls(&cert, &key).unwrap();
    let db_url = url(
        "localhost",
        pg.port,
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={}", ca_pem.display()),
    );
    let repo = repo_with(&[(
        "scenarios/t.toml",
        "name = \"t\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 1\nwarmup = 0\n",
    )]);
    let r = repo.path();
    // The worker connects and waits for jobs.
    let mut worker = Command::new(SYNCBENCH)
        .arg("--repo")
        .arg(r)
        .args(["worker", "--lease", "3s", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .env("SYNCBENCH_DB", &db_url)
        .env_remove("SYNCBENCH_MACHINE_TAG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(worker.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.contains("waiting for jobs"), "{line}");
    // The certificate expires and the server restarts: the worker's
    // connection drops, and every reconnect is refused.
    let (cert, key) = ca.server(&["localhost"], 2020, 2021);
    pg.use_tls(&cert, &key).unwrap();
    let out = worker.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("certificate has expired"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}

#[test]
fn a_run_over_tls_stores_what_one_over_tcp_does() {
    let Some(mut pg) = pgtest::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("syncbench test CA");
    let ca_pem = dir.path().join("ca.pem");
    ca.write(&ca_pem);
    let (cert, key) = ca.server(&["localhost"], 2020, 2099);
    pg.use_tls(&cert, &key).unwrap();
    pg.database("over_tls");
    pg.database("over_tcp");
    // over_tls takes TLS connections only: what is stored there came
    // over TLS.
    let hba = pg.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("hostnossl over_tls all all reject\n{rules}")).unwrap();
    pg.restart().unwrap();
    let tls = url(
        "localhost",
        pg.port,
        "over_tls",
        &format!("sslmode=verify-full&sslrootcert={}", ca_pem.display()),
    );
    let tcp = url("127.0.0.1", pg.port, "over_tcp", "sslmode=disable");
    let repo = repo_with(&[("x", "y")]);
    let r = repo.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/criterion-0.8");
    let mut exported = Vec::new();
    for db in [&tls, &tcp] {
        let out = with_db(r, db, &["ingest", "criterion", fixtures.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let out = with_db(r, db, &["export", "--format", "json"]);
        assert!(out.status.success(), "{}", text(&out));
        let mut v = json(&out);
        // What differs between any two runs: when, and how syncbench was called.
        for run in v["runs"].as_array_mut().unwrap() {
            for field in ["started_unix", "finished_unix", "command_line", "id"] {
                run["run"].as_object_mut().unwrap().remove(field);
            }
        }
        exported.push(v);
    }
    assert_eq!(exported[0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(exported[0], exported[1]);
    // Each store's dashboard in a directory of its own, never the
    // repository's SQLite one.
    for (db, dir) in [
        (&tls, "pg-localhost-over_tls"),
        (&tcp, "pg-127.0.0.1-over_tcp"),
    ] {
        let out = with_db(r, db, &["report"]);
        assert!(out.status.success(), "{}", text(&out));
        let site = r.join(format!("target/syncbench-report-{dir}"));
        assert!(site.join("index.html").is_file(), "{}", text(&out));
    }
    assert!(!r.join("target/syncbench-report").exists());
    // And over_tls refuses a connection without TLS.
    let plain = url("127.0.0.1", pg.port, "over_tls", "sslmode=disable");
    let out = with_db(r, &plain, &["queue"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
