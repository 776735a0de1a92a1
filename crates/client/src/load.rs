//! Workload `load`: C simulated devices, each on its own kept-alive
//! connection, sending requests back to back for a fixed time (a closed
//! loop: a device sends its next request when the last one is answered).
//!
//! Speaks HTTP/1.1 through hyper's connection API, one connection per
//! device, on a single-threaded runtime: a device's request costs the
//! generator a few microseconds, so on a shared 2-core machine the server,
//! not the generator, is what is measured. The generator reports its own
//! CPU use (`load.generator_cpu`) so that can be checked.
//!
//! Mixes: `list` (blob listing only, Soledad's benchmark), `upload` (10 KiB
//! blobs), `download`, `sync` (a device's poll: info, then changes; every
//! fifth also sends one small document), `mixed` (list 30%, download 30%,
//! sync 30%, upload 10%).
//!
//! A request that loses its connection, or gets 502/503/504 from a proxy
//! whose backend died, is retried on a new connection (at most 3 times);
//! an upload answered 409 was stored by an earlier try (ours, or a proxy's
//! on another backend) and counts as acknowledged. After the load, every acknowledged upload and document
//! is looked up: one missing fails the workload.

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use protocol::{DocId, ReplicaId, Revision, SendFrame, SyncInfo};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    List,
    Download,
    Sync,
    Upload,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Download => "download",
            Op::Sync => "sync",
            Op::Upload => "upload",
        }
    }
}

/// What the load phase should do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    pub duration: Duration,
    /// Cumulative weights (out of 100) of list, download, sync, upload.
    pub mix: [u32; 4],
    pub upload_size: usize,
    /// Blobs seeded before the load, for downloads and listings.
    pub seeded: usize,
    /// Entries a listing asks for (`limit`).
    pub list_limit: usize,
    /// Misbehaving connections beside the devices: uploads whose body
    /// trickles a byte every 100 ms, and downloads of a large blob whose
    /// answer is never read. Each starts again when the server cuts it.
    pub trickle: usize,
    pub stalled: usize,
}

/// The blob the stalled readers ask for (seeded when there are any).
pub const STALL_BLOB: &str = "seed/stall";
pub const STALL_BLOB_BYTES: usize = 16 << 20;

impl Plan {
    pub fn mix(name: &str) -> anyhow::Result<[u32; 4]> {
        Ok(match name {
            "list" => [100, 100, 100, 100],
            "download" => [0, 100, 100, 100],
            "sync" => [0, 0, 100, 100],
            "upload" => [0, 0, 0, 100],
            "mixed" => [30, 60, 90, 100],
            m => bail!("unknown mix {m:?} (list, download, sync, upload or mixed)"),
        })
    }
}

/// The server's address and the user's path and token.
#[derive(Debug, Clone)]
pub struct Target {
    pub authority: String,
    pub base: String,
    /// Header values checked once, not on every request (cloning one is
    /// a reference count).
    host: hyper::header::HeaderValue,
    auth: hyper::header::HeaderValue,
}

impl Target {
    pub fn new(server: &str, user: &protocol::UserId, token: &str) -> anyhow::Result<Self> {
        let authority = server
            .trim_end_matches('/')
            .strip_prefix("http://")
            .with_context(|| format!("the load generator speaks http:// only, not {server}"))?
            .to_owned();
        Ok(Target {
            host: hyper::header::HeaderValue::from_str(&authority)?,
            auth: hyper::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token is not a valid header value")?,
            authority,
            base: format!("/v1/users/{user}"),
        })
    }
}

/// The outcome of the load phase.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latencies in microseconds of every answered HTTP request, per kind
    /// (`list`, `download`, `upload`, `sync_info`, `sync_send`,
    /// `sync_changes`): a device's sync is two or three requests.
    pub latencies: BTreeMap<&'static str, Vec<u32>>,
    pub errors: u64,
    /// First error messages (a few), for the log.
    pub error_samples: Vec<String>,
    pub retries: u64,
    pub seconds: f64,
    /// Blob ids and document ids the server acknowledged.
    pub uploaded: Vec<String>,
    pub docs_sent: Vec<String>,
    /// Times the server ended a misbehaving client's connection.
    pub cut: u64,
}

/// One simulated device's connection; reconnects when it is lost.
struct Conn {
    target: Target,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    retries: u64,
    latencies: BTreeMap<&'static str, Vec<u32>>,
}

/// Why a request failed: `Lost` can be retried on a new connection.
enum Failure {
    Lost(String),
    Status(StatusCode, String),
}

impl Conn {
    fn new(target: &Target) -> Self {
        Conn {
            target: target.clone(),
            sender: None,
            retries: 0,
            latencies: BTreeMap::new(),
        }
    }

