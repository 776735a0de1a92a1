//! End to end: device A uploads N documents of size S to a real
//! `sync-server` process on loopback, device B downloads them all.
//! Sizes from Soledad's published benchmarks (10 MB per point).
//!
//! `cargo bench -p server --bench roundtrip`

use client::{Device, InitOptions};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protocol::{DocId, UserId};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_sync-server");

struct Server {
    child: Child,
    url: String,
    data: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
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
    fn devices(&self, n: u64) -> (Device, Device, tempfile::TempDir) {
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
fn next(n: &mut u64) -> u64 {
    *n += 1;
    *n
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn roundtrip(c: &mut Criterion) {
    let server = Server::start();
    let mut users = 0;
    let mut g = c.benchmark_group("roundtrip");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (count, size_kib) in [(1000usize, 10usize), (100, 100), (10, 1000)] {
        let ids: Vec<DocId> = (0..count)
            .map(|i| DocId::new(format!("msg{i:05}")).unwrap())
            .collect();
        let body: Vec<u8> = (0..size_kib * 1024).map(|i| (i % 251) as u8).collect();
        g.throughput(Throughput::Bytes((count * body.len()) as u64));
        let point = format!("{count}x{size_kib}KiB");
        // Upload from A, then download on B: the figure the issue asks for.
        g.bench_function(BenchmarkId::new("upload+download", &point), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (mut a, mut bdev, _dirs) = server.devices(next(&mut users));
                        a.put_many(ids.iter().map(|i| (i, &body[..]))).unwrap();
                        let t = Instant::now();
                        let up = a.sync().unwrap();
                        let down = bdev.sync().unwrap();
                        let took = t.elapsed();
                        assert_eq!((up.sent, down.received), (count as u64, count as u64));
                        took
                    })
                    .sum()
            })
        });
        // The same, one side at a time, to see where the time goes.
        g.bench_function(BenchmarkId::new("upload", &point), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (mut a, _b, _dirs) = server.devices(next(&mut users));
                        a.put_many(ids.iter().map(|i| (i, &body[..]))).unwrap();
                        let t = Instant::now();
                        a.sync().unwrap();
                        t.elapsed()
                    })
                    .sum()
            })
        });
        g.bench_function(BenchmarkId::new("download", &point), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (mut a, mut bdev, _dirs) = server.devices(next(&mut users));
                        a.put_many(ids.iter().map(|i| (i, &body[..]))).unwrap();
                        a.sync().unwrap();
                        let t = Instant::now();
                        bdev.sync().unwrap();
                        t.elapsed()
                    })
                    .sum()
            })
        });
        // Encrypting and storing locally, before any sync.
        g.bench_function(BenchmarkId::new("put", &point), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (mut a, _b, _dirs) = server.devices(next(&mut users));
                        let t = Instant::now();
                        a.put_many(ids.iter().map(|i| (i, &body[..]))).unwrap();
                        t.elapsed()
                    })
                    .sum()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
