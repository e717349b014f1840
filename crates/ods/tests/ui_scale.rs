//! The Packages tab with 10,000 packages: every page is searched, sorted and cut in
//! the database, so rendering it must stay fast. The rows are written straight into
//! the database (the upload path is tested elsewhere); the test prints the median of
//! five renders of each page and fails if one takes longer than a generous bound
//! (a debug build on a loaded two-core machine). Runs on every engine.
mod common;

use std::time::{Duration, Instant};

use common::{ADMIN, Server, csrf_of, set_cookie};
use reqwest::header;

const PACKAGES: usize = 10_000;
/// Median render time that fails the test (the figures printed are what matters).
const BOUND: Duration = Duration::from_millis(1500);

async fn fill(s: &Server) {
    let now = 1_700_000_000i64;
    for chunk in (0..PACKAGES).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                let status = match i % 50 {
                    0 => "Downloading",
                    1 => "Failed",
                    _ => "Public",
                };
                let stage = ["Dev", "Test", "Prod"][i % 3];
                format!(
                    "('{:032x}', 'pkg-{i:05}.pkg', {}, '{:040x}', '{:064x}', '{stage}', '{status}', NULL, {}, {})",
                    i,
                    1000 + i * 37,
                    i,
                    i,
                    now + *i as i64,
                    now + *i as i64
                )
            })
            .collect();
        let n = s
            .sql(&format!(
                "INSERT INTO packages (uuid, filename, file_size, sha1, sha256, stage, status, status_reason, created, updated) VALUES {}",
                values.join(", ")
            ))
            .await;
        assert_eq!(n as usize, chunk.len());
    }
}

#[tokio::test]
async fn the_packages_tab_renders_fast_with_10000_packages() {
    let s = Server::start().await;
    fill(&s).await;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(s.at("/")).send().await.unwrap();
    let (pre, _) = set_cookie(r.headers(), "ods_pre").unwrap();
    let csrf = csrf_of(&r.text().await.unwrap());
    let r = http
        .post(s.at("/login"))
        .header(header::COOKIE, pre)
        .header(header::ORIGIN, &s.url)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", ADMIN.0),
            ("password", ADMIN.1),
        ])
        .send()
        .await
        .unwrap();
    let (session, _) = set_cookie(r.headers(), "ods_session").unwrap();
    let mut report = Vec::new();
    for (what, path, expect) in [
        ("first page (newest first)", "/packages", "pkg-09999.pkg"),
        (
            "sorted by filename, page 100",
            "/packages?sort=filename&order=asc&page=100",
            "pkg-04950.pkg",
        ),
        (
            "search \"pkg-0777\"",
            "/packages?q=pkg-0777",
            "pkg-07779.pkg",
        ),
        (
            "sorted by size, last page",
            "/packages?sort=size&order=desc&page=200",
            "pkg-00000.pkg",
        ),
        (
            "live rows fragment",
            "/packages/rows?q=&sort=&order=&page=1",
            "pkg-09950.pkg",
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let r = http
                .get(s.at(path))
                .header(header::COOKIE, &session)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let body = r.text().await.unwrap();
            times.push(t.elapsed());
            assert!(body.contains(expect), "{path} shows {expect}");
            assert!(
                body.contains("10000 packages")
                    || body.contains("packages match")
                    || path.contains("q="),
                "{path}"
            );
        }
        times.sort();
        let median = times[2];
        report.push(format!(
            "{what}: median {:.1} ms (min {:.1} ms)",
            median.as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3
        ));
        assert!(median < BOUND, "{what} took {median:?}");
    }
    // The API's default answer (all 10,000 at once), for comparison.
    let t = Instant::now();
    let v = s.get_json("/api/admin/packages").await;
    report.push(format!(
        "GET /api/admin/packages (all {}): {:.1} ms",
        v["items"].as_array().unwrap().len(),
        t.elapsed().as_secs_f64() * 1e3
    ));
    println!(
        "Packages tab with {PACKAGES} packages ({:?}, debug build):",
        common::engine()
    );
    for line in &report {
        println!("  {line}");
    }
}
