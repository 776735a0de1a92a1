//! `sync-client bench`: the workload driver the harness runs against a
//! server built from the same commit. It speaks the JSON-lines contract of
//! `protocol::driver` on stdout; diagnostics go to stderr.

use anyhow::{Context, bail, ensure};
use client::{Device, InitOptions};
use crypto::KdfParams;
use protocol::DocId;
use protocol::driver::{DriverEvent, DriverLine, EXIT_UNKNOWN_WORKLOAD, parse_bytes};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Workloads this driver knows.
pub const WORKLOADS: &[&str] = &["docs"];

pub struct Args<'a> {
    pub workload: &'a str,
    pub server: &'a str,
    pub user: &'a protocol::UserId,
    pub token: &'a str,
    pub work_dir: &'a Path,
    pub params: BTreeMap<String, String>,
}

fn emit(event: DriverEvent) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, &DriverLine::new(event));
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Runs one phase and reports it; `f` returns (ops, bytes).
fn phase(name: &str, f: impl FnOnce() -> anyhow::Result<(u64, u64)>) -> anyhow::Result<()> {
    emit(DriverEvent::PhaseBegin { phase: name.into() });
    let t = Instant::now();
    let (ops, bytes) = f().with_context(|| format!("phase {name}"))?;
    emit(DriverEvent::PhaseEnd {
        phase: name.into(),
        seconds: t.elapsed().as_secs_f64(),
        ops,
        bytes,
    });
    Ok(())
}

/// Returns the process exit status.
pub fn run(args: Args) -> anyhow::Result<u8> {
    if !WORKLOADS.contains(&args.workload) {
        emit(DriverEvent::Error {
            kind: "unknown_workload".into(),
            message: format!("this driver knows {WORKLOADS:?}, not {:?}", args.workload),
        });
        return Ok(EXIT_UNKNOWN_WORKLOAD as u8);
    }
    emit(DriverEvent::Hello {
        workload: args.workload.into(),
    });
    if let Err(e) = docs(&args) {
        emit(DriverEvent::Error {
            kind: "failed".into(),
            message: format!("{e:#}"),
        });
        return Err(e);
    }
    emit(DriverEvent::Done);
    Ok(0)
}

fn param<T: std::str::FromStr>(
    args: &Args,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> anyhow::Result<T> {
    let raw = args
        .params
        .get(name)
        .with_context(|| format!("workload {} needs --param {name}=…", args.workload))?;
    parse(raw).map_err(|e| anyhow::anyhow!("--param {name}: {e}"))
}

/// Document sync: N docs of S bytes put on device A, uploaded, downloaded
/// on a fresh device B, a no-op sync, then one concurrent edit resolved.
fn docs(args: &Args) -> anyhow::Result<()> {
    let n: u64 = param(args, "docs", |s| {
        s.parse().map_err(|e| format!("{s:?}: {e}"))
    })?;
    let size = param(args, "size", parse_bytes)? as usize;
    let device = |name: &str| {
        Device::init(
            &args.work_dir.join(name),
            InitOptions {
                server: args.server.into(),
                user: args.user.clone(),
                token: args.token.into(),
                passphrase: "syncbench".into(),
                // Key derivation is not what this workload measures; its
                // 19 MiB would also hide the sync's own peak memory.
                kdf: KdfParams {
                    m_cost_kib: 256,
                    t_cost: 1,
                    p_cost: 1,
                },
            },
        )
    };
    let mut a = device("a")?;
    let mut b = device("b")?;
    let ids: Vec<DocId> = (0..n)
        .map(|i| DocId::new(format!("doc{i:06}")).expect("valid id"))
        .collect();
    let content =
        |i: usize| -> Vec<u8> { (0..size).map(|j| (i.wrapping_mul(31) + j) as u8).collect() };

    phase("put", || {
        // Generated one at a time, so the driver never holds the whole set.
        for chunk in ids.chunks(100) {
            let bodies: Vec<Vec<u8>> = chunk.iter().enumerate().map(|(k, _)| content(k)).collect();
            a.put_many(chunk.iter().zip(&bodies).map(|(id, b)| (id, &b[..])))?;
        }
        Ok((n, n * size as u64))
    })?;
    phase("upload", || {
        let r = a.sync()?;
        ensure!(r.sent == n, "uploaded {} of {n} documents", r.sent);
        Ok((r.sent, r.bytes_sent))
    })?;
    phase("download", || {
        let r = b.sync()?;
        ensure!(
            r.received == n,
            "downloaded {} of {n} documents",
            r.received
        );
        Ok((r.received, r.bytes_received))
    })?;
    // Correctness check: what B decrypts is what A wrote.
    if let Some(last) = ids.last() {
        let k = (ids.len() - 1) % 100;
        ensure!(
            b.get(last)?.as_deref() == Some(&content(k)[..]),
            "device B holds a wrong {last}"
        );
    }
    phase("noop_sync", || {
        let r = b.sync()?;
        ensure!(
            r.sent + r.received == 0,
            "a no-op sync moved {} documents",
            r.sent + r.received
        );
        Ok((1, 0))
    })?;
    phase("conflict", || {
        let id = DocId::new("conflicted")?;
        a.put(&id, b"base")?;
        a.sync()?;
        b.sync()?;
        a.put(&id, b"edit on a")?;
        b.put(&id, b"edit on b")?;
        a.sync()?;
        let r = b.sync()?;
        ensure!(
            r.new_conflicts == 1,
            "expected a conflict on device B, got {}",
            r.new_conflicts
        );
        b.resolve(&id, Some(b"resolved"))?;
        b.sync()?;
        a.sync()?;
        if a.get(&id)?.as_deref() != Some(b"resolved") {
            bail!("the resolution did not reach device A");
        }
        Ok((1, 0))
    })?;
    Ok(())
}
