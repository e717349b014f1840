//! `/metrics` against real `ods serve` processes: off unless configured, refused
//! without the token or from an address outside `metrics_networks` (the real client
//! address, through a trusted proxy's X-Forwarded-For), and, once allowed, the series
//! for requests, bytes, uploads, packages and peers are there with plausible
//! values, no filename appears in them, and `promtool check metrics` accepts the text.
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
