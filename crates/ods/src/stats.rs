//! Prometheus metrics: the process-wide recorder (the `metrics` crate's facade, so any
//! module records with its macros and nothing is passed around), the name, unit and
//! help of every series, and the gauges read from the database when `/metrics` is
//! scraped (packages, jobs, peers; read at most every few seconds). The recorder is
//! installed only when `/metrics` is enabled: otherwise every macro is a no-op.
//! Labels are bounded: route templates, methods, status codes, stages, job kinds and
//! registered peers' iss; never a filename or a raw path.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{Label, Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::App;
use crate::db;
use crate::model::{Stage, Status, now_millis};

pub const REQUESTS: &str = "ods_http_requests_total";
pub const DURATION: &str = "ods_http_request_duration_seconds";
pub const SENT: &str = "ods_http_sent_bytes_total";
pub const RECEIVED: &str = "ods_http_received_bytes_total";
pub const ZERO_COPY: &str = "ods_http_zero_copy_bytes_total";
pub const UPLOADS: &str = "ods_uploads_in_progress";
pub const TRANSFERS: &str = "ods_transfers_in_progress";
pub const PACKAGES: &str = "ods_packages";
pub const JOBS: &str = "ods_jobs";
pub const JOB_OLDEST: &str = "ods_job_oldest_age_seconds";
pub const JOB_FAILURES: &str = "ods_job_failures_total";
pub const PEER_UP: &str = "ods_peer_up";
pub const PEER_CONTACT: &str = "ods_peer_last_contact_timestamp_seconds";
pub const PEER_FETCHED: &str = "ods_peer_fetched_bytes_total";
pub const PEER_SERVED: &str = "ods_peer_served_bytes_total";
pub const PEER_ERRORS: &str = "ods_peer_transfer_errors_total";
pub const STORAGE_ERRORS: &str = "ods_storage_errors_total";

/// How long the database-backed gauges are reused between scrapes.
const REFRESH: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process) and returns its handle; `None` if another
/// recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(DURATION.to_string()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0,
                    ],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            // Histogram samples are folded into their buckets here, so memory stays
            // flat whether or not anyone scrapes.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(REFRESH);
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by route template, method and status code"
    );
    describe_histogram!(
        DURATION,
        Unit::Seconds,
        "Time to the response head, by route template and method"
    );
    describe_counter!(
        SENT,
        Unit::Bytes,
        "Response body bytes sent, by route template"
    );
    describe_counter!(
        ZERO_COPY,
        Unit::Bytes,
        "Download body bytes sent straight from their blob files (sendfile), a part of ods_http_sent_bytes_total"
    );
    describe_counter!(
        RECEIVED,
        Unit::Bytes,
        "Request body bytes received, by route template"
    );
    describe_gauge!(UPLOADS, "Package uploads whose body is being received");
    describe_gauge!(
        TRANSFERS,
        "Incoming package transfers running (one per package or per bundle of small ones)"
    );
    describe_gauge!(PACKAGES, "Packages on this server, by status and stage");
    describe_gauge!(
        JOBS,
        "Jobs not done, by kind and state (queued, running, dead)"
    );
    describe_gauge!(
        JOB_OLDEST,
        Unit::Seconds,
        "How long the oldest due queued job of a kind has waited"
    );
    describe_counter!(JOB_FAILURES, "Failed job attempts in this process, by kind");
    describe_gauge!(
        PEER_UP,
        "1 when the last contact with a registered peer succeeded"
    );
    describe_gauge!(
        PEER_CONTACT,
        Unit::Seconds,
        "Unix time of the last contact with a registered peer"
    );
    describe_counter!(
        PEER_FETCHED,
        Unit::Bytes,
        "Verified chunk bytes received from a peer"
    );
    describe_counter!(PEER_SERVED, Unit::Bytes, "Chunk bytes sent to a peer");
    describe_counter!(
        PEER_ERRORS,
        "Chunk fetches from a peer that failed or did not verify"
    );
    describe_counter!(
        STORAGE_ERRORS,
        "Blob store operations that failed, by operation (requests, jobs and transfers alike)"
    );
}

/// Held while something runs, counted in the gauge it was started with (`UPLOADS`
/// while an upload's body is received, `TRANSFERS` while an incoming transfer runs).
pub struct InProgress(&'static str);

impl InProgress {
    pub fn start(gauge: &'static str) -> InProgress {
        gauge!(gauge).increment(1.0);
        InProgress(gauge)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}

type Labels = Vec<Label>;

/// When the database gauges were last read, and which label sets they were given (a
/// set that disappears, such as a deleted peer, is set to 0 rather than left stale).
#[derive(Default)]
struct Scraped {
    at: Option<Instant>,
    seen: HashSet<(&'static str, Labels)>,
}

static SCRAPED: LazyLock<Mutex<Scraped>> = LazyLock::new(Mutex::default);

/// The text exposition of every series, with the database gauges brought up to date.
pub async fn render(app: &App, handle: &PrometheusHandle) -> anyhow::Result<String> {
    let due = {
        let s = SCRAPED.lock().unwrap_or_else(|p| p.into_inner());
        s.at.is_none_or(|t| t.elapsed() >= REFRESH)
    };
    if due {
        let values = read(app).await?;
        let mut s = SCRAPED.lock().unwrap_or_else(|p| p.into_inner());
        let now: HashSet<(&'static str, Labels)> =
            values.iter().map(|(n, l, _)| (*n, l.clone())).collect();
        for (name, labels) in s.seen.difference(&now) {
            gauge!(*name, labels.clone()).set(0.0);
        }
        for (name, labels, v) in values {
            gauge!(name, labels).set(v);
        }
        s.seen = now;
        s.at = Some(Instant::now());
    }
    handle.run_upkeep();
    Ok(handle.render())
}

async fn read(app: &App) -> anyhow::Result<Vec<(&'static str, Labels, f64)>> {
    let mut out = Vec::new();
    // Every status and stage is reported, 0 when none.
    for status in [Status::Downloading, Status::Public, Status::Failed] {
        for stage in [Stage::Dev, Stage::Test, Stage::Prod] {
            let labels = vec![
                Label::new("status", status.as_str().to_string()),
                Label::new("stage", stage.as_str().to_string()),
            ];
            out.push((PACKAGES, labels, 0.0));
        }
    }
    for (status, stage, n) in db::stats::package_counts(&app.db).await? {
        let labels = vec![Label::new("status", status), Label::new("stage", stage)];
        match out.iter_mut().find(|(_, l, _)| *l == labels) {
            Some(slot) => slot.2 = n as f64,
            None => out.push((PACKAGES, labels, n as f64)),
        }
    }
    let now = now_millis();
    for j in db::stats::job_counts(&app.db).await? {
        let kind = Label::new("kind", j.kind.clone());
        out.push((
            JOBS,
            vec![kind.clone(), Label::new("state", j.state.clone())],
            j.count as f64,
        ));
        if j.state == "queued" {
            let age = (now - j.oldest_run_at).max(0) as f64 / 1000.0;
            out.push((JOB_OLDEST, vec![kind], age));
        }
    }
    for p in db::peers::list(&app.db).await? {
        let peer = vec![Label::new("peer", p.iss.clone())];
        let up = p.last_contact.is_some() && p.last_error.is_none();
        out.push((PEER_UP, peer.clone(), if up { 1.0 } else { 0.0 }));
        if let Some(t) = p.last_contact {
            out.push((PEER_CONTACT, peer, t as f64));
        }
    }
    Ok(out)
}
