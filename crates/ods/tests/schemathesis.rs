//! Schemathesis (property-based API testing from the OpenAPI document) against a real
//! server: every check, every phase (examples, coverage, fuzzing, stateful),
//! authenticated as an admin, for a bounded time; it must find no failure.
//!
//! Runs in the SQLite suite only (the API is the same on every engine). Without `st`
//! on the PATH it is skipped with a message, except under `ODS_REQUIRE_ALL_DBS=1`
//! (CI), where that is a failure; `.ci/run` installs it (`pip install schemathesis`).
//!
//! What the run leaves out, and why:
//! - `POST /api/admin/register` makes this server call out to the generated URL.
//! - `POST /api/admin/webhooks`, `PATCH /api/admin/webhooks/{id}` and
//!   `POST /api/admin/webhooks/{id}/test` would make it POST to generated URLs (any
//!   host); tests/webhooks.rs covers them against a local receiver. The other webhook
//!   operations (list, get, delete, deliveries) are fuzzed. Likewise `PUT
//!   /api/admin/email` and `POST /api/admin/email/test` (an SMTP host and a
//!   recipient from the fuzzer); tests/email.rs covers them against a local server.
//! - Jamf Pro instances are fuzzed with any URL, but the server runs with
//!   `ODS_JAMF_ALLOWED_HOSTS=127.0.0.1:9`, so its Jamf jobs call no generated host
//!   (they record why instead); the webhook receiver's secret is the admin password
//!   the run authenticates with, and a Jamf JWT public key is configured so that
//!   `download_auth: jwt` is a valid setting.
//! - `PATCH`/`DELETE /api/admin/users/{username}` get a fixed username (a user made for
//!   it), so that the fuzzer cannot change the password of, demote or delete the
//!   account it authenticates with; their bodies are still generated. The DELETE runs
//!   outside the stateful phase (its one user can be deleted only once).
//! - Two packages are uploaded first, and the package operations' `id_or_name` is one
//!   of them half the time, so those operations reach a real package.
//! - For downloads, 304, 412 and 416 are right answers to valid conditional and range
//!   requests, so the positive-data check accepts them there.
mod common;

use std::process::Command;

use reqwest::Method;
use serde_json::json;

const PASSWORD: &str = "schemathesis-admin-1";

const CONFIG: &str = r#"
[[operations]]
include-path = "/api/admin/users/{username}"
include-method = "PATCH"
parameters = { username = "victim" }

[[operations]]
include-path = "/api/admin/users/{username}"
include-method = "DELETE"
parameters = { username = "victim-delete" }
phases.stateful.enabled = false

[[operations]]
include-tag = "downloads"
checks.positive_data_acceptance.expected-statuses = ["200", "206", "304", "401", "404", "412", "416"]

# Packages made before the run, so that operations on one package reach one half the
# time (a deleted one answers 404 afterwards, which is right).
[dictionaries]
packages = { values = ["1", "2", "seed-1.pkg", "seed-2.pkg"] }

[[operations]]
include-path-regex = "^/api/admin/packages/\\{id_or_name\\}"
parameters = { id_or_name = { dictionary = "packages", probability = 0.5 } }
"#;

/// An RSA public key (PEM) made with the openssl CLI; returns its path.
fn jwt_public_key(dir: &std::path::Path) -> String {
    let key = dir.join("jwt.key");
    let public = dir.join("jwt.pub");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-out"])
        .arg(&key)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public)
            .status()
            .is_ok_and(|s| s.success());
    assert!(made, "openssl could not make a key pair");
    public.display().to_string()
}

fn st_available() -> bool {
    Command::new("st")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn schemathesis_finds_no_failure() {
    if common::engine() != common::Engine::Sqlite {
        eprintln!("schemathesis runs in the SQLite suite only");
        return;
    }
    if !st_available() {
        assert!(
            std::env::var("ODS_REQUIRE_ALL_DBS").as_deref() != Ok("1"),
            "schemathesis (`st`) is not installed; ODS_REQUIRE_ALL_DBS=1 needs it (pip install schemathesis)"
        );
        eprintln!("SKIPPED: schemathesis (`st`) is not installed; pip install schemathesis");
        return;
    }
    // The fuzzer sends wrong credentials on purpose (ignored_auth): the login limiter
    // must not answer 429 to the rest of the run.
    let keys = tempfile::tempdir().unwrap();
    let jwt_key = jwt_public_key(keys.path());
    let env = [
        ("ODS_LOGIN_MAX_FAILURES_PER_ADDRESS", "1000000"),
        ("ODS_LOGIN_MAX_FAILURES_PER_ACCOUNT", "1000000"),
        ("ODS_JAMF_ALLOWED_HOSTS", "127.0.0.1:9"),
        ("ODS_JAMF_WEBHOOK_SECRET", PASSWORD),
        ("ODS_JAMF_JWT_PUBLIC_KEY", jwt_key.as_str()),
    ];
    let s = common::Server::start_with(common::Opts {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
    .await;
    for (i, name) in ["seed-1.pkg", "seed-2.pkg"].into_iter().enumerate() {
        let r = s.upload(name, common::bytes(3000, i as u64), "Prod").await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let r = s
        .admin(Method::PATCH, "/api/admin/users/admin")
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for name in ["victim", "victim-delete"] {
        let r = s
            .http
            .post(s.at("/api/admin/users"))
            .basic_auth("admin", Some(PASSWORD))
            .json(&json!({"username": name, "password": "victim-pass-1", "role": "viewer"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let max_time = std::env::var("ODS_SCHEMATHESIS_SECS").unwrap_or_else(|_| "120".into());
    let mut cmd = Command::new("st");
    cmd.current_dir(dir.path())
        .arg("--no-color")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(s.at("/api/openapi.json"))
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--auth", &format!("admin:{PASSWORD}")])
        .args(["--exclude-path", "/api/admin/register"])
        .args(["--exclude-operation-id", "create_webhook"])
        .args(["--exclude-operation-id", "update_webhook"])
        .args(["--exclude-operation-id", "test_webhook"])
        .args(["--exclude-operation-id", "put_email"])
        .args(["--exclude-operation-id", "test_email"])
        .args(["--max-examples", "50"])
        .args(["--max-time", &max_time])
        // One worker: CPython 3.11 can crash inside Hypothesis when two threads parse
        // source at once ("AST constructor recursion depth mismatch"), an error of the
        // tool, not a finding.
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .args(["--seed", "6"]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("running st");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    // "Test cases:\n  16373 generated, 16373 passed, 63 skipped"
    let summary = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Test cases:"))
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    let generated: u64 = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    println!("schemathesis: {summary}");
    eprintln!("schemathesis generated {generated} test cases ({summary})");
    assert!(
        out.status.success() && !summary.contains("fail"),
        "schemathesis found failures (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(
        generated > 1000,
        "schemathesis generated only {generated} test cases:\n{stdout}\n{stderr}"
    );
    assert!(
        !s.log().contains("panicked"),
        "the server panicked:\n{}",
        s.log()
    );
}
