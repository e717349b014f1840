//! The repo's nginx deployment (deploy/nginx/ods.conf) run for real with Debian's
//! nginx in front of a real `ods serve`, on loopback ports: failed logins through it
//! lock out only the client nginx names in X-Forwarded-For; packages are cached in
//! slices, served with Range, revalidated by ETag; a 0-byte package passes the slice
//! cache; an upload of more than 2 GB streams through.
mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use common::{Opts, Server};
use sha2::Digest;

/// A running nginx with the repo's config rendered for this test.
struct Nginx {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "deploy/nginx/ods.conf should contain {from:?} exactly once"
    );
    text.replace(from, to)
}

impl Nginx {
    async fn start(ods: &Server) -> Nginx {
        assert!(
            Path::new("/usr/sbin/nginx").exists(),
            "nginx is not installed (apt-get install -y nginx-light)"
        );
        let dir = tempfile::Builder::new()
            .prefix("ods-nginx-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let upstream = ods.url.trim_start_matches("http://");
        let conf = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/ods.conf"),
        )
        .unwrap();
        let conf = replace_once(
            &conf,
            "/var/cache/nginx/ods",
            &d.join("cache").display().to_string(),
        );
        let conf = replace_once(
            &conf,
            "server 127.0.0.1:8080;",
            &format!("server {upstream};"),
        );
        let conf = replace_once(&conf, "listen 80;", &format!("listen 127.0.0.1:{port};"));
        let child = common::nginx::start(d, "ods.conf", &conf, port).await;
        let url = format!("http://127.0.0.1:{port}");
        Nginx { child, url, dir }
    }

    fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

fn ods_behind_nginx(extra: &[(&str, &str)]) -> Opts {
    let mut env = vec![
        (
            "ODS_TRUSTED_PROXIES".to_string(),
            "127.0.0.1/32".to_string(),
        ),
        (
            "ODS_DOWNLOAD_CACHE_CONTROL".to_string(),
            "public, max-age=2, must-revalidate".to_string(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Opts {
        env,
        ..Opts::default()
    }
}

fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap()
}

fn cache_status(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn failed_logins_through_nginx_lock_out_only_their_client() {
    let s = Server::start_with(ods_behind_nginx(&[])).await;
    let nginx = Nginx::start(&s).await;
    let (bad, good) = (
        client_from(Ipv4Addr::new(127, 0, 0, 9)),
        client_from(Ipv4Addr::new(127, 0, 0, 10)),
    );
    let about = |c: &reqwest::Client, pass: &'static str| {
        c.get(nginx.at("/api/admin/about"))
            .basic_auth("admin", Some(pass))
            // What a client sends is kept on the left by nginx, and not believed.
            .header("x-forwarded-for", "198.51.100.1")
            .send()
    };
    for i in 0..10 {
        assert_eq!(
            about(&bad, "wrong").await.unwrap().status(),
            401,
            "attempt {}",
            i + 1
        );
    }
    assert_eq!(about(&bad, common::ADMIN.1).await.unwrap().status(), 429);
    let r = about(&good, common::ADMIN.1).await.unwrap();
    assert_eq!(r.status(), 200, "another client of the same nginx");
    assert_eq!(
        r.headers().get("cache-control").unwrap(),
        "no-store",
        "API answers through nginx stay uncacheable"
    );
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains("failed login") && l.contains("127.0.0.9")),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("failed login") && l.contains("198.51.100.1")),
        "a client's own X-Forwarded-For is not believed:\n{log}"
    );
}

#[tokio::test]
async fn the_site_cache_keeps_slices_serves_ranges_and_revalidates_by_etag() {
    let s = Server::start_with(ods_behind_nginx(&[])).await;
    let nginx = Nginx::start(&s).await;
    let data = common::bytes(3 * 1024 * 1024 + 12345, 7);
    assert_eq!(
        s.upload("cached.pkg", data.clone(), "Prod").await.status(),
        201
    );
    assert_eq!(
        s.upload("empty.pkg", Vec::new(), "Prod").await.status(),
        201
    );
    let c = reqwest::Client::builder().no_proxy().build().unwrap();

    let r = c
        .get(nginx.at("/CasperShare/Packages/cached.pkg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cache_status(&r), "MISS");
    assert_eq!(
        r.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert_eq!(r.bytes().await.unwrap()[..], data[..]);
    let r = c
        .get(nginx.at("/CasperShare/Packages/cached.pkg"))
        .send()
        .await
        .unwrap();
    assert_eq!(cache_status(&r), "HIT", "the package is stored");
    assert_eq!(r.bytes().await.unwrap()[..], data[..]);

    // A Range across slices, from the cache.
    let r = c
        .get(nginx.at("/CasperShare/Packages/cached.pkg"))
        .header("range", "bytes=1000000-2100000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap()[..], data[1_000_000..=2_100_000]);

    // After max-age, nginx asks ODS again with the ETag and ODS answers 304.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = c
        .get(nginx.at("/CasperShare/Packages/cached.pkg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cache_status(&r), "REVALIDATED", "{}", nginx.error_log());
    assert_eq!(r.bytes().await.unwrap()[..], data[..]);

    // A 0-byte package through the slice cache: 200 and empty, with or without Range.
    for range in [None, Some("bytes=0-1048575")] {
        let mut rb = c.get(nginx.at("/share/empty.pkg"));
        if let Some(r) = range {
            rb = rb.header("range", r);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200, "range {range:?}: {}", nginx.error_log());
        assert!(r.bytes().await.unwrap().is_empty());
    }
}

/// The deterministic content of the big upload: 1 MiB blocks, each a distinct byte.
fn block(i: u64) -> bytes::Bytes {
    bytes::Bytes::from(vec![(i % 251) as u8; 1024 * 1024])
}

#[tokio::test]
async fn an_upload_of_more_than_2_gb_streams_through_nginx() {
    let s = Server::start_with(ods_behind_nginx(&[])).await;
    let nginx = Nginx::start(&s).await;
    let blocks = 2 * 1024 + 3; // 2 GiB + 3 MiB
    let len = blocks * 1024 * 1024;
    let mut h = sha2::Sha256::new();
    for i in 0..blocks {
        h.update(block(i));
    }
    let want = hex::encode(h.finalize());
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
        (0..blocks).map(|i| Ok::<_, std::io::Error>(block(i))),
    ));
    let part = reqwest::multipart::Part::stream_with_length(body, len).file_name("big.pkg");
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("stage", "Prod");
    let r = s
        .http
        .post(nginx.at("/api/admin/upload"))
        .basic_auth(common::ADMIN.0, Some(common::ADMIN.1))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}\n{}", nginx.error_log());
    assert_eq!(v["sha256"], want);
    // And a Range at its far end comes back through nginx.
    let r = s
        .http
        .get(nginx.at("/share/big.pkg"))
        .header("range", format!("bytes={}-{}", len - 10, len - 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.bytes().await.unwrap()[..],
        [((blocks - 1) % 251) as u8; 10]
    );
}
