//! Document encryption throughput at the sizes documents have, and
//! streamed blob encryption (64 KiB segments) at blob sizes.
//! Compare with `openssl speed -evp aes-256-gcm` on the same machine.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crypto::{DocCipher, UserSecret};
use std::hint::black_box;
use std::io::Read;

fn docs(c: &mut Criterion) {
    let cipher = DocCipher::new(&UserSecret::generate().unwrap());
    let mut g = c.benchmark_group("doc");
    for (name, len) in [
        ("1KiB", 1024),
        ("16KiB", 16 * 1024),
        ("64KiB", 64 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        let pt = vec![0x5au8; len];
        let ct = cipher.encrypt("inbox.1", "abc:1", &pt).unwrap();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("encrypt/{name}"), |b| {
            b.iter(|| {
                cipher
                    .encrypt(black_box("inbox.1"), "abc:1", black_box(&pt))
                    .unwrap()
            })
        });
        g.bench_function(format!("decrypt/{name}"), |b| {
            b.iter(|| {
                cipher
                    .decrypt(black_box("inbox.1"), "abc:1", black_box(&ct))
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// Streams through the readers into a fixed buffer, as an upload does.
fn drain(mut r: impl Read, buf: &mut [u8]) -> u64 {
    let mut n = 0;
    loop {
        match r.read(buf).unwrap() {
            0 => return n,
            k => n += k as u64,
        }
    }
}

fn blobs(c: &mut Criterion) {
    let cipher = DocCipher::new(&UserSecret::generate().unwrap());
    let mut g = c.benchmark_group("blob");
    let mut buf = vec![0u8; 256 * 1024];
    for (name, len) in [("1MiB", 1usize << 20), ("16MiB", 16 << 20)] {
        let pt = vec![0x5au8; len];
        let mut ct = Vec::new();
        cipher
            .encrypt_blob("mail", "m1", &pt[..])
            .unwrap()
            .read_to_end(&mut ct)
            .unwrap();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("encrypt/{name}"), |b| {
            b.iter(|| {
                drain(
                    cipher
                        .encrypt_blob("mail", "m1", black_box(&pt[..]))
                        .unwrap(),
                    &mut buf,
                )
            })
        });
        g.bench_function(format!("decrypt/{name}"), |b| {
            b.iter(|| {
                drain(
                    cipher.decrypt_blob("mail", "m1", black_box(&ct[..])),
                    &mut buf,
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, docs, blobs);
criterion_main!(benches);