    async fn connect(&mut self) -> Result<(), Failure> {
        let tcp = TcpStream::connect(&self.target.authority)
            .await
            .map_err(|e| Failure::Lost(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| Failure::Lost(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends a request and reads the whole answer.
    async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Failure> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected");
        sender
            .ready()
            .await
            .map_err(|e| Failure::Lost(format!("connection: {e}")))?;
        let req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, self.target.host.clone())
            .header(hyper::header::AUTHORIZATION, self.target.auth.clone())
            .body(Full::new(body))
            .expect("valid request");
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(Failure::Lost(format!("request: {e}")));
            }
        };
        let status = resp.status();
        let body = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(Failure::Lost(format!("answer: {e}")));
            }
        };
        if matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) {
            // A proxy whose backend died: another try goes elsewhere.
            self.sender = None;
            return Err(Failure::Lost(format!("{status} from the proxy")));
        }
        Ok((status, body))
    }

    /// `send` with up to 3 retries of lost requests; counts them, and
    /// records the latency of the answered request (retries included)
    /// under `kind`.
    async fn request(
        &mut self,
        kind: &'static str,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Failure> {
        let t = Instant::now();
        let mut tries = 0;
        let answer = loop {
            match self.send(method.clone(), path, body.clone()).await {
                Err(Failure::Lost(_)) if tries < 3 => {
                    tries += 1;
                    self.retries += 1;
                }
                other => break other,
            }
        };
        if answer.is_ok() {
            let micros = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
            self.latencies.entry(kind).or_default().push(micros);
        }
        answer
    }
}

/// A seeded generator (xorshift), one per device: which request comes
/// next must not depend on timing.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One simulated device's loop until `end`.
async fn device(target: Target, plan: Plan, index: usize, end: Instant) -> Outcome {
    let mut conn = Conn::new(&target);
    let mut out = Outcome::default();
    let mut rng =
        Rng(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let replica = ReplicaId::new(format!("load{index:04}")).expect("valid replica id");
    let (mut generation, mut own_generation, mut seq) = (0u64, 0u64, 0u64);
    let upload = Bytes::from(vec![0xA5u8; plan.upload_size]);
    const OK: &[StatusCode] = &[StatusCode::OK];
    while Instant::now() < end {
        let pick = rng.below(100) as u32;
        let op = match plan.mix.iter().position(|&w| pick < w) {
            Some(0) => Op::List,
            Some(1) => Op::Download,
            Some(2) => Op::Sync,
            _ => Op::Upload,
        };
        let result: Result<(), Failure> = async {
            match op {
                Op::List => {
                    let path = format!(
                        "{}/blobs?namespace=seed&limit={}",
                        target.base, plan.list_limit
                    );
                    expect(
                        conn.request("list", Method::GET, &path, Bytes::new())
                            .await?,
                        OK,
                    )
                }
                Op::Download => {
                    let k = rng.below(plan.seeded as u64);
                    let path = format!("{}/blobs/seed/s{k:05}", target.base);
                    expect(
                        conn.request("download", Method::GET, &path, Bytes::new())
                            .await?,
                        OK,
                    )
                }
                Op::Upload => {
                    seq += 1;
                    let id = format!("u{index:04}x{seq:06}");
                    let path = format!("{}/blobs/load/{id}", target.base);
                    let answer = conn
                        .request("upload", Method::PUT, &path, upload.clone())
                        .await?;
                    // Ids are never reused, so a 409 means an earlier try of
                    // this very upload was stored: one of ours whose answer
                    // was lost, or one a proxy retried on another server
                    // after the first died having committed it (which the
                    // nginx test met 2 runs in 10 when 409 counted only
                    // after a retry of our own).
                    let ok = [StatusCode::OK, StatusCode::CREATED, StatusCode::CONFLICT];
                    expect(answer, &ok)?;
                    out.uploaded.push(id);
                    Ok(())
                }
                Op::Sync => {
                    let path = format!(
                        "{}/sync/info?replica={replica}&generation={generation}",
                        target.base
                    );
                    let (status, body) = conn
                        .request("sync_info", Method::GET, &path, Bytes::new())
                        .await?;
                    expect((status, body.clone()), OK)?;
                    let info: SyncInfo = serde_json::from_slice(&body)
                        .map_err(|e| Failure::Status(status, format!("sync info: {e}")))?;
                    seq += 1;
                    if seq.is_multiple_of(5) {
                        own_generation += 1;
                        let id = format!("load.{index:04}.{seq:06}");
                        let body = send_body(&replica, own_generation, &id, index);
                        let path = format!("{}/sync/send", target.base);
                        expect(
                            conn.request("sync_send", Method::POST, &path, body).await?,
                            OK,
                        )?;
                        out.docs_sent.push(id);
                    }
                    let path = format!(
                        "{}/sync/changes?since={generation}&replica={replica}",
                        target.base
                    );
                    expect(
                        conn.request("sync_changes", Method::GET, &path, Bytes::new())
                            .await?,
                        OK,
                    )?;
                    generation = info.generation;
                    Ok(())
                }
            }
        }
        .await;
        if let Err(f) = result {
            out.errors += 1;
            if out.error_samples.len() < 3 {
                out.error_samples.push(match f {
                    Failure::Lost(m) => format!("{}: {m}", op.name()),
                    Failure::Status(s, m) => format!("{}: {s}: {m}", op.name()),
                });
            }
        }
    }
    out.retries = conn.retries;
    out.latencies = conn.latencies;
    out
}

/// A sync upload of one small document (the server stores ciphertext it
/// cannot read, so any bytes do).
fn send_body(replica: &ReplicaId, generation: u64, id: &str, index: usize) -> Bytes {
    let mut body = Vec::new();
    protocol::write_frame(
        &mut body,
        &SendFrame::Header {
            replica: replica.clone(),
            generation,
            transaction_id: format!("t{index}-{generation}"),
        },
    );
    protocol::write_frame(
        &mut body,
        &SendFrame::Doc(protocol::DocFrame {
            id: DocId::new(id).expect("valid doc id"),
            rev: Revision::default().incremented(replica),
            content: Some(protocol::Content(vec![7u8; 256])),
        }),
    );
    protocol::write_frame(&mut body, &SendFrame::End { count: 1 });
    body.into()
}

fn expect(answer: (StatusCode, Bytes), ok: &[StatusCode]) -> Result<(), Failure> {
    if ok.contains(&answer.0) {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&answer.1[..answer.1.len().min(200)]).into_owned();
        Err(Failure::Status(answer.0, text))
    }
}

