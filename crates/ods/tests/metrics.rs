//! `/metrics` against real `ods serve` processes: off unless configured, refused
//! without the token or from an address outside `metrics_networks` (the real client
//! address, through a trusted proxy's X-Forwarded-For), and, once allowed, the series
//! for requests, bytes, uploads, packages and peers are there with plausible
//! values (a storage failure in a background job counts too), no filename appears in
//! them, and `promtool check metrics` accepts the text.
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Opts, Server};
use reqwest::Method;
use serde_json::Value;

const TOKEN: &str = "scrape-token-0123456789";

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text format's sample lines (enough for what ODS writes).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
        let value: f64 = value.parse().expect("a numeric value");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').expect("labels end with }");
                let labels = rest
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").expect("label=\"value\"");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        out.push((name, labels, value));
    }
    out
}

/// The sum of the samples named `name` whose labels include all of `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let hits: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
        .collect();
    (!hits.is_empty()).then(|| hits.iter().sum())
}

fn promtool_available() -> bool {
    Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `promtool check metrics` on `text`: its verdict and what it said.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn metrics_opts(networks: &str) -> Opts {
    let mut opts = Opts::default();
    opts.env.push(("ODS_METRICS_TOKEN".into(), TOKEN.into()));
    opts.env
        .push(("ODS_METRICS_NETWORKS".into(), networks.into()));
    // The test client is the proxy: the address it names is the client's.
    opts.env
        .push(("ODS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into()));
    opts
}

async fn scrape(s: &Server) -> String {
    let r = s
        .http
        .get(s.at("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", s.log());
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_are_off_unless_configured() {
    let s = Server::start().await;
    let r = s.http.get(s.at("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .http
        .get(s.at("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no token configured: nothing to match");
}

#[tokio::test]
async fn metrics_need_the_token_and_an_allowed_address() {
    let s = Server::start_with(metrics_opts("127.0.0.0/8,203.0.113.0/24")).await;
    let get = || s.http.get(s.at("/metrics"));
    let r = get().send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = get()
        .bearer_auth("scrape-token-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = get()
        .basic_auth(common::ADMIN.0, Some(common::ADMIN.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "an admin login is not the scrape token");
    // The right token from an address outside the networks: refused.
    let r = get()
        .bearer_auth(TOKEN)
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    // From an allowed one (through the proxy, or loopback itself): the text.
    let r = get()
        .bearer_auth(TOKEN)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    scrape(&s).await;

    // Networks without a token: the address alone decides.
    let mut opts = Opts::default();
    opts.env
        .push(("ODS_METRICS_NETWORKS".into(), "10.0.0.0/8".into()));
    let s = Server::start_with(opts).await;
    let r = s.http.get(s.at("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 403, "loopback is not in 10.0.0.0/8");
}

#[tokio::test]
async fn metrics_report_requests_bytes_and_packages() {
    let s = Server::start_with(metrics_opts("127.0.0.0/8")).await;
    let first = common::bytes(300_000, 1);
    let second = common::bytes(5_000, 2);
    let r = s
        .upload("secret-name-alpha.pkg", first.clone(), "Prod")
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let r = s
        .upload("secret-name-beta.pkg", second.clone(), "Dev")
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    for _ in 0..2 {
        let r = s
            .http
            .get(s.at("/share/secret-name-alpha.pkg"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().len(), first.len());
    }
    let r = s
        .http
        .get(s.at("/CasperShare/Packages/secret-name-missing.pkg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .http
        .get(s.at("/secret-name-nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let text = scrape(&s).await;
    let m = parse(&text);
    assert!(
        !text.contains("secret-name"),
        "a filename in the metrics:\n{text}"
    );

    let uploads = value(
        &m,
        "ods_http_requests_total",
        &[("route", "/api/admin/upload"), ("method", "POST")],
    );
    assert_eq!(uploads, Some(2.0), "{text}");
    let downloads = value(
        &m,
        "ods_http_requests_total",
        &[
            ("route", "/share/{filename}"),
            ("method", "GET"),
            ("status", "200"),
        ],
    );
    assert_eq!(downloads, Some(2.0), "{text}");
    let missing = value(
        &m,
        "ods_http_requests_total",
        &[
            ("route", "/CasperShare/Packages/{filename}"),
            ("status", "404"),
        ],
    );
    assert_eq!(missing, Some(1.0), "{text}");
    let unmatched = value(
        &m,
        "ods_http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
    );
    assert_eq!(unmatched, Some(1.0), "{text}");
    let timed = value(
        &m,
        "ods_http_request_duration_seconds_count",
        &[("route", "/share/{filename}")],
    );
    assert_eq!(timed, Some(2.0), "{text}");
    let sent = value(
        &m,
        "ods_http_sent_bytes_total",
        &[("route", "/share/{filename}")],
    )
    .unwrap();
    assert!(sent >= 2.0 * first.len() as f64, "sent {sent}");
    assert!(sent < 2.0 * first.len() as f64 + 1000.0, "sent {sent}");
    let received = value(
        &m,
        "ods_http_received_bytes_total",
        &[("route", "/api/admin/upload")],
    )
    .unwrap();
    let sizes = (first.len() + second.len()) as f64;
    assert!(
        received > sizes && received < sizes + 4000.0,
        "received {received}"
    );
    assert_eq!(
        value(&m, "ods_uploads_in_progress", &[]),
        Some(0.0),
        "{text}"
    );

    assert_eq!(
        value(
            &m,
            "ods_packages",
            &[("status", "Public"), ("stage", "Prod")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &m,
            "ods_packages",
            &[("status", "Public"), ("stage", "Dev")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &m,
            "ods_packages",
            &[("status", "Failed"), ("stage", "Test")]
        ),
        Some(0.0),
        "{text}"
    );

    // A deleted package leaves its count (after the short cache).
    let list = s.get_json("/api/admin/packages").await;
    let beta = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["filename"] == "secret-name-beta.pkg")
        .unwrap()["id"]
        .clone();
    let r = s
        .admin(Method::DELETE, &format!("/api/admin/packages/{beta}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = parse(&scrape(&s).await);
        if value(
            &m,
            "ods_packages",
            &[("status", "Public"), ("stage", "Dev")],
        ) == Some(0.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the Dev count stayed at 1");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    if !promtool_available() {
        assert!(
            std::env::var("ODS_REQUIRE_ALL_DBS").as_deref() != Ok("1"),
            "promtool is not installed; ODS_REQUIRE_ALL_DBS=1 needs it (apt-get install prometheus)"
        );
        eprintln!("SKIPPED: promtool check (apt-get install prometheus)");
        return;
    }
    let (ok, said) = promtool_check(&scrape(&s).await);
    assert!(ok, "promtool check metrics:\n{said}");
}

#[tokio::test]
async fn an_upload_in_progress_is_counted() {
    let s = Server::start_with(metrics_opts("127.0.0.0/8")).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
        .file_name("secret-name-slow.pkg");
    let form = reqwest::multipart::Form::new()
        .text("stage", "Prod")
        .part("file", part);
    let req = s
        .admin(Method::POST, "/api/admin/upload")
        .multipart(form)
        .send();
    let upload = tokio::spawn(req);
    tx.send(Ok(common::bytes(200_000, 5))).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = parse(&scrape(&s).await);
        if value(&m, "ods_uploads_in_progress", &[]) == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the upload was never counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tx);
    let r = upload.await.unwrap().unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let text = scrape(&s).await;
    assert_eq!(
        value(&parse(&text), "ods_uploads_in_progress", &[]),
        Some(0.0),
        "{text}"
    );
    assert!(!text.contains("secret-name"), "{text}");
}

async fn node(name: &str) -> Server {
    let mut opts = metrics_opts("127.0.0.0/8");
    opts.env.push(("ODS_SYNC_INTERVAL".into(), "2".into()));
    let s = Server::start_with(opts).await;
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&serde_json::json!({"name": name, "url": s.url, "stage": "Prod", "firewalled_mode": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    s
}

/// Scrapes `s` until `check` holds on the samples (the gauges are reused for 5 s).
async fn until(s: &Server, what: &str, check: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let text = scrape(s).await;
        assert!(
            !text.contains("secret-name"),
            "a filename in the metrics:\n{text}"
        );
        let m = parse(&text);
        if check(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what}:\n{text}\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn metrics_report_peers_and_failed_jobs() {
    let a = node("A").await;
    let mut b = node("B").await;
    let ai = a.get_json("/api/admin/about").await;
    let bi = b.get_json("/api/admin/about").await;
    let r = a
        .admin(Method::POST, "/api/admin/register")
        .json(&serde_json::json!({"url": b.url, "iss_id": bi["iss"], "key": bi["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "register: {}", r.text().await.unwrap());
    let (a_iss, b_iss) = (ai["iss"].as_str().unwrap(), bi["iss"].as_str().unwrap());
    let data = common::bytes(2_500_000, 9);
    let size = data.len() as f64;
    let r = a.upload("secret-name-synced.pkg", data, "Prod").await;
    assert!(r.status().is_success(), "{}", r.status());

    // B fetches the package from A: bytes by peer on both sides, the link up.
    let m = until(&b, "B fetched the package from A", |m| {
        value(m, "ods_peer_fetched_bytes_total", &[("peer", a_iss)]) == Some(size)
            && value(
                m,
                "ods_packages",
                &[("status", "Public"), ("stage", "Prod")],
            ) == Some(1.0)
    })
    .await;
    assert_eq!(value(&m, "ods_peer_up", &[("peer", a_iss)]), Some(1.0));
    let contact = value(
        &m,
        "ods_peer_last_contact_timestamp_seconds",
        &[("peer", a_iss)],
    )
    .unwrap();
    let now = ods::model::now_unix() as f64;
    assert!(
        (now - 120.0..=now + 5.0).contains(&contact),
        "last contact {contact}, now {now}"
    );
    let m = parse(&scrape(&a).await);
    assert_eq!(
        value(&m, "ods_peer_served_bytes_total", &[("peer", b_iss)]),
        Some(size)
    );
    assert_eq!(value(&m, "ods_peer_up", &[("peer", b_iss)]), Some(1.0));

    // B's partial-transfer directory becomes a plain file: B's next transfer job fails
    // on the store (ENOTDIR, even for root), and that counts as a storage error.
    let m = parse(&scrape(&b).await);
    assert_eq!(value(&m, "ods_storage_errors_total", &[]), None, "{m:?}");
    let partials = b.data_dir.join("blobs/.partial");
    std::fs::remove_dir_all(&partials).unwrap();
    std::fs::write(&partials, b"not a directory").unwrap();
    let data = common::bytes(2_500_000, 10);
    let r = a.upload("secret-name-second.pkg", data, "Prod").await;
    assert!(r.status().is_success(), "{}", r.status());
    // (`until` also checks that no filename is in a label.)
    let m = until(&b, "B's failed transfer counted as a storage error", |m| {
        value(m, "ods_storage_errors_total", &[("op", "partial_open")]).is_some_and(|n| n >= 1.0)
    })
    .await;
    assert!(
        value(&m, "ods_job_failures_total", &[]).is_some_and(|n| n >= 1.0),
        "{m:?}"
    );
    if promtool_available() {
        let (ok, said) = promtool_check(&scrape(&b).await);
        assert!(ok, "promtool check metrics:\n{said}");
    }

    // B goes away: A's link to it goes down and A's jobs calling it fail.
    b.stop();
    let r = a
        .admin(Method::DELETE, "/api/admin/packages/secret-name-synced.pkg")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let m = until(&a, "A's link to B down and a job failure", |m| {
        value(m, "ods_peer_up", &[("peer", b_iss)]) == Some(0.0)
            && value(m, "ods_job_failures_total", &[]).is_some_and(|n| n >= 1.0)
    })
    .await;
    let kinds: Vec<&String> = m
        .iter()
        .filter(|(n, _, v)| n == "ods_job_failures_total" && *v >= 1.0)
        .filter_map(|(_, l, _)| l.get("kind"))
        .collect();
    assert!(
        kinds.iter().all(|k| !k.is_empty()) && !kinds.is_empty(),
        "{m:?}"
    );
    if promtool_available() {
        let (ok, said) = promtool_check(&scrape(&a).await);
        assert!(ok, "promtool check metrics:\n{said}");
    }
}

/// The sample dashboard charts every series `stats.rs` declares, only those, and each
/// of its queries is PromQL that `promtool check rules` parses.
#[test]
fn the_grafana_dashboard_uses_the_real_metric_names() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("../../deploy/grafana/ods.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    let names = |text: &str| -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("ods_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            out.insert(tail[..end].trim_end_matches("_bucket").to_string());
            rest = &tail[end..];
        }
        out
    };
    let charted = names(&exprs.join("\n"));
    let source = std::fs::read_to_string(root.join("src/stats.rs")).unwrap();
    let declared: std::collections::BTreeSet<String> = source
        .lines()
        .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"ods_"))
        .flat_map(names)
        .collect();
    assert_eq!(declared.len(), 17, "{declared:?}");
    assert_eq!(charted, declared);

    if !promtool_available() {
        assert!(
            std::env::var("ODS_REQUIRE_ALL_DBS").as_deref() != Ok("1"),
            "promtool is not installed; ODS_REQUIRE_ALL_DBS=1 needs it (apt-get install prometheus)"
        );
        eprintln!("SKIPPED: promtool check rules (apt-get install prometheus)");
        return;
    }
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
