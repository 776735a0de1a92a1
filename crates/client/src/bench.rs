//! `sync-client bench`: the workload driver the harness runs against a
//! server built from the same commit. It speaks the JSON-lines contract of
//! `protocol::driver` on stdout; diagnostics go to stderr.

use anyhow::{Context, bail, ensure};
use client::{Device, InitOptions};
use crypto::KdfParams;
use protocol::DocId;
use protocol::driver::{
    BARRIER_ENV, DriverEvent, DriverLine, EXIT_UNKNOWN_WORKLOAD, TIME_SCALE_ENV, parse_bytes,
};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::time::Instant;

/// Workloads this driver knows.
pub const WORKLOADS: &[&str] = &["docs", "blobs", "mail", "load"];

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

/// How many times slower than native the harness runs us (valgrind):
/// our own deadlines stretch by it (`protocol::driver`).
fn time_scale() -> u32 {
    std::env::var(TIME_SCALE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| (1..=1000).contains(s))
        .unwrap_or(1)
}

/// Whether the harness asked for the phase barrier (`protocol::driver`).
fn barrier_asked() -> bool {
    static ASKED: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var(BARRIER_ENV).is_ok_and(|v| v == "1"));
    *ASKED
}

/// Waits at a phase boundary until the harness has read its counters.
fn barrier() {
    if barrier_asked() {
        let mut line = String::new();
        // End of input (the harness is gone) releases the driver too.
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
}

/// Runs one phase and reports it, with the requests it made; `f` returns
/// (ops, bytes).
fn phase(name: &str, f: impl FnOnce() -> anyhow::Result<(u64, u64)>) -> anyhow::Result<()> {
    emit(DriverEvent::PhaseBegin { phase: name.into() });
    barrier();
    let before = client::traffic::snapshot();
    let t = Instant::now();
    let (ops, bytes) = f().with_context(|| format!("phase {name}"))?;
    let seconds = t.elapsed().as_secs_f64();
    traffic_metrics(name, &client::traffic::snapshot().since(&before));
    emit(DriverEvent::PhaseEnd {
        phase: name.into(),
        seconds,
        ops,
        bytes,
    });
    barrier();
    Ok(())
}

/// A phase's HTTP traffic as metrics: `PHASE.http.requests` (and by kind
/// of request), body bytes each way, and retried requests. Exact: the
/// same work makes the same requests on any machine.
fn traffic_metrics(phase: &str, t: &client::traffic::Traffic) {
    metric(
        &format!("{phase}.http.requests"),
        "count",
        false,
        t.requests() as f64,
    );
    for (kind, k) in &t.by_kind {
        metric(
            &format!("{phase}.http.requests.{kind}"),
            "count",
            false,
            k.requests as f64,
        );
    }
    metric(
        &format!("{phase}.http.sent"),
        "B",
        false,
        t.sent_bytes() as f64,
    );
    metric(
        &format!("{phase}.http.received"),
        "B",
        false,
        t.received_bytes() as f64,
    );
    metric(
        &format!("{phase}.http.retries"),
        "count",
        false,
        t.retries as f64,
    );
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
        barrier: barrier_asked(),
    });
    let result = match args.workload {
        "docs" => docs(&args),
        "blobs" => blobs(&args),
        "load" => load(&args),
        _ => mail(&args),
    };
    if let Err(e) = result {
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

fn count(args: &Args, name: &str) -> anyhow::Result<u64> {
    param(args, name, |s| s.parse().map_err(|e| format!("{s:?}: {e}")))
}

/// A new device of the bench user in `work_dir/name`.
fn device(args: &Args, name: &str) -> Result<Device, client::ClientError> {
    Device::init(
        &args.work_dir.join(name),
        InitOptions {
            server: args.server.into(),
            user: args.user.clone(),
            token: args.token.into(),
            passphrase: "syncbench".into(),
            // Key derivation is not what these workloads measure; its
            // 19 MiB would also hide the sync's own peak memory.
            kdf: KdfParams {
                m_cost_kib: 256,
                t_cost: 1,
                p_cost: 1,
            },
        },
    )
}

/// Document sync: N docs of S bytes put on device A, uploaded, downloaded
/// on a fresh device B, a no-op sync, then one concurrent edit resolved.
fn docs(args: &Args) -> anyhow::Result<()> {
    let n = count(args, "docs")?;
    let size = param(args, "size", parse_bytes)? as usize;
    let mut a = device(args, "a")?;
    let mut b = device(args, "b")?;
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

fn metric(name: &str, unit: &str, higher_is_better: bool, value: f64) {
    emit(DriverEvent::Metric {
        name: name.into(),
        unit: unit.into(),
        higher_is_better,
        value,
    });
}

/// Concurrent clients (see `load.rs`): `clients` devices for `seconds`
/// with a request `mix`; phases seed, load, verify. Reports requests per
/// second, latency percentiles and errors overall and per kind of request,
/// and the generator's own CPU.
fn load(args: &Args) -> anyhow::Result<()> {
    use crate::load::{self, Plan, Target};
    let opt = |name: &str, default: &str| -> String {
        args.params
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.into())
    };
    let clients = count(args, "clients")? as usize;
    ensure!(clients > 0, "--param clients must be at least 1");
    let seconds: f64 = opt("seconds", "5")
        .parse()
        .ok()
        .filter(|s: &f64| *s > 0.0 && s.is_finite())
        .context("--param seconds must be a positive number")?;
    let plan = Plan {
        clients,
        duration: std::time::Duration::from_secs_f64(seconds),
        mix: Plan::mix(&opt("mix", "mixed"))?,
        upload_size: parse_bytes(&opt("size", "10KiB")).map_err(anyhow::Error::msg)? as usize,
        seeded: count(args, "seed").unwrap_or(100).max(1) as usize,
        list_limit: count(args, "list_limit").unwrap_or(10) as usize,
        trickle: count(args, "trickle").unwrap_or(0) as usize,
        stalled: count(args, "stalled").unwrap_or(0) as usize,
    };
    let target = Target::new(args.server, args.user, args.token)?;
    phase("seed", || {
        load::seed(&target, plan.seeded, plan.upload_size)?;
        if plan.stalled > 0 {
            load::seed_one(&target, load::STALL_BLOB, load::STALL_BLOB_BYTES)?;
        }
        Ok((plan.seeded as u64, (plan.seeded * plan.upload_size) as u64))
    })?;
    let mut outcome = None;
    let mut cpu = 0.0;
    phase("load", || {
        let c0 = load::own_cpu_seconds();
        let o = load::run(&target, &plan)?;
        cpu = load::own_cpu_seconds() - c0;
        let done: u64 = o.latencies.values().map(|l| l.len() as u64).sum();
        let bytes = o.latencies.get("upload").map_or(0, Vec::len) * plan.upload_size;
        outcome = Some(o);
        Ok((done, bytes as u64))
    })?;
    let mut o = outcome.expect("the load phase ran");
    let secs = o.seconds.max(1e-9);
    let mut all: Vec<u32> = o.latencies.values().flatten().copied().collect();
    all.sort_unstable();
    let report = |prefix: &str, sorted: &[u32]| {
        metric(
            &format!("{prefix}.requests"),
            "ops/s",
            true,
            sorted.len() as f64 / secs,
        );
        for (q, name) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
            metric(
                &format!("{prefix}.{name}"),
                "s",
                false,
                load::quantile(sorted, q) / 1e6,
            );
        }
    };
    report("load", &all);
    for (kind, l) in o.latencies.iter_mut() {
        l.sort_unstable();
        report(kind, l);
    }
    metric("load.errors", "count", false, o.errors as f64);
    if plan.trickle + plan.stalled > 0 {
        metric("load.misbehaving_cut", "count", false, o.cut as f64);
    }
    metric("load.retries", "count", false, o.retries as f64);
    metric("load.generator_cpu", "%", false, 100.0 * cpu / secs);
    for e in &o.error_samples {
        eprintln!("load: error: {e}");
    }
    eprintln!(
        "load: {} requests in {secs:.2} s ({:.0}/s), {} errors, {} retries, generator CPU {:.0}%",
        all.len(),
        all.len() as f64 / secs,
        o.errors,
        o.retries,
        100.0 * cpu / secs
    );
    phase("verify", || {
        load::verify(&target, &o)?;
        // One check (two listings), whatever it covered: a rate of it
        // would be a meaningless series.
        Ok((1, 0))
    })?;
    Ok(())
}

