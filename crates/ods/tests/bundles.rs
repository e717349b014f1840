//! Many small packages syncing (issue 11): a receiver holding packages of one chunk or
//! less takes them in bundles (`POST /api/ods/packages/bundle`, many packages per
//! request) and turns them Public together, while larger packages still take the
//! chunk-wise path. Real `ods` processes on loopback; the sender's `/metrics` counts
//! the requests each path made, and every copy is checked by sha256.
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Opts, Server, bytes, register, sha256_hex};
use reqwest::Method;
use serde_json::{Value, json};

const TOKEN: &str = "bundles-metrics-token-0123456789";

async fn server(name: &str) -> Server {
    let mut opts = Opts::default();
    opts.env.push(("ODS_SYNC_INTERVAL".into(), "2".into()));
    opts.env.push(("ODS_METRICS_TOKEN".into(), TOKEN.into()));
    let s = Server::start_with(opts).await;
    common::mesh::name(&s, name, "Prod").await;
    s
}

/// Every package on `s` by filename.
async fn packages(s: &Server) -> HashMap<String, Value> {
    let mut all = HashMap::new();
    let mut offset = 0;
    loop {
        let page = s
            .get_json(&format!("/api/admin/packages?offset={offset}&limit=200"))
            .await;
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return all;
        }
        offset += items.len();
        for p in items {
            all.insert(p["filename"].as_str().unwrap().to_string(), p);
        }
    }
}

/// `s` serves `name` (`/share/<name>`) with exactly `want`.
async fn assert_served(s: &Server, name: &str, want: &[u8]) {
    let (status, body) = s.share(name).await;
    assert_eq!(status, 200, "{name}");
    assert_eq!(&body[..], want, "{name}");
}

