//! The stores underneath sync: the server's per-user store (documents in
//! one transaction per upload, the change listing, a blob committed from a
//! synced temporary file) and a device's local store (documents written
//! and read, a stored blob decrypted), plus one blob moved each way through
//! a real server process.
//!
//! `cargo bench -p server --bench stores`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::{BlobId, ChangeFrame, Content, DocFrame, DocId, Namespace, ReplicaId, Revision};
use server::{Upload, UserDb};
use std::io::Write;
use std::time::Duration;

mod common;
use common::{Server, next};

const DOC: usize = 10 * 1024;

fn frames(from: usize, n: usize, replica: &ReplicaId) -> Vec<DocFrame> {
    let rev = Revision::default().incremented(replica);
    (from..from + n)
        .map(|i| DocFrame {
            id: DocId::new(format!("doc{i:08}")).unwrap(),
            rev: rev.clone(),
            content: Some(Content(vec![(i % 251) as u8; DOC])),
        })
        .collect()
}

/// One upload request's worth of documents, applied as the server does.
fn apply(db: &UserDb, replica: &ReplicaId, docs: Vec<DocFrame>, generation: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tx.blocking_send(Upload::Docs(docs)).unwrap();
    tx.blocking_send(Upload::End {
        generation,
        transaction_id: format!("t{generation}"),
    })
    .unwrap();
    drop(tx);
    db.apply_upload(replica, &mut rx).unwrap().unwrap();
}

fn server_store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = UserDb::open(dir.path().join("u.sqlite"), dir.path().join("blobs")).unwrap();
    let replica = ReplicaId::new("bench").unwrap();
    let mut g = c.benchmark_group("server_store");
    g.measurement_time(Duration::from_secs(5));

    let mut next_doc = 0;
    let mut generation = 0;
    g.throughput(Throughput::Bytes((100 * DOC) as u64));
    g.bench_function("insert_docs/100x10KiB", |b| {
        b.iter_batched(
            || {
                next_doc += 100;
                generation += 1;
                (frames(next_doc, 100, &replica), generation)
            },
            |(docs, generation)| apply(&db, &replica, docs, generation),
            criterion::BatchSize::PerIteration,
        )
    });

    let listed = UserDb::open(dir.path().join("l.sqlite"), dir.path().join("lblobs")).unwrap();
    for k in 0..10 {
        apply(
            &listed,
            &replica,
            frames(k * 100, 100, &replica),
            k as u64 + 1,
        );
    }
    g.throughput(Throughput::Bytes((1000 * DOC) as u64));
    g.bench_function("read_changes/1000x10KiB", |b| {
        b.iter(|| {
            let mut n = 0;
            listed
                .changes(0, None, |f| {
                    n += matches!(f, ChangeFrame::Doc { .. }) as usize;
                    true
                })
                .unwrap();
            assert_eq!(n, 1000);
        })
    });

    let ns = Namespace::new("bench").unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    for (name, len) in [("10KiB", 10 * 1024usize), ("1MiB", 1 << 20)] {
        let data = vec![7u8; len];
        let mut i = 0u64;
        g.throughput(Throughput::Bytes(len as u64));
        // What the server does after the body arrived: write, fsync, rename
        // and record.
        g.bench_function(format!("put_blob/{name}"), |b| {
            b.iter(|| {
                i += 1;
                let path = tmp.join(format!("t{i}"));
                let mut f = std::fs::File::create(&path).unwrap();
                f.write_all(&data).unwrap();
                f.sync_all().unwrap();
                let id = BlobId::new(format!("{name}-{i}")).unwrap();
                db.blob_commit(&ns, &id, &path, len as u64, None, u64::MAX)
                    .unwrap();
            })
        });
    }
    g.finish();
}

fn client_store(c: &mut Criterion) {
    let server = Server::start();
    let mut users = 0;
    let (mut a, b_dev, _dirs) = server.devices(next(&mut users));
    let mut g = c.benchmark_group("client_store");
    g.measurement_time(Duration::from_secs(5));
    let body = vec![3u8; DOC];
    let mut n = 0usize;
    g.throughput(Throughput::Bytes((100 * DOC) as u64));
    g.bench_function("put_docs/100x10KiB", |b| {
        b.iter(|| {
            let ids: Vec<DocId> = (n..n + 100)
                .map(|i| DocId::new(format!("d{i:08}")).unwrap())
                .collect();
            n += 100;
            a.put_many(ids.iter().map(|id| (id, &body[..]))).unwrap();
        })
    });
    let one = DocId::new("d00000000").unwrap();
    g.throughput(Throughput::Bytes(DOC as u64));
    g.bench_function("get_doc/10KiB", |b| {
        b.iter(|| a.get(&one).unwrap().unwrap())
    });

    // A blob stored on device B (fetched once), decrypted from its local
    // copy on each read.
    let ns = Namespace::new("bench").unwrap();
    let blob = vec![9u8; 16 << 20];
    let id = BlobId::new("local").unwrap();
    a.upload_blob(
        &ns,
        &id,
        std::io::Cursor::new(blob.clone()),
        blob.len() as u64,
    )
    .unwrap();
    b_dev.fetch_blob(&ns, &id).unwrap();
    g.throughput(Throughput::Bytes(blob.len() as u64));
    g.bench_function("read_blob/16MiB", |b| {
        b.iter(|| b_dev.read_blob(&ns, &id, &mut std::io::sink()).unwrap())
    });
    g.finish();

    // One blob each way through the server process: encrypt + upload on
    // A, download + verify + store on B.
    let mut g = c.benchmark_group("blob_transfer");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(2 * blob.len() as u64));
    let mut k = 0;
    g.bench_function("upload+download/16MiB", |b| {
        b.iter(|| {
            k += 1;
            let id = BlobId::new(format!("t{k}")).unwrap();
            a.upload_blob(
                &ns,
                &id,
                std::io::Cursor::new(blob.clone()),
                blob.len() as u64,
            )
            .unwrap();
            b_dev.fetch_blob(&ns, &id).unwrap();
            b_dev.delete_blob(&ns, &id).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, server_store, client_store);
criterion_main!(benches);
