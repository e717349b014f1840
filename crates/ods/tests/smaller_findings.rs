//! Finding 10 of issue 9, the smaller ones: a multipart filename with a quote is the
//! name sent; a urlencoded upload is told to be multipart/form-data; logs written to a
//! file carry no colour codes; stage names are case-insensitive on every endpoint
//! (`prod` is `Prod`) and answered in the canonical spelling.
mod admin_support;
mod common;

use admin_support::*;
use common::Server;
use reqwest::Method;
use serde_json::json;

async fn raw_upload(s: &Server, disposition: &str) -> reqwest::Response {
    let boundary = "XbOuNdArYx";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"stage\"\r\n\r\nDev\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(b"quoted bytes");
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    req(s, &Cred::admin(), Method::POST, "/api/admin/upload")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn quotes_urlencoded_uploads_colourless_logs_and_stage_spellings() {
    let s = Server::start().await;
    let a = Cred::admin();

    // The name sent, quote and all; never cut at the quote.
    let r = raw_upload(&s, r#"form-data; name="file"; filename="a\"b.pkg""#).await;
    let p = expect_json(r, 201).await;
    assert_eq!(p["filename"], "a\"b.pkg");
    let got = s.get_json("/api/admin/packages/name/a%22b.pkg").await;
    assert_eq!(got["id"], p["id"]);
    let r = raw_upload(&s, r#"form-data; name="file"; filename="open.pkg"#).await;
    expect_error(r, 400, "invalid_filename").await;
    let items = s.get_json("/api/admin/packages").await["items"].clone();
    let names: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a\"b.pkg"]);

    // A urlencoded body is told what the upload must be.
    let r = req(&s, &a, Method::POST, "/api/admin/upload")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("stage=Dev&file=abc")
        .send()
        .await
        .unwrap();
    let e = expect_error(r, 400, "invalid_multipart").await;
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("must be multipart/form-data"), "{msg}");
    assert!(!msg.contains('`'), "no framework text: {msg}");

    // Stages: any letter case on upload, PATCH and about; answered canonically.
    let r = s.upload("lower.pkg", b"abc".to_vec(), "prod").await;
    assert_eq!(expect_json(r, 201).await["stage"], "Prod");
    let r = req(&s, &a, Method::PATCH, "/api/admin/packages/name/lower.pkg")
        .json(&json!({"stage": "tEST"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["stage"], "Test");
    let r = req(&s, &a, Method::POST, "/api/admin/about")
        .json(&json!({"stage": "dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(s.get_json("/api/admin/about").await["stage"], "Dev");
    for bad in ["Staging", "Production", ""] {
        let r = s.upload("bad-stage.pkg", b"abc".to_vec(), bad).await;
        assert_eq!(r.status(), 400, "{bad:?}");
        let r = req(&s, &a, Method::PATCH, "/api/admin/packages/name/lower.pkg")
            .json(&json!({"stage": bad}))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "invalid_stage").await;
    }

    // The log (stderr to a file here) has no ANSI escape codes.
    let log = s.log();
    assert!(log.contains("INFO") || log.contains("WARN"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
}