/// Runs `plan` against `target`: every device starts together and stops
/// at the same deadline.
pub fn run(target: &Target, plan: &Plan) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let t0 = Instant::now();
        let end = t0 + plan.duration;
        let tasks: Vec<_> = (0..plan.clients)
            .map(|i| tokio::spawn(device(target.clone(), plan.clone(), i, end)))
            .collect();
        let misbehaving: Vec<_> = (0..plan.trickle)
            .map(|i| tokio::spawn(trickle(target.clone(), i, end)))
            .chain((0..plan.stalled).map(|_| tokio::spawn(stall(target.clone(), end))))
            .collect();
        let mut total = Outcome::default();
        for t in misbehaving {
            total.cut += t.await.context("a misbehaving client panicked")?;
        }
        for t in tasks {
            let o = t.await.context("a simulated device panicked")?;
            for (op, l) in o.latencies {
                total.latencies.entry(op).or_default().extend(l);
            }
            total.errors += o.errors;
            total.retries += o.retries;
            total.uploaded.extend(o.uploaded);
            total.docs_sent.extend(o.docs_sent);
            for e in o.error_samples {
                if total.error_samples.len() < 5 {
                    total.error_samples.push(e);
                }
            }
        }
        total.seconds = t0.elapsed().as_secs_f64();
        Ok(total)
    })
}

/// An upload whose body trickles in a byte every 100 ms, until `end`;
/// returns how often the server cut it (and it started again).
async fn trickle(target: Target, index: usize, end: Instant) -> u64 {
    use tokio::io::AsyncWriteExt;
    let mut cut = 0;
    let mut round = 0;
    while Instant::now() < end {
        let Ok(mut tcp) = TcpStream::connect(&target.authority).await else {
            return cut;
        };
        let head = format!(
            "PUT {}/blobs/trickle/t{index}-{round} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Length: 1000000\r\n\r\n",
            target.base,
            target.authority,
            target.auth.to_str().unwrap_or_default()
        );
        round += 1;
        let mut ok = tcp.write_all(head.as_bytes()).await.is_ok();
        while ok && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ok = tcp.write_all(b"x").await.is_ok();
        }
        cut += u64::from(!ok);
    }
    cut
}

/// A download of a large blob whose answer is never read, until `end`;
/// returns how often the server cut it.
async fn stall(target: Target, end: Instant) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cut = 0;
    while Instant::now() < end {
        let Ok(mut tcp) = TcpStream::connect(&target.authority).await else {
            return cut;
        };
        let request = format!(
            "GET {}/blobs/{STALL_BLOB} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
            target.base,
            target.authority,
            target.auth.to_str().unwrap_or_default()
        );
        if tcp.write_all(request.as_bytes()).await.is_err() {
            cut += 1;
            continue;
        }
        // Nothing is read until the end; a closed connection shows as
        // the end of what the kernel buffered, read then.
        tokio::time::sleep_until(end.into()).await;
        let mut sink = vec![0u8; 1 << 20];
        let drained = tokio::time::timeout(Duration::from_millis(100), async {
            let mut total = 0usize;
            while let Ok(n) = tcp.read(&mut sink).await {
                if n == 0 {
                    return true;
                }
                total += n;
                if total > STALL_BLOB_BYTES {
                    return false;
                }
            }
            true
        })
        .await;
        cut += u64::from(drained == Ok(true));
    }
    cut
}

