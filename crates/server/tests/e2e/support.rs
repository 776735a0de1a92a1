use client::{Device, InitOptions};
use protocol::UserId;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const PASSPHRASE: &str = "correct horse battery staple";
const SERVER: &str = env!("CARGO_BIN_EXE_sync-server");

/// A running `sync-server` process, killed when dropped.
#[derive(Debug)]
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    /// The services listener (mail delivery), always enabled in tests.
    pub services: SocketAddr,
    pub data: PathBuf,
    extra: Vec<String>,
}

/// The service token every test server accepts on its services listener.
pub const SERVICE_TOKEN: &str = "test-service-token";

impl TestServer {
    pub fn start(data: &Path) -> TestServer {
        Self::start_on(data, "127.0.0.1:0".parse().unwrap())
    }

    /// Starts the server and waits for the address it prints once bound.
    pub fn start_on(data: &Path, listen: SocketAddr) -> TestServer {
        Self::start_with(data, listen, "127.0.0.1:0".parse().unwrap(), &[])
    }

    /// With extra `serve` flags (e.g. `--quota 1MiB`).
    pub fn start_with_args(data: &Path, extra: &[&str]) -> TestServer {
        let any = "127.0.0.1:0".parse().unwrap();
        Self::start_with(data, any, any, extra)
    }

    /// Started through `wrapper` (e.g. `prlimit --nofile=64 --`), which
    /// must exec the server so that the pid stays the server's.
    pub fn start_wrapped(data: &Path, wrapper: &[&str], extra: &[&str]) -> TestServer {
        let any = "127.0.0.1:0".parse().unwrap();
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(SERVER);
        Self::start_cmd(cmd, data, any, any, extra)
    }

    fn start_with(
        data: &Path,
        listen: SocketAddr,
        services: SocketAddr,
        extra: &[&str],
    ) -> TestServer {
        Self::start_cmd(Command::new(SERVER), data, listen, services, extra)
    }

