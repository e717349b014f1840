//! The cache policy of package downloads, against a real `ods serve`: by default a
//! shared cache may keep a package and must revalidate it (by ETag) after a minute; the
//! policy is configuration; an authenticated download is never shared; every download
//! says `nosniff`.
mod common;

use common::{Opts, Server};
use reqwest::Method;
use serde_json::json;

fn hdr(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn downloads_carry_the_configured_cache_policy_and_nosniff() {
    let s = Server::start().await;
    s.upload("policy.pkg", common::bytes(1000, 3), "Prod").await;
    let anon = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = anon.get(s.at("/share/policy.pkg")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        hdr(&r, "cache-control").as_deref(),
        Some("public, max-age=60, must-revalidate")
    );
    assert_eq!(
        hdr(&r, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let tag = hdr(&r, "etag").expect("an ETag to revalidate by");
    // Revalidation by ETag answers 304 with the same policy.
    let r = anon
        .get(s.at("/CasperShare/Packages/policy.pkg"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(
        hdr(&r, "cache-control").as_deref(),
        Some("public, max-age=60, must-revalidate")
    );
    // A range answer too.
    let r = anon
        .get(s.at("/share/policy.pkg"))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        hdr(&r, "x-content-type-options").as_deref(),
        Some("nosniff")
    );

    // With download auth, answers to credentialed requests are private.
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({ "download_auth": "basic" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s
        .admin(Method::GET, "/share/policy.pkg")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        hdr(&r, "cache-control").as_deref(),
        Some("private, no-cache")
    );
    assert_eq!(
        hdr(&r, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
}

#[tokio::test]
async fn the_download_cache_policy_is_configuration() {
    let s = Server::start_with(Opts {
        env: vec![(
            "ODS_DOWNLOAD_CACHE_CONTROL".into(),
            "public, max-age=3600".into(),
        )],
        ..Opts::default()
    })
    .await;
    s.upload("hour.pkg", common::bytes(10, 4), "Prod").await;
    let r = s.http.get(s.at("/share/hour.pkg")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        hdr(&r, "cache-control").as_deref(),
        Some("public, max-age=3600")
    );

    // A value that is not a header value stops the server at start with a reason.
    let out = s
        .command(&["check-config"])
        .env("ODS_DOWNLOAD_CACHE_CONTROL", "max-age=60\u{7f}")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("download_cache_control"), "{err}");
}
