//! End to end: device A uploads N documents of size S to a real
//! `sync-server` process on loopback, device B downloads them all.
//! Sizes from Soledad's published benchmarks (10 MB per point).
//!
//! `cargo bench -p server --bench roundtrip`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protocol::DocId;
use std::time::{Duration, Instant};

mod common;
use common::{Server, next};

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
