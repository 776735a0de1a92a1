//! A real `sync-server` process on loopback and fresh devices on it,
//! shared by the benches.

use client::{Device, InitOptions};
use protocol::UserId;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const SERVER: &str = env!("CARGO_BIN_EXE_sync-server");

pub struct Server {
    child: Child,
    url: String,
    data: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(SERVER)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        Server { child, url, data }
    }

    /// A fresh user with two fresh devices.
    pub fn devices(&self, n: u64) -> (Device, Device, tempfile::TempDir) {
        let out = Command::new(SERVER)
            .args(["user", "add", &format!("u{n}"), "--json", "--data"])
            .arg(self.data.path())
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let dirs = tempfile::tempdir().unwrap();
        let init = |name: &str| {
            Device::init(
                &dirs.path().join(name),
                InitOptions {
                    server: self.url.clone(),
                    user: UserId::new(v["user_id"].as_str().unwrap()).unwrap(),
                    token: v["token"].as_str().unwrap().to_owned(),
                    passphrase: "bench".into(),
                    kdf: client::default_kdf(),
                },
            )
            .unwrap()
        };
        (init("a"), init("b"), dirs)
    }
}

/// A new user name for every iteration: each starts from empty databases.
pub fn next(n: &mut u64) -> u64 {
    *n += 1;
    *n
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
