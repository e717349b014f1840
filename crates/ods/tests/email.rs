//! Email (issue 8 item 2) against a real SMTP server on loopback: aiosmtpd, started by
//! the test (tests/support/smtp_server.py), which parses each message with Python's
//! email package. Proves: settings with the password sealed and never shown, the right
//! headers and both bodies, a digest batching several events per recipient, STARTTLS
//! with a self-signed certificate working when trusted (ODS_EMAIL_CA_FILE) and failing
//! when not, and a refusing server leading to retries.
//!
//! Needs python3 with aiosmtpd and the openssl CLI (.ci/run installs them): without
//! them the tests are skipped with a message, except under ODS_REQUIRE_ALL_DBS=1.
mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use common::{Opts, Server, openssl, python};

struct Smtp {
    _py: python::Helper,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn tools_ready() -> bool {
    let ssl = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    python::ready_or_skip(
        python::has_module("aiosmtpd") && ssl,
        "python3 with aiosmtpd and openssl are needed (pip install aiosmtpd)",
        "python3 with aiosmtpd or openssl is not installed",
    )
}

impl Smtp {
    fn start(args: &[&str]) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mail.jsonl");
        let mut all = vec![log.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        let py = python::Helper::start("smtp_server.py", &all);
        Smtp {
            port: py.port,
            _py: py,
            log,
            _dir: dir,
        }
    }

    fn mail(&self) -> Vec<Value> {
        python::read_jsonl(&self.log)
    }

    fn to(&self, rcpt: &str) -> Vec<Value> {
        self.mail()
            .into_iter()
            .filter(|m| m["to"] == json!([rcpt]))
            .collect()
    }

    fn refused(&self) -> usize {
        std::fs::read_to_string(self.log.with_extension("jsonl.refused"))
            .unwrap_or_default()
            .lines()
            .count()
    }
}

/// A self-signed certificate for 127.0.0.1 (not a CA: its own trust anchor).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join("req.cnf"),
        "[req]\ndistinguished_name=dn\nx509_extensions=v3\nprompt=no\n[dn]\nCN=127.0.0.1\n\
         [v3]\nsubjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "smtp.key",
            "-out",
            "smtp.pem",
            "-days",
            "2",
            "-config",
            "req.cnf",
        ],
    );
    (dir.join("smtp.pem"), dir.join("smtp.key"))
}