    fn start_cmd(
        mut cmd: Command,
        data: &Path,
        listen: SocketAddr,
        services: SocketAddr,
        extra: &[&str],
    ) -> TestServer {
        let mut child = cmd
            .args(["serve", "--listen", &listen.to_string(), "--data"])
            .arg(data)
            .args(["--services-listen", &services.to_string()])
            .args(extra)
            .env("SYNC_SERVICE_TOKEN", SERVICE_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning sync-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let (addr, services) = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split_once(", services on http://"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        TestServer {
            child,
            addr: addr.parse().unwrap(),
            services: services.parse().unwrap(),
            data: data.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Resident memory of the server process now, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// The most resident memory the server process has had (VmHWM).
    pub fn peak_rss_bytes(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"));
        kib * 1024
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn services_url(&self) -> String {
        format!("http://{}", self.services)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status of the graceful shutdown.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }

    /// Kills and starts the server again on the same addresses.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let extra = std::mem::take(&mut self.extra);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        *self = Self::start_with(&self.data.clone(), self.addr, self.services, &extra);
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn add_user(&self, name: &str) -> Account {
        add_user(&self.data, name)
    }

    pub fn user_db(&self, user: &UserId) -> PathBuf {
        self.data.join("users").join(format!("{user}.sqlite"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub user: UserId,
    pub token: String,
}

/// `sync-server user add NAME --json`, as an operator would run it.
pub fn add_user(data: &Path, name: &str) -> Account {
    let out = Command::new(SERVER)
        .args(["user", "add", name, "--json", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Account {
        user: UserId::new(v["user_id"].as_str().unwrap()).unwrap(),
        token: v["token"].as_str().unwrap().to_owned(),
    }
}

pub fn init_device(
    server: &TestServer,
    account: &Account,
    dir: &Path,
    passphrase: &str,
) -> Result<Device, client::ClientError> {
    Device::init(
        dir,
        InitOptions {
            server: server.url(),
            user: account.user.clone(),
            token: account.token.clone(),
            passphrase: passphrase.to_owned(),
            kdf: client::default_kdf(),
        },
    )
}

/// A server, one user and `n` devices of that user.
#[derive(Debug)]
pub struct Setup {
    pub server: TestServer,
    pub account: Account,
    pub devices: Vec<Device>,
    _dir: tempfile::TempDir,
}

impl Setup {
    pub fn new(n: usize) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(&dir.path().join("server"));
        let account = server.add_user("alice");
        let devices = (0..n)
            .map(|i| {
                init_device(
                    &server,
                    &account,
                    &dir.path().join(format!("device{i}")),
                    PASSPHRASE,
                )
                .unwrap()
            })
            .collect();
        Setup {
            server,
            account,
            devices,
            _dir: dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self._dir.path().join(name)
    }
}

pub fn id(s: &str) -> protocol::DocId {
    protocol::DocId::new(s).unwrap()
}

/// Every (id, plaintext) a device holds as current, sorted.
pub fn contents(device: &Device) -> Vec<(String, Vec<u8>)> {
    device
        .list()
        .unwrap()
        .into_iter()
        .filter(|d| !d.deleted)
        .map(|d| {
            let content = device.get(&d.id).unwrap().unwrap();
            (d.id.to_string(), content)
        })
        .collect()
}

/// Sends a request over a raw connection (`head` without the final blank
/// line, then `body` as written, ignoring write errors once the server
/// has answered and closed) and returns the status code. For refusals
/// sent before the body is read, which an HTTP client library reports as
/// a broken connection instead of the answer.
pub fn raw_status(addr: SocketAddr, head: &str, body: &[u8]) -> u16 {
    use std::io::Write;
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.write_all(format!("{head}\r\n\r\n").as_bytes()).unwrap();
    for chunk in body.chunks(8192) {
        if tcp.write_all(chunk).is_err() {
            break;
        }
    }
    read_status(&mut tcp).unwrap()
}

/// The status code of the HTTP answer arriving on `tcp`.
pub fn read_status(tcp: &mut std::net::TcpStream) -> std::io::Result<u16> {
    use std::io::Read;
    let mut line = [0u8; 12];
    tcp.read_exact(&mut line)?;
    std::str::from_utf8(&line[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP status line: {line:?}")))
}

/// The blob API of one user, over reqwest.
pub struct Api {
    pub http: reqwest::blocking::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(server: &TestServer, account: &Account) -> Api {
        Api {
            http: reqwest::blocking::Client::new(),
            base: format!("{}/v1/users/{}", server.url(), account.user),
            token: account.token.clone(),
        }
    }
    pub fn put(
        &self,
        path: &str,
        body: impl Into<reqwest::blocking::Body>,
    ) -> reqwest::blocking::Response {
        self.http
            .put(format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .unwrap()
    }
    pub fn get(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.http
            .get(format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
    }
    pub fn flag(
        &self,
        path: &str,
        flag: &str,
        expect: Option<&str>,
    ) -> reqwest::blocking::Response {
        self.http
            .post(format!("{}/{path}/flag", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({"flag": flag, "expect": expect}))
            .send()
            .unwrap()
    }
    pub fn delete(&self, path: &str) -> reqwest::blocking::Response {
        self.http
            .delete(format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
    }
    pub fn list(&self, query: &str) -> protocol::BlobList {
        let r = self.get(&format!("blobs?{query}")).send().unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
        r.json().unwrap()
    }
}

/// The `sync-client` binary of this workspace (built by `cargo test
/// --workspace`; built here when a test of this package alone runs
/// first), for tests that kill a real device process.
pub fn client_bin() -> PathBuf {
    let profile_dir = Path::new(SERVER)
        .parent()
        .expect("the binary has a directory");
    let bin = profile_dir.join("sync-client");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = profile_dir.parent().expect("target dir");
        let ok = std::process::Command::new(cargo)
            .args(["build", "-q", "-p", "client", "--bin", "sync-client"])
            .arg("--target-dir")
            .arg(target)
            .status()
            .expect("cargo runs");
        assert!(ok.success(), "building sync-client: {ok}");
    }
    bin
}
