//! Download auth `jwt` (JAMF.md §1): Jamf Pro's `?token=` RS256 JWT with iss=JSS,
//! sub=AppManifest and exp, checked against the configured public key with a clock
//! skew. Keys are made with the openssl CLI (installed by .ci/run).
mod common;

use std::path::Path;
use std::process::Command;

use common::{Opts, Server, bytes};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::json;

fn keypair(dir: &Path, name: &str) -> (Vec<u8>, std::path::PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status()
        .expect("openssl (apt-get install openssl)")
        .success();
    assert!(ok);
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    (std::fs::read(&key).unwrap(), public)
}

fn token(private_pem: &[u8], iss: &str, sub: &str, exp_from_now: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({"iss": iss, "sub": sub, "exp": now + exp_from_now, "iat": now});
    encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(private_pem).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_downloads_take_valid_tokens_only() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (jamf_key, jamf_pub) = keypair(dir.path(), "jamf");
    let (other_key, _) = keypair(dir.path(), "other");
    let mut opts = Opts::default();
    opts.env.push((
        "ODS_JAMF_JWT_PUBLIC_KEY".into(),
        jamf_pub.display().to_string(),
    ));
    opts.env
        .push(("ODS_JAMF_JWT_LEEWAY_SECS".into(), "30".into()));
    let s = Server::start_with(opts).await;
    let data = bytes(100_000, 1);
    assert_eq!(
        s.upload("signed.pkg", data.clone(), "Prod").await.status(),
        201
    );
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({"download_auth": "jwt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(s.get_json("/api/admin/about").await["download_auth"], "jwt");

    let get = |t: Option<String>| {
        let mut url = s.at("/CasperShare/Packages/signed.pkg");
        if let Some(t) = t {
            url.push_str("?token=");
            url.push_str(&t);
        }
        let http = s.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let valid = token(&jamf_key, "JSS", "AppManifest", 300);
    let r = get(Some(valid.clone())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    // Again (from the cache of verified tokens), and on /share too.
    assert_eq!(get(Some(valid.clone())).await.status(), 200);
    let r = s
        .http
        .get(s.at(&format!("/share/signed.pkg?token={valid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Within the clock skew.
    assert_eq!(
        get(Some(token(&jamf_key, "JSS", "AppManifest", -10)))
            .await
            .status(),
        200
    );
    for (why, t) in [
        ("no token", None),
        (
            "expired",
            Some(token(&jamf_key, "JSS", "AppManifest", -600)),
        ),
        (
            "wrong issuer",
            Some(token(&jamf_key, "NotJSS", "AppManifest", 300)),
        ),
        ("wrong subject", Some(token(&jamf_key, "JSS", "Other", 300))),
        (
            "bad signature",
            Some(token(&other_key, "JSS", "AppManifest", 300)),
        ),
        ("garbage", Some("not.a.jwt".to_string())),
    ] {
        let r = get(t).await;
        assert_eq!(r.status(), 401, "{why}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{why}");
    }
    // Basic credentials are no substitute for a token in this mode.
    let r = s
        .http
        .get(s.at("/CasperShare/Packages/signed.pkg"))
        .basic_auth(common::ADMIN.0, Some(common::ADMIN.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn jwt_mode_needs_a_public_key() {
    let s = Server::start().await;
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({"download_auth": "jwt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        s.get_json("/api/admin/about").await["download_auth"],
        "none"
    );
    // A key file that is no key stops the server at start.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let out = s
        .command(&["check-config"])
        .env("ODS_JAMF_JWT_PUBLIC_KEY", &bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("jamf_jwt_public_key"), "{text}");
}
