//! Document encryption throughput at the sizes documents have.
//! Compare with `openssl speed -evp aes-256-gcm` on the same machine.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crypto::{DocCipher, UserSecret};
use std::hint::black_box;

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

criterion_group!(benches, docs);
criterion_main!(benches);