/// Requests `s` answered on the route template `route`, by its `/metrics`.
async fn requests_on(s: &Server, route: &str) -> u64 {
    let text = s.metrics(TOKEN).await;
    let label = format!("route=\"{route}\"");
    text.lines()
        .filter(|l| l.starts_with("ods_http_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn many_small_packages_arrive_in_bundles_and_a_bad_one_never_turns_public() {
    let a = server("A").await;
    // Small ones of every edge size, one of two chunks, and one whose bytes A's disk
    // will damage.
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("empty.pkg".into(), Vec::new()),
        ("one-byte.pkg".into(), bytes(1, 1)),
        ("one-chunk.pkg".into(), bytes(1024 * 1024, 2)),
        ("two-chunks.pkg".into(), bytes(1024 * 1024 + 1, 3)),
    ];
    for i in 0..100 {
        files.push((
            format!("small-{i:03}.pkg"),
            bytes(1000 + i * 700, 10 + i as u64),
        ));
    }
    for (name, data) in &files {
        let r = a.upload(name, data.clone(), "Prod").await;
        assert_eq!(r.status(), 201, "{name}: {}", r.text().await.unwrap());
    }
    let bad = bytes(5000, 999);
    let up: Value = a
        .upload("damaged.pkg", bad.clone(), "Prod")
        .await
        .json()
        .await
        .unwrap();
    let sha = up["sha256"].as_str().unwrap();
    let path = a.data_dir.join("blobs").join(&sha[..2]).join(sha);
    let mut disk = std::fs::read(&path).unwrap();
    disk[100] ^= 0xff;
    std::fs::write(&path, &disk).unwrap();

    let b = server("B").await;
    let started = Instant::now();
    register(&b, &a).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let on_b = packages(&b).await;
        let public = files
            .iter()
            .filter(|(n, _)| on_b.get(n).is_some_and(|p| p["status"] == "Public"))
            .count();
        if public == files.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{public} of {} Public on B\n{}",
            files.len(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{} packages Public on B {:.2} s after registering",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    let on_b = packages(&b).await;
    for (name, data) in &files {
        assert_eq!(on_b[name]["sha256"], json!(sha256_hex(data)), "{name}");
    }
    for name in [
        "empty.pkg",
        "one-byte.pkg",
        "one-chunk.pkg",
        "small-042.pkg",
    ] {
        let want = &files.iter().find(|(n, _)| n == name).unwrap().1;
        assert_served(&b, name, want).await;
    }

    // The small ones came in bundles, far fewer requests than packages; the package of
    // two chunks came chunk-wise.
    let bundles = requests_on(&a, "/api/ods/packages/bundle").await;
    let chunks = requests_on(&a, "/api/ods/packages/{uuid}/chunks/{idx}").await;
    eprintln!("A answered {bundles} bundle and {chunks} chunk requests");
    for l in b
        .log()
        .lines()
        .filter(|l| l.contains("bundle") || l.contains("WARN"))
        .take(20)
    {
        eprintln!("B: {l}");
    }
    assert!(bundles >= 1, "no bundle request reached A");
    assert!(
        bundles <= 12,
        "{bundles} bundle requests for 103 small packages"
    );
    assert!(chunks >= 1, "the two-chunk package is fetched chunk-wise");
    assert!(
        chunks <= 12,
        "{chunks} chunk requests: small packages went one by one"
    );
    assert!(
        !b.log().contains("bundle fetch failed"),
        "a bundle request failed:\n{}",
        b.log()
    );

    // The damaged one is refused (its SHA-256 does not match) and never turns Public.
    b.eventually(30, "B to reject the damaged package", || async {
        b.get_json("/api/admin/sync").await["chunks_rejected"]
            .as_u64()
            .unwrap()
            > 0
    })
    .await;
    let p = &packages(&b).await["damaged.pkg"];
    assert_ne!(p["status"], "Public", "never Public with wrong bytes: {p}");
    let r = b.http.get(b.at("/share/damaged.pkg")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Fixed at the source (a good copy uploaded again under its name), it arrives.
    let r = a
        .admin(Method::DELETE, "/api/admin/packages/damaged.pkg")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let good = bytes(6000, 1000);
    assert_eq!(
        a.upload("damaged.pkg", good.clone(), "Prod").await.status(),
        201
    );
    b.eventually(60, "the replacement Public on B", || async {
        packages(&b)
            .await
            .get("damaged.pkg")
            .is_some_and(|p| p["status"] == "Public" && p["sha256"] == json!(sha256_hex(&good)))
    })
    .await;
}

/// Packages larger than a chunk: the receiver asks each peer for their manifests
/// together (`POST /api/ods/packages/manifests`), not one request per package, and
/// the chunks still come chunk-wise and are checked.
#[tokio::test]
async fn manifests_of_chunked_packages_come_in_one_request() {
    let a = server("A").await;
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            let size = 1024 * 1024 + 1 + i * 300_000;
            (format!("big-{i}.pkg"), bytes(size, 40 + i as u64))
        })
        .collect();
    for (name, data) in &files {
        let r = a.upload(name, data.clone(), "Prod").await;
        assert_eq!(r.status(), 201, "{name}: {}", r.text().await.unwrap());
    }
    let b = server("B").await;
    register(&b, &a).await;
    b.eventually(120, "every chunked package Public on B", || async {
        let on_b = packages(&b).await;
        files
            .iter()
            .all(|(n, _)| on_b.get(n).is_some_and(|p| p["status"] == "Public"))
    })
    .await;
    let on_b = packages(&b).await;
    for (name, data) in &files {
        assert_eq!(on_b[name]["sha256"], json!(sha256_hex(data)), "{name}");
        assert_served(&b, name, data).await;
    }
    let together = requests_on(&a, "/api/ods/packages/manifests").await;
    let one_by_one = requests_on(&a, "/api/ods/packages/{uuid}/manifest").await;
    let chunks = requests_on(&a, "/api/ods/packages/{uuid}/chunks/{idx}").await;
    eprintln!("A answered {together} manifests, {one_by_one} manifest and {chunks} chunk requests");
    assert!(together >= 1, "no manifests request reached A");
    assert!(
        together <= 2,
        "{together} manifests requests for 6 packages"
    );
    assert_eq!(one_by_one, 0, "manifests were asked one package at a time");
    assert!(
        chunks >= 6,
        "{chunks} chunk requests for 6 packages of two chunks or more"
    );

    // The route answers only a signed peer, and refuses a bad list without a change.
    let r = a
        .http
        .post(a.at("/api/ods/packages/manifests"))
        .json(&json!({"uuids": [on_b["big-0.pkg"]["uuid"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
