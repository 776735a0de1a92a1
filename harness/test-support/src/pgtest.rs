//! A throwaway PostgreSQL server, for tests and benchmarks of the
//! PostgreSQL store: `initdb` into a temp dir (password logins only),
//! its own port on 127.0.0.1 and its own socket dir, stopped (fast
//! shutdown) and removed when dropped. Debian's `postgresql` package
//! provides the programs (`ci/deps.sh` installs it).
//!
//! PostgreSQL refuses to run as root: as root, the server runs as the
//! `postgres` user the package creates.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The superuser's name and password.
pub const USER: &str = "syncbench";
pub const PASSWORD: &str = "bench-secret";

/// What installs the server where it is missing.
pub const INSTALL: &str = "bash ci/deps.sh, or apt-get install postgresql";

#[derive(Debug)]
pub struct PgServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    uid: Option<(u32, u32)>,
    pub port: u16,
    /// Serving TLS with the certificate and key in the data dir.
    tls: bool,
}

/// The directory with `initdb` and `postgres`: Debian keeps them out of
/// PATH, under /usr/lib/postgresql/VERSION/bin (the newest wins).
pub fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|f| f.1).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
    })
}

/// The uid and gid to run the server as: ours, unless we are root.
fn server_user() -> Result<Option<(u32, u32)>, String> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    let euid = std::fs::metadata("/proc/self")
        .map_err(|e| e.to_string())?
        .uid();
    if euid != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .and_then(|f| Some(Some((f[2].parse().ok()?, f[3].parse().ok()?))))
        .ok_or_else(|| {
            "running as root, and there is no `postgres` user to run the server as".into()
        })
}

/// A fresh server, or `None` after saying why the test is skipped; in
/// CI (`CI` set, where `ci/deps.sh` installed the server) a server that
/// cannot start fails the test instead.
pub fn start_or_skip() -> Option<PgServer> {
    match PgServer::start() {
        Ok(s) => Some(s),
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: needs a PostgreSQL server: {why}");
            None
        }
    }
}

impl PgServer {
    /// Starts a fresh server; `Err` says why it cannot (and what installs it).
    pub fn start() -> Result<PgServer, String> {
        let bin = bin_dir().ok_or_else(|| format!("PostgreSQL is not installed ({INSTALL})"))?;
        let uid = server_user()?;
        let dir = tempfile::Builder::new()
            .prefix("syncbench-pg")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let own = |p: &Path| -> Result<(), String> {
            if let Some((u, g)) = uid {
                std::os::unix::fs::chown(p, Some(u), Some(g)).map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        own(dir.path())?;
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).map_err(|e| e.to_string())?;
        own(&pwfile)?;
        let mut server = PgServer {
            child: None,
            bin,
            uid,
            port: 0,
            dir,
            tls: false,
        };
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args([
                "-U",
                USER,
                "-A",
                "scram-sha-256",
                "--locale=C",
                "-E",
                "UTF8",
            ])
            .arg("--no-sync")
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        server.run()?;
        Ok(server)
    }

    fn command(&self, program: &str) -> Command {
        let mut c = syncbench_model::secrets::command(self.bin.join(program));
        if let Some((u, g)) = self.uid {
            c.uid(u).gid(g);
        }
        c.current_dir(self.dir.path());
        c
    }

    /// The server's data directory (its `postmaster.pid` names the server's pid).
    pub fn data_dir(&self) -> PathBuf {
        self.data()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server on a free port (found by binding port 0; tried
    /// again when another process takes it first) and waits until it
    /// says it accepts connections.
    fn run(&mut self) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..5 {
            // A restart tries its old port first, so URLs stay valid.
            let port = if attempt == 0 && self.port != 0 {
                self.port
            } else {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map_err(|e| e.to_string())?
                    .port()
            };
            let mut child = self
                .command("postgres")
                .arg("-D")
                .arg(self.data())
                .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
                .arg("-k")
                .arg(self.dir.path())
                .args(["-c", "fsync=off", "-c", "max_connections=50"])
                .args(if self.tls {
                    &[
                        "-c",
                        "ssl=on",
                        "-c",
                        "ssl_cert_file=server.crt",
                        "-c",
                        "ssl_key_file=server.key",
                    ][..]
                } else {
                    &[]
                })
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("postgres: {e}"))?;
            let stderr = child.stderr.take().expect("piped");
            let mut lines = BufReader::new(stderr).lines();
            let mut log = String::new();
            let ready = loop {
                match lines.next() {
                    Some(Ok(line)) => {
                        log.push_str(&line);
                        log.push('\n');
                        if line.contains("ready to accept connections") {
                            break true;
                        }
                    }
                    _ => break false,
                }
            };
            if ready {
                // Keep draining its log, or it blocks once the pipe is full.
                std::thread::spawn(move || for _ in lines {});
                self.child = Some(child);
                self.port = port;
                return Ok(());
            }
            let _ = child.wait();
            last = log;
        }
        Err(format!("postgres did not start: {last}"))
    }

    /// The server's URL for `database` with the superuser's password.
    pub fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// A new, empty database; its URL.
    pub fn database(&self, name: &str) -> String {
        let mut c = postgres::Client::connect(&self.url_of("postgres"), postgres::NoTls)
            .expect("connect to the test server");
        c.batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create database");
        self.url_of(name)
    }

    /// Stops the server (fast shutdown: clients are cut off).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT is PostgreSQL's fast shutdown; std sends only SIGKILL.
            // SAFETY: kill(2) has no memory-safety preconditions.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT)
            };
            let _ = child.wait();
        }
    }

    /// Serves TLS from now on with this certificate (chain) and key, both
    /// PEM; restarts the server (on its port) so a replaced one takes
    /// effect at once.
    pub fn use_tls(&mut self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        for (name, text) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = self.data().join(name);
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
            // The server refuses a key others can read.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            if let Some((u, g)) = self.uid {
                std::os::unix::fs::chown(&path, Some(u), Some(g)).map_err(|e| e.to_string())?;
            }
        }
        self.tls = true;
        self.restart()
    }

    /// Starts it again after [`PgServer::stop`] (on its old port if free).
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.run()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