/// Uploads `n` seed blobs of `size` bytes (namespace `seed`) on `conns`
/// connections.
pub fn seed(target: &Target, n: usize, size: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let body = Bytes::from(vec![0x5Au8; size]);
        let mut tasks = vec![];
        for w in 0..8.min(n.max(1)) {
            let (target, body) = (target.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::new(&target);
                for k in (w..n).step_by(8) {
                    let path = format!("{}/blobs/seed/s{k:05}", target.base);
                    let answer = conn.request("seed", Method::PUT, &path, body.clone()).await;
                    match answer {
                        Ok((s, _)) if s.is_success() || s == StatusCode::CONFLICT => {}
                        Ok((s, b)) => {
                            bail!("seeding blob {k}: {s}: {}", String::from_utf8_lossy(&b))
                        }
                        Err(Failure::Lost(m)) | Err(Failure::Status(_, m)) => {
                            bail!("seeding blob {k}: {m}")
                        }
                    }
                }
                Ok(())
            }));
        }
        for t in tasks {
            t.await.context("a seeding task panicked")??;
        }
        Ok(())
    })
}

/// Uploads one blob of `size` bytes at `path` (under the user's blobs).
pub fn seed_one(target: &Target, path: &str, size: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut conn = Conn::new(target);
        let full = format!("{}/blobs/{path}", target.base);
        let body = Bytes::from(vec![0x5Au8; size]);
        match conn.request("seed", Method::PUT, &full, body).await {
            Ok((s, _)) if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            Ok((s, b)) => bail!("seeding {path}: {s}: {}", String::from_utf8_lossy(&b)),
            Err(Failure::Lost(m)) | Err(Failure::Status(_, m)) => bail!("seeding {path}: {m}"),
        }
    })
}

/// Checks that the server holds every acknowledged upload and document.
pub fn verify(target: &Target, outcome: &Outcome) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut conn = Conn::new(target);
        let path = format!("{}/blobs?namespace=load&count_only=true", target.base);
        let (status, body) = conn
            .request("verify", Method::GET, &path, Bytes::new())
            .await
            .map_err(|_| anyhow::anyhow!("listing the uploaded blobs failed"))?;
        ensure!(
            status == StatusCode::OK,
            "listing the uploaded blobs: {status}"
        );
        let list: protocol::BlobList = serde_json::from_slice(&body)?;
        ensure!(
            list.count == outcome.uploaded.len() as u64,
            "the server holds {} uploaded blobs, {} were acknowledged",
            list.count,
            outcome.uploaded.len()
        );
        // Documents: every acknowledged id in the full change listing.
        let path = format!("{}/sync/changes?since=0&replica=verifier", target.base);
        let (status, body) = conn
            .request("verify", Method::GET, &path, Bytes::new())
            .await
            .map_err(|_| anyhow::anyhow!("listing the documents failed"))?;
        ensure!(status == StatusCode::OK, "listing the documents: {status}");
        let mut held = std::collections::HashSet::new();
        let mut lines = protocol::LineSplitter::new(usize::MAX);
        lines.push(&body);
        while let Some(frame) = lines.next_frame::<protocol::ChangeFrame>()? {
            if let protocol::ChangeFrame::Doc { id, .. } = frame {
                held.insert(id.as_str().to_owned());
            }
        }
        let missing = outcome
            .docs_sent
            .iter()
            .filter(|d| !held.contains(*d))
            .count();
        ensure!(
            missing == 0,
            "{missing} of {} acknowledged documents are missing on the server",
            outcome.docs_sent.len()
        );
        Ok(())
    })
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// CPU seconds (user + system) this process has used, from /proc.
pub fn own_cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second
    // on Linux); the command name (field 2) may contain spaces, so count
    // from the closing parenthesis.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn mixes_are_cumulative_weights_and_unknown_ones_are_refused() {
        assert_eq!(Plan::mix("mixed").unwrap(), [30, 60, 90, 100]);
        assert_eq!(Plan::mix("upload").unwrap(), [0, 0, 0, 100]);
        let e = Plan::mix("lst").unwrap_err().to_string();
        assert!(e.contains("list, download, sync, upload or mixed"), "{e}");
    }

    #[test]
    fn only_plain_http_servers_are_targets() {
        let user = protocol::UserId::new("u1").unwrap();
        let t = Target::new("http://127.0.0.1:8080/", &user, "tok").unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.base, "/v1/users/u1");
        assert!(Target::new("https://example.org", &user, "tok").is_err());
    }
}
