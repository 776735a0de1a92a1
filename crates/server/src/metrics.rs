//! The server's own counters, in the Prometheus text format at
//! `GET /metrics` on the services listener (private, like mail delivery;
//! it tells counts, never data). A benchmark harness reads them at every
//! phase boundary: an extra statement, commit, fsync or round trip per
//! request shows there exactly, whatever the machine's noise.
//!
//! One registry per process, as the counters are touched deep in the
//! store (group commit, blob files) where passing a handle would thread
//! through every layer; SQLite's own activity comes from `sqlite_util`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

type Labels = Vec<(&'static str, String)>;

pub(crate) struct Metrics {
    registry: Registry,
    /// Requests answered, by route and status.
    pub requests: Family<Labels, Counter>,
    /// Bytes written into blob storage, by where (`file`, `inline` row).
    pub blob_bytes: Family<Labels, Counter>,
    /// fsync calls the server makes itself (SQLite's are in its commits).
    pub fsyncs: Family<Labels, Counter>,
    /// Writers per group commit transaction.
    pub group_commit_batch: Histogram,
    /// Writers that found another holding the turn and waited for it.
    pub group_commit_waits: Counter,
}

/// SQLite's statements, commits and lock waits, read at each scrape.
#[derive(Debug)]
struct SqliteActivity;

impl Collector for SqliteActivity {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let a = sqlite_util::activity();
        for (name, help, value) in [
            ("sqlite_statements", "SQLite statements run", a.statements),
            (
                "sqlite_commits",
                "SQLite write transactions committed",
                a.commits,
            ),
            (
                "sqlite_lock_waits",
                "Waits for a database locked by another connection",
                a.lock_waits,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let requests = Family::<Labels, Counter>::default();
    registry.register(
        "http_requests",
        "Requests answered, by route and status",
        requests.clone(),
    );
    let blob_bytes = Family::<Labels, Counter>::default();
    registry.register(
        "blob_bytes_written",
        "Bytes written to blob storage",
        blob_bytes.clone(),
    );
    let fsyncs = Family::<Labels, Counter>::default();
    registry.register(
        "fsyncs",
        "fsync calls of the server's own files",
        fsyncs.clone(),
    );
    // Batch sizes are small integers: buckets at 1, 2, 4 … 512.
    let group_commit_batch = Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 10),
    );
    registry.register(
        "group_commit_batch",
        "Writers per group-commit transaction",
        group_commit_batch.clone(),
    );
    let group_commit_waits = Counter::default();
    registry.register(
        "group_commit_waits",
        "Writers that waited for another's group commit",
        group_commit_waits.clone(),
    );
    registry.register_collector(Box::new(SqliteActivity));
    Metrics {
        registry,
        requests,
        blob_bytes,
        fsyncs,
        group_commit_batch,
        group_commit_waits,
    }
});

impl Metrics {
    pub fn blob_written(&self, storage: &'static str, bytes: u64) {
        self.blob_bytes
            .get_or_create(&vec![("storage", storage.to_owned())])
            .inc_by(bytes);
    }

    pub fn fsync(&self, what: &'static str) {
        self.fsyncs
            .get_or_create(&vec![("file", what.to_owned())])
            .inc();
    }
}

/// `GET /metrics`.
pub(crate) async fn render() -> impl axum::response::IntoResponse {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &METRICS.registry);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Counts every answered request (but scrapes) by its route (the path template, the
/// user part left out) and status.
pub(crate) async fn count_requests(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched".to_owned(), |p| route_label(p.as_str()));
    // Scrapes are not the work being counted: a harness reads /metrics at
    // every phase boundary.
    if route == "/metrics" {
        return next.run(req).await;
    }
    let resp = next.run(req).await;
    METRICS
        .requests
        .get_or_create(&vec![
            ("route", route),
            ("status", resp.status().as_str().to_owned()),
        ])
        .inc();
    resp
}

/// `/v1/users/{user}/blobs/{ns}/{id}` → `blobs/{ns}/{id}`.
fn route_label(path: &str) -> String {
    path.strip_prefix("/v1/users/{user}/")
        .or_else(|| path.strip_prefix("/v1/"))
        .unwrap_or(path)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_without_the_user() {
        assert_eq!(route_label("/v1/users/{user}/sync/info"), "sync/info");
        assert_eq!(
            route_label("/v1/incoming/{user}/{id}"),
            "incoming/{user}/{id}"
        );
        assert_eq!(route_label("/health"), "/health");
    }
}