/// Deterministic bytes of blob `seed`, generated as they are read, so a
/// 1 GiB blob never exists in the driver's memory.
struct Pattern {
    seed: u64,
    pos: u64,
    len: u64,
}

impl Pattern {
    fn new(seed: u64, len: u64) -> Self {
        Pattern { seed, pos: 0, len }
    }
    fn byte(seed: u64, pos: u64) -> u8 {
        (pos.wrapping_mul(0x9E37_79B9).wrapping_add(seed) >> 7) as u8 ^ pos as u8
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = Self::byte(self.seed, self.pos + i as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Compares what is written with a [`Pattern`].
struct Expect(Pattern, bool);
impl Write for Expect {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.1 &= self.0.pos < self.0.len && b == Pattern::byte(self.0.seed, self.0.pos);
            self.0.pos += 1;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Blobs: N blobs of S bytes encrypted and uploaded (streamed) from device
/// A, then downloaded, verified and stored on a fresh device B.
fn blobs(args: &Args) -> anyhow::Result<()> {
    let n = count(args, "count")?;
    let size = param(args, "size", parse_bytes)?;
    let a = device(args, "a")?;
    let b = device(args, "b")?;
    let ns = protocol::Namespace::new("bench")?;
    let ids: Vec<protocol::BlobId> = (0..n)
        .map(|i| protocol::BlobId::new(format!("blob{i:06}")).expect("valid id"))
        .collect();
    phase("upload", || {
        for (i, id) in ids.iter().enumerate() {
            a.upload_blob(&ns, id, Pattern::new(i as u64, size), size)?;
        }
        Ok((n, n * size))
    })?;
    phase("download", || {
        for id in &ids {
            b.fetch_blob(&ns, id)?;
        }
        Ok((n, n * size))
    })?;
    // Correctness check (not timed): the last blob decrypts to what A sent.
    if let Some(last) = ids.last() {
        let mut check = Expect(Pattern::new(ids.len() as u64 - 1, size), true);
        let got = b.read_blob(&ns, last, &mut check)?;
        ensure!(got == size && check.1, "device B holds a wrong {last}");
    }
    Ok(())
}

/// A seeded generator (splitmix64): the message sizes and contents must be
/// the same in every run and at every commit; a few lines instead of a
/// dependency on a particular `rand` version's stream.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A standard normal value (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}

/// Message sizes of the provider's week of mail (BRIEF): a log-normal with
/// median 10 KiB and mean about 110 KiB, capped at 25 MiB.
fn provider_sizes(n: u64, seed: u64) -> Vec<u64> {
    let sigma = (2.0 * 11f64.ln()).sqrt();
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|_| {
            let s = 10240.0 * (sigma * rng.normal()).exp();
            (s as u64).clamp(600, 25 << 20)
        })
        .collect()
}

/// An RFC 5322 message of about `size` bytes: headers, a text body, and on
/// every fifth message part of the size as a base64 attachment.
fn message(i: u64, size: u64, rng: &mut SplitMix) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "sync",
        "blob",
        "commit",
        "metadata",
        "inbox",
        "encrypted",
        "device",
        "server",
        "the",
        "of",
        "and",
        "benchmark",
        "latency",
        "message",
        "delivery",
        "a",
    ];
    let mut m = format!(
        "From: Sender {i} <sender{}@example.org>\r\nTo: bench@example.org\r\nSubject: Message {i} about {}\r\nDate: Tue, 1 Jul 2025 {:02}:{:02}:{:02} +0000\r\nMessage-ID: <{i}.{}@example.org>\r\nMIME-Version: 1.0\r\n",
        i % 97,
        WORDS[(rng.next() % WORDS.len() as u64) as usize],
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60,
        rng.next()
    );
    let attach = i % 5 == 4 && size > 4096;
    let text_len = if attach { size / 4 } else { size }.saturating_sub(m.len() as u64 + 200);
    let mut text = String::with_capacity(text_len as usize + 16);
    while (text.len() as u64) < text_len {
        text += WORDS[(rng.next() % WORDS.len() as u64) as usize];
        text += if rng.next().is_multiple_of(12) {
            "\r\n"
        } else {
            " "
        };
    }
    if attach {
        m += "Content-Type: multipart/mixed; boundary=\"part\"\r\n\r\n--part\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
        m += &text;
        m += "\r\n--part\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n";
        let raw_len = (size * 3 / 4).saturating_sub(m.len() as u64) * 3 / 4;
        let raw: Vec<u8> = (0..raw_len).map(|_| rng.next() as u8).collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        for line in b64.as_bytes().chunks(76) {
            m += std::str::from_utf8(line).expect("base64 is ASCII");
            m += "\r\n";
        }
        m += "--part--\r\n";
    } else {
        m += "Content-Type: text/plain; charset=utf-8\r\n\r\n";
        m += &text;
        m += "\r\n";
    }
    m.into_bytes()
}

/// The mail pipeline: N messages (fixed size, or `size=mix` for the
/// provider's size mix) delivered by `sync-mx` concurrently, processed by
/// device A (in `mode` blobs or legacy), the inbox shown on a fresh device
/// B, and one message opened there.
fn mail(args: &Args) -> anyhow::Result<()> {
    let n = count(args, "messages")?;
    let sizes = match args.params.get("size").map(String::as_str) {
        Some("mix") => provider_sizes(n, 2017),
        _ => vec![param(args, "size", parse_bytes)?; n as usize],
    };
    let mode: client::MailMode = args
        .params
        .get("mode")
        .map_or(Ok(client::MailMode::Blobs), |m| m.parse())
        .map_err(|e| anyhow::anyhow!("--param mode: {e}"))?;
    let jobs = args.params.get("jobs").map_or("4", String::as_str);
    let services = std::env::var("SYNC_SERVICES_URL")
        .context("the mail workload needs the server's services listener (SYNC_SERVICES_URL)")?;
    let mx = std::env::current_exe()?.with_file_name("sync-mx");
    ensure!(
        mx.exists(),
        "{} is missing: build the sync-mx binary",
        mx.display()
    );

    // Untimed: the maildir, and device A (its init publishes the mail key).
    let maildir = args.work_dir.join("maildir");
    std::fs::create_dir_all(&maildir)?;
    let mut rng = SplitMix(7);
    let mut total = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let m = message(i as u64, size, &mut rng);
        total += m.len() as u64;
        std::fs::write(maildir.join(format!("{i:06}.eml")), m)?;
    }
    let mut a = device(args, "a")?;
    a.set_mail_mode(mode)?;