async fn put_email(s: &Server, body: Value) -> reqwest::Response {
    s.admin(Method::PUT, "/api/admin/email")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn setup(s: &Server, port: u16, security: &str) {
    let r = put_email(
        s,
        json!({"host": "127.0.0.1", "port": port, "security": security, "from": "ODS Alerts <ods@test.example>"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn test_mail(s: &Server, to: &str) -> i64 {
    let r = s
        .admin(Method::POST, "/api/admin/email/test")
        .json(&json!({"to": to}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["job_id"].as_i64().unwrap()
}

fn digest_opts(extra: &[(&str, &str)]) -> Opts {
    let mut env = vec![("ODS_EMAIL_DIGEST_SECS".to_string(), "2".to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Opts {
        env,
        ..Default::default()
    }
}

#[tokio::test]
async fn settings_headers_bodies_and_digests() {
    if !tools_ready() {
        return;
    }
    let smtp = Smtp::start(&[]);
    let s = Server::start_with(digest_opts(&[])).await;
    assert_eq!(
        s.get_json("/api/admin/email").await["configured"],
        json!(false)
    );
    let r = s
        .admin(Method::POST, "/api/admin/email/test")
        .json(&json!({"to": "a@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "not set up yet");

    // Bad settings: 400, nothing stored.
    for bad in [
        json!({"host": "", "port": 25, "security": "none", "from": "ods@test.example"}),
        json!({"host": "h", "port": 0, "security": "none", "from": "ods@test.example"}),
        json!({"host": "h", "port": 25, "security": "ssl", "from": "ods@test.example"}),
        json!({"host": "h", "port": 25, "security": "none", "from": "not an address"}),
    ] {
        assert_eq!(put_email(&s, bad.clone()).await.status(), 400, "{bad}");
    }
    assert_eq!(
        s.get_json("/api/admin/email").await["configured"],
        json!(false)
    );

    // A password is sealed at rest and never shown.
    let r = put_email(
        &s,
        json!({"host": "127.0.0.1", "port": smtp.port, "security": "none", "username": "u", "password": "pw-s3cret-9", "from": "ods@test.example"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let shown = s.get_json("/api/admin/email").await;
    assert_eq!(shown["password_set"], json!(true));
    assert!(!shown.to_string().contains("pw-s3cret-9"), "{shown}");
    assert_eq!(s.sql("UPDATE email_settings SET updated = updated + 1 WHERE password_sealed LIKE '%pw-s3cret-9%'").await, 0);
    assert_eq!(
        s.sql("UPDATE email_settings SET updated = updated + 1 WHERE password_sealed LIKE 'v1:%'")
            .await,
        1
    );
    // Without the password field it is kept; an empty one removes it.
    let r = put_email(&s, json!({"host": "127.0.0.1", "port": smtp.port, "security": "none", "username": "u", "from": "ods@test.example"})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["password_set"],
        json!(true)
    );
    let r = put_email(&s, json!({"host": "127.0.0.1", "port": smtp.port, "security": "none", "password": "", "from": "ods@test.example"})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["password_set"],
        json!(false)
    );
    setup(&s, smtp.port, "none").await;

    // The package links need the server's URL.
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({"url": s.url}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    for (body, code) in [
        (
            json!({"recipients": ["nope"], "events": ["*"]}),
            "invalid_recipients",
        ),
        (
            json!({"recipients": [], "events": ["*"]}),
            "invalid_recipients",
        ),
        (
            json!({"recipients": ["a@example.com"], "events": ["package.nope"]}),
            "invalid_events",
        ),
    ] {
        let r = s
            .admin(Method::POST, "/api/admin/email/subscriptions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], code);
    }
    let sub = |recipients: Value, events: Value| {
        let s = &s;
        async move {
            let r = s
                .admin(Method::POST, "/api/admin/email/subscriptions")
                .json(&json!({"recipients": recipients, "events": events}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()
        }
    };
    sub(
        json!(["ops@example.com", "dev@example.com"]),
        json!(["package.uploaded", "package.public"]),
    )
    .await;
    let deletions = sub(json!(["del@example.com"]), json!(["package.deleted"])).await;
    assert_eq!(
        s.get_json("/api/admin/email/subscriptions").await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Three uploads inside the window: six events, one digest per recipient.
    for i in 0..3 {
        let r = s
            .upload(
                &format!("mail-{i}.pkg"),
                common::bytes(300 + i, i as u64),
                "Prod",
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    s.eventually(30, "a digest to each recipient", || async {
        smtp.to("ops@example.com").len() == 1 && smtp.to("dev@example.com").len() == 1
    })
    .await;
    let name = s.get_json("/api/admin/about").await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let m = &smtp.to("ops@example.com")[0];
    assert_eq!(m["subject"], format!("[ODS {name}] 6 events"), "{m}");
    assert_eq!(m["from_header"], "ODS Alerts <ods@test.example>");
    assert_eq!(m["to_header"], "ops@example.com");
    assert_eq!(m["from"], "ods@test.example");
    assert_eq!(m["content_type"], "multipart/alternative");
    let (text, html) = (m["text"].as_str().unwrap(), m["html"].as_str().unwrap());
    for i in 0..3 {
        assert!(text.contains(&format!("mail-{i}.pkg")), "{text}");
        assert!(html.contains(&format!("mail-{i}.pkg")), "{html}");
    }
    assert_eq!(text.matches("package.public").count(), 3, "{text}");
    assert_eq!(text.matches("package.uploaded").count(), 3, "{text}");
    assert!(
        text.contains(&format!("{}/packages?q=mail%2D0%2Epkg", s.url)),
        "a link to the package: {text}"
    );
    assert!(html.contains("<a href=") && html.contains(&name), "{html}");
    assert!(
        smtp.to("del@example.com").is_empty(),
        "the event filter holds"
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        smtp.to("ops@example.com").len(),
        1,
        "one digest, not one mail per event"
    );

    // One event: a message about it.
    let r = s
        .admin(Method::DELETE, "/api/admin/packages/mail-1.pkg")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    s.eventually(30, "the deletion mail", || async {
        smtp.to("del@example.com").len() == 1
    })
    .await;
    let d = &smtp.to("del@example.com")[0];
    assert_eq!(
        d["subject"],
        format!("[ODS {name}] package.deleted: mail-1.pkg")
    );
    assert!(d["html"].as_str().unwrap().contains("mail-1.pkg"));

    let r = s
        .admin(
            Method::DELETE,
            &format!("/api/admin/email/subscriptions/{}", deletions["id"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = s
        .admin(
            Method::DELETE,
            &format!("/api/admin/email/subscriptions/{}", deletions["id"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn starttls_with_a_self_signed_certificate() {
    if !tools_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let smtp = Smtp::start(&["--starttls", cert.to_str().unwrap(), key.to_str().unwrap()]);

    // Trusted: delivered over TLS.
    let trusting = Server::start_with(digest_opts(&[(
        "ODS_EMAIL_CA_FILE",
        cert.to_str().unwrap(),
    )]))
    .await;
    setup(&trusting, smtp.port, "starttls").await;
    test_mail(&trusting, "tls@example.com").await;
    trusting
        .eventually(30, "the message over STARTTLS", || async {
            smtp.to("tls@example.com").len() == 1
        })
        .await;
    let m = &smtp.to("tls@example.com")[0];
    assert_eq!(m["tls"], json!(true));
    assert!(m["subject"].as_str().unwrap().contains("Test message"));
    assert!(m["text"].as_str().is_some() && m["html"].as_str().is_some());

    // Not trusted: the attempt fails on the certificate, and nothing arrives.
    let wary = Server::start_with(digest_opts(&[])).await;
    setup(&wary, smtp.port, "starttls").await;
    let job = test_mail(&wary, "untrusted@example.com").await;
    wary.eventually(30, "the failed attempt", || async {
        let j = wary.get_json(&format!("/api/admin/jobs/{job}")).await;
        j["attempts"].as_i64().unwrap_or(0) >= 1 && j["state"] != "running"
    })
    .await;
    let j = wary.get_json(&format!("/api/admin/jobs/{job}")).await;
    assert_ne!(j["state"], "done", "{j}");
    let err = j["last_error"].as_str().unwrap_or_default().to_lowercase();
    assert!(err.contains("certificate") || err.contains("issuer"), "{j}");
    assert!(smtp.to("untrusted@example.com").is_empty());
}

#[tokio::test]
async fn a_refusing_server_is_retried() {
    if !tools_ready() {
        return;
    }
    let smtp = Smtp::start(&["--refuse", "2"]);
    let s = Server::start_with(digest_opts(&[])).await;
    setup(&s, smtp.port, "none").await;
    let job = test_mail(&s, "retry@example.com").await;
    s.eventually(60, "the message after two refusals", || async {
        smtp.to("retry@example.com").len() == 1
    })
    .await;
    assert_eq!(smtp.refused(), 2);
    let j = s.get_json(&format!("/api/admin/jobs/{job}")).await;
    assert_eq!(j["state"], "done", "{j}");
    assert_eq!(j["attempts"], 3, "{j}");
}
