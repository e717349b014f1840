//! Findings of the outside security review, each driven against a real `ods serve`:
//! `/api` answers are never cacheable, request heads over the limits are refused with
//! JSON before any handler runs, and the data directory is private.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Engine, Server, engine};
use reqwest::Method;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn api_answers_are_never_stored_by_caches() {
    let s = Server::start().await;
    s.upload("cached.pkg", common::bytes(1000, 1), "Prod").await;
    let anon = reqwest::Client::builder().no_proxy().build().unwrap();
    let cases = [
        ("admin about", s.admin(Method::GET, "/api/admin/about")),
        ("packages", s.admin(Method::GET, "/api/admin/packages")),
        ("unauthenticated", anon.get(s.at("/api/admin/about"))),
        (
            "unknown api path",
            anon.get(s.at("/api/admin/no-such-thing")),
        ),
        ("api document", anon.get(s.at("/api/openapi.json"))),
        ("unsigned peer call", anon.get(s.at("/api/ods/catalog"))),
        (
            "bad JSON",
            s.admin(Method::POST, "/api/admin/about").body("{"),
        ),
    ];
    for (what, rb) in cases {
        let r = rb.send().await.unwrap();
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}: {}",
            r.status()
        );
        let vary = r.headers().get("vary").unwrap().to_str().unwrap();
        assert!(vary.contains("Authorization"), "{what}: vary {vary}");
    }
    // Downloads are not API answers: a site cache may keep them.
    let r = anon.get(s.at("/share/cached.pkg")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
}

#[tokio::test]
async fn request_heads_over_the_limits_get_json_errors_that_are_not_stored() {
    let s = Server::start().await;
    s.upload("limits.pkg", common::bytes(1000, 3), "Prod").await;
    let anon = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut many = anon.get(s.at("/api/admin/about"));
    for i in 0..101 {
        many = many.header(format!("x-extra-{i}"), "1");
    }
    let cases = [
        ("101 header fields", many, 431, "headers_too_large", true),
        (
            "70,000 bytes of headers on a download",
            anon.get(s.at("/share/limits.pkg"))
                .header("x-big", "a".repeat(70_000)),
            431,
            "headers_too_large",
            false,
        ),
        (
            "a 9,000-byte request target",
            anon.get(s.at(&format!("/api/admin/about?q={}", "a".repeat(9_000)))),
            414,
            "uri_too_long",
            true,
        ),
    ];
    for (what, rb, status, code, api) in cases {
        let r = rb.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let stored = r
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            stored.as_deref() == Some("no-store"),
            api,
            "{what}: {stored:?}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
    }
    // The same download with ordinary headers is served.
    let r = anon.get(s.at("/share/limits.pkg")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), common::bytes(1000, 3));
}

#[tokio::test]
async fn the_data_directory_is_private() {
    let mut s = Server::start().await;
    s.upload("private.pkg", common::bytes(5000, 2), "Prod")
        .await;
    let d = s.data_dir.clone();
    let check = |d: &Path| {
        assert_eq!(mode(d), 0o700, "data directory");
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let want = if e.file_type().unwrap().is_dir() {
                0o700
            } else {
                0o600
            };
            assert_eq!(mode(&e.path()), want, "{}", e.path().display());
        }
        assert!(d.join("database.key").is_file() && d.join("secret.key").is_file());
        if engine() == Engine::Sqlite {
            assert_eq!(mode(&d.join("ods.sqlite3")), 0o600);
        }
    };
    check(&d);
    // A directory left readable (an older ODS, a permissive umask) is tightened at start.
    s.stop();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(&d).unwrap() {
        let p = e.unwrap().path();
        let m = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    s.restart().await;
    check(&d);
    let r = s.http.get(s.at("/share/private.pkg")).send().await.unwrap();
    assert_eq!(r.status(), 200, "still serves after tightening");
}