    phase("deliver", || {
        let out = std::process::Command::new(&mx)
            .args([
                "deliver", "--json", "-j", jobs, "--server", &services, "--user",
            ])
            .arg(args.user.as_str())
            .arg(&maildir)
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("running sync-mx")?;
        ensure!(out.status.success(), "sync-mx deliver {}", out.status);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        ensure!(
            summary["delivered"] == n,
            "sync-mx delivered {} of {n}",
            summary["delivered"]
        );
        Ok((n, total))
    })?;
    phase("process", || {
        let r = a.process_incoming(std::time::Duration::from_secs(600) * time_scale())?;
        ensure!(
            r.processed == n && r.failed.is_empty(),
            "processed {} of {n}, failed {:?}",
            r.processed,
            r.failed
        );
        Ok((n, r.bytes))
    })?;
    let mut b = device(args, "b")?;
    let mut inbox = Vec::new();
    phase("inbox", || {
        b.sync()?;
        inbox = b.mail_list()?;
        ensure!(
            inbox.len() as u64 == n,
            "the inbox lists {} of {n}",
            inbox.len()
        );
        Ok((n, 0))
    })?;
    // The newest message, as a user opening the top of the inbox would.
    let first = inbox.first().context("empty inbox")?.header.id.clone();
    phase("open", || {
        let mut sink = std::io::sink();
        let bytes = b.mail_open(&first, &mut sink)?;
        Ok((1, bytes))
    })?;
    Ok(())
}
