//! Encoding and parsing sync frames: the per-document cost of the wire
//! format on both sides (base64 content inside JSON lines).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::{Content, DocFrame, DocId, LineSplitter, SendFrame, write_frame};
use std::hint::black_box;

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frames");
    for (name, size, count) in [("10KiB", 10 * 1024, 100), ("1MiB", 1024 * 1024, 4)] {
        let docs: Vec<SendFrame> = (0..count)
            .map(|i| {
                SendFrame::Doc(DocFrame {
                    id: DocId::new(format!("doc{i:06}")).unwrap(),
                    rev: "a1b2c3d4e5f60718:3|0f1e2d3c4b5a6978:1".parse().unwrap(),
                    content: Some(Content(vec![(i % 251) as u8; size])),
                })
            })
            .collect();
        let mut body = Vec::new();
        for d in &docs {
            write_frame(&mut body, d);
        }
        g.throughput(Throughput::Bytes((size * count) as u64));
        g.bench_function(format!("encode/{count}x{name}"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(body.len());
                for d in &docs {
                    write_frame(&mut out, black_box(d));
                }
                out
            })
        });
        // Parsed from 64 KiB chunks, as bodies arrive from the network.
        g.bench_function(format!("decode/{count}x{name}"), |b| {
            b.iter(|| {
                let mut s = LineSplitter::new(4 << 20);
                let mut n = 0;
                for chunk in body.chunks(64 * 1024) {
                    s.push(chunk);
                    while let Some(f) = s.next_frame::<SendFrame>().unwrap() {
                        black_box(f);
                        n += 1;
                    }
                }
                assert_eq!(n, count);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
