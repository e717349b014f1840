//! What an upload may not do, and what happens to the content afterwards: hostile
//! filenames and malformed forms are refused with nothing written (no row, no blob, no
//! staging file); a duplicate filename is a conflict unless replaced; equal content is
//! stored once and collected by the `blob_gc` job when the last package using it goes;
//! the job queue drains.
mod common;

use std::time::Duration;

use common::{Server, bytes, sha256_hex};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const MIB: usize = 1024 * 1024;
const BOUNDARY: &str = "ods-test-boundary-7d41c2";

/// One part of a hand-made multipart body: the Content-Disposition parameters after
/// `form-data; ` (raw bytes, so hostile ones reach the server as written) and the data.
struct Part {
    disposition: Vec<u8>,
    data: Vec<u8>,
}

fn file_part(filename: &[u8], data: Vec<u8>) -> Part {
    let mut d = b"name=\"file\"; filename=\"".to_vec();
    d.extend_from_slice(filename);
    d.push(b'"');
    Part {
        disposition: d,
        data,
    }
}

fn text_part(name: &str, value: &str) -> Part {
    Part {
        disposition: format!("name=\"{name}\"").into_bytes(),
        data: value.as_bytes().to_vec(),
    }
}

fn multipart(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; ").as_bytes(),
        );
        body.extend_from_slice(&p.disposition);
        body.extend_from_slice(b"\r\nContent-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(&p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The server may answer a refused upload before reading all of it and then close the
/// connection; `Connection: close` keeps the client from reusing that connection.
async fn post(s: &Server, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    s.admin(Method::POST, path)
        .header("connection", "close")
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn post_form(s: &Server, parts: &[Part]) -> reqwest::Response {
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    post(s, "/api/admin/upload", &ct, multipart(parts)).await
}

async fn expect_error(r: reqwest::Response, status: StatusCode, what: &str) -> String {
    assert_eq!(r.status(), status, "{what}");
    let v: Value = r.json().await.unwrap();
    let code = v["error"]["code"].as_str();
    assert!(code.is_some(), "{what}: {v}");
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
    code.unwrap().to_string()
}

fn blob_names(s: &Server) -> Vec<String> {
    let mut v: Vec<String> = s
        .blob_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

async fn filenames(s: &Server) -> Vec<String> {
    let mut v: Vec<String> = s.get_json("/api/admin/packages").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["filename"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// No new row, no new blob, and (once the aborted writer has cleaned up) no staging file.
async fn assert_nothing_written(s: &Server, rows: &[String], blobs: &[String], what: &str) {
    assert_eq!(filenames(s).await, rows, "{what}: package rows");
    assert_eq!(blob_names(s), blobs, "{what}: blob files");
    s.eventually(
        10,
        &format!("{what}: the staging directory to be empty"),
        || async { s.staging_files().is_empty() },
    )
    .await;
}

/// Status and sha256 of what `/share/<name>` serves.
async fn download(s: &Server, name: &str) -> (StatusCode, String) {
    let (status, body) = s.share(name).await;
    (status, sha256_hex(&body))
}

fn served(data: &[u8]) -> (StatusCode, String) {
    (StatusCode::OK, sha256_hex(data))
}

async fn jobs(s: &Server, query: &str) -> Vec<Value> {
    s.get_json(&format!("/api/admin/jobs?{query}")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until a `blob_gc` job for `sha256` has run to completion.
async fn wait_gc_done(s: &Server, sha256: &str) {
    s.eventually(20, &format!("blob_gc of {sha256} done"), || async {
        jobs(s, "kind=blob_gc&limit=1000")
            .await
            .iter()
            .any(|j| j["payload"]["sha256"] == sha256 && j["state"] == "done")
            && jobs(s, "kind=blob_gc&state=queued").await.is_empty()
            && jobs(s, "kind=blob_gc&state=running").await.is_empty()
    })
    .await;
}

/// Nothing is due: no job running or dead, exactly one pending sweep, and any other
/// queued job waiting for a later time (a collection put off while content is fresh).
async fn assert_jobs_drained(s: &Server) {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let later = |j: &Value| {
        let at = time::PrimitiveDateTime::parse(j["run_at"].as_str().unwrap(), fmt)
            .unwrap()
            .assume_utc();
        at > time::OffsetDateTime::now_utc()
    };
    s.eventually(30, "the job queue to drain", || async {
        jobs(s, "state=running").await.is_empty()
            && jobs(s, "state=queued")
                .await
                .iter()
                .all(|j| j["kind"] == "sweep" || later(j))
    })
    .await;
    assert_eq!(jobs(s, "state=dead").await, Vec::<Value>::new());
    let sweeps = jobs(s, "state=queued&kind=sweep").await;
    assert_eq!(sweeps.len(), 1, "exactly one pending sweep: {sweeps:?}");
    let next = time::PrimitiveDateTime::parse(sweeps[0]["run_at"].as_str().unwrap(), fmt)
        .unwrap()
        .assume_utc();
    assert!(
        next > time::OffsetDateTime::now_utc() + Duration::from_secs(600),
        "the next sweep is not due now: {next}"
    );
}

#[tokio::test]
async fn hostile_filenames_and_bad_forms_write_nothing() {
    let s = Server::start().await;
    // One good package first, so "nothing written" means "nothing more".
    let keep = bytes(2 * MIB + 3, 1);
    let r = s.upload("keep.pkg", keep.clone(), "Dev").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let rows = vec!["keep.pkg".to_string()];
    let blobs = vec![sha256_hex(&keep)];
    assert_nothing_written(&s, &rows, &blobs, "after one good upload").await;

    let data = || bytes(2 * MIB + 5, 2);
    let long = format!("{}.pkg", "a".repeat(252));
    let long_utf8 = "ö".repeat(128);
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("../x", b"../x".to_vec()),
        ("../../etc/passwd", b"../../etc/passwd".to_vec()),
        ("..", b"..".to_vec()),
        ("a/b", b"a/b".to_vec()),
        ("/abs.pkg", b"/abs.pkg".to_vec()),
        ("a\\b", b"a\\b".to_vec()),
        ("..\\x", b"..\\x".to_vec()),
        ("NUL", b"a\0b.pkg".to_vec()),
        ("tab", b"a\tb.pkg".to_vec()),
        ("SOH", b"a\x01b.pkg".to_vec()),
        ("ESC", b"a\x1b[31mred.pkg".to_vec()),
        ("DEL", b"a\x7fb.pkg".to_vec()),
        ("C1 control", "a\u{85}b.pkg".as_bytes().to_vec()),
        ("invalid UTF-8", b"a\xff\xfeb.pkg".to_vec()),
        ("256 bytes", long.as_bytes().to_vec()),
        ("256 bytes of UTF-8", long_utf8.as_bytes().to_vec()),
        ("empty", b"".to_vec()),
    ];
    for (what, name) in hostile {
        for path in ["/api/admin/upload", "/api/admin/packages"] {
            let ct = format!("multipart/form-data; boundary={BOUNDARY}");
            let body = multipart(&[text_part("stage", "Prod"), file_part(&name, data())]);
            let r = post(&s, path, &ct, body).await;
            expect_error(r, StatusCode::BAD_REQUEST, &format!("{path} {what}")).await;
            assert_nothing_written(&s, &rows, &blobs, what).await;
        }
    }
    // The same refusals when the file comes before the stage (already streaming).
    let r = post_form(
        &s,
        &[file_part(b"../y", data()), text_part("stage", "Prod")],
    )
    .await;
    expect_error(r, StatusCode::BAD_REQUEST, "../y first").await;
    assert_nothing_written(&s, &rows, &blobs, "../y first").await;

    // Filename limits are exact: 255 bytes is fine.
    let ok255 = format!("{}.pkg", "b".repeat(251));
    assert_eq!(ok255.len(), 255);
    let r = post_form(
        &s,
        &[
            file_part(ok255.as_bytes(), b"x".to_vec()),
            text_part("stage", "Test"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED, "a 255-byte filename");
    let r = s
        .admin(Method::DELETE, &format!("/api/admin/packages/{ok255}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    s.eventually(20, "the 255-byte package's blob to go", || async {
        blob_names(&s) == blobs
    })
    .await;

    // Malformed forms.
    let no_filename = Part {
        disposition: b"name=\"file\"".to_vec(),
        data: data(),
    };
    let cases: Vec<(&str, Vec<Part>, &str)> = vec![
        (
            "bad stage after the file",
            vec![file_part(b"s1.pkg", data()), text_part("stage", "Staging")],
            "invalid_stage",
        ),
        (
            "bad stage before the file",
            vec![
                text_part("stage", "Production"),
                file_part(b"s2.pkg", data()),
            ],
            "invalid_stage",
        ),
        (
            "empty stage",
            vec![file_part(b"s3.pkg", data()), text_part("stage", "")],
            "invalid_stage",
        ),
        (
            "missing stage",
            vec![file_part(b"s4.pkg", data())],
            "missing_stage",
        ),
        (
            "missing file",
            vec![text_part("stage", "Prod")],
            "missing_file",
        ),
        (
            "file field without a filename",
            vec![text_part("stage", "Prod"), no_filename],
            "missing_filename",
        ),
        (
            "two file fields",
            vec![
                text_part("stage", "Prod"),
                file_part(b"t1.pkg", data()),
                file_part(b"t2.pkg", bytes(1000, 3)),
            ],
            "too_many_files",
        ),
        (
            "bad replace flag",
            vec![
                file_part(b"s5.pkg", data()),
                text_part("stage", "Prod"),
                text_part("replace", "maybe"),
            ],
            "invalid_field",
        ),
    ];
    for (what, parts, code) in cases {
        let got = expect_error(post_form(&s, &parts).await, StatusCode::BAD_REQUEST, what).await;
        assert_eq!(got, code, "{what}");
        assert_nothing_written(&s, &rows, &blobs, what).await;
    }

    // Bodies that are not a usable multipart form at all.
    let form = multipart(&[text_part("stage", "Prod"), file_part(b"cut.pkg", data())]);
    let cut = form[..form.len() - 100].to_vec();
    let ours = format!("multipart/form-data; boundary={BOUNDARY}");
    let bodies: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "JSON",
            "application/json",
            br#"{"file": "x", "stage": "Prod"}"#.to_vec(),
        ),
        ("raw bytes", "application/octet-stream", data()),
        ("no content type", "", data()),
        (
            "multipart without boundary",
            "multipart/form-data",
            form.clone(),
        ),
        (
            "wrong boundary",
            "multipart/form-data; boundary=something-else",
            form.clone(),
        ),
        ("cut off before the closing boundary", &ours, cut),
    ];
    for (what, ct, body) in bodies {
        let mut rb = s
            .admin(Method::POST, "/api/admin/upload")
            .header("connection", "close")
            .body(body);
        if !ct.is_empty() {
            rb = rb.header("content-type", ct);
        }
        let r = rb.send().await.unwrap();
        expect_error(r, StatusCode::BAD_REQUEST, what).await;
        assert_nothing_written(&s, &rows, &blobs, what).await;
    }

    // The server still takes a proper upload, and has logged no error on the way.
    let r = post_form(
        &s,
        &[
            text_part("stage", "prod"),
            file_part(b"after.pkg", bytes(10, 4)),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(download(&s, "after.pkg").await, served(&bytes(10, 4)));
    assert!(!s.log().contains("ERROR"), "{}", s.log());
}

#[tokio::test]
async fn duplicates_replacement_shared_content_and_collection() {
    let s = Server::start().await;
    let a = bytes(MIB + 10, 10);
    let b = bytes(3 * MIB, 11);
    let (sha_a, sha_b) = (sha256_hex(&a), sha256_hex(&b));

    let r = s.upload("dup.pkg", a.clone(), "Test").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let first: Value = r.json().await.unwrap();

    // Same name again: 409, with or without an explicit replace=false.
    let r = s.upload("dup.pkg", b.clone(), "Test").await;
    assert_eq!(
        expect_error(r, StatusCode::CONFLICT, "duplicate").await,
        "filename_exists"
    );
    for no in ["false", "0"] {
        let r = post_form(
            &s,
            &[
                text_part("replace", no),
                text_part("stage", "Test"),
                file_part(b"dup.pkg", b.clone()),
            ],
        )
        .await;
        expect_error(r, StatusCode::CONFLICT, &format!("replace={no}")).await;
    }
    // replace=false after the file field: refused after streaming, still nothing kept.
    let r = post_form(
        &s,
        &[
            file_part(b"dup.pkg", b.clone()),
            text_part("stage", "Test"),
            text_part("replace", "false"),
        ],
    )
    .await;
    expect_error(r, StatusCode::CONFLICT, "replace=false last").await;
    assert_nothing_written(
        &s,
        &["dup.pkg".to_string()],
        std::slice::from_ref(&sha_a),
        "refused duplicates",
    )
    .await;
    assert_eq!(download(&s, "dup.pkg").await, served(&a));

    // replace=true: the new content is served at once, the old one is collected.
    let r = post_form(
        &s,
        &[
            file_part(b"dup.pkg", b.clone()),
            text_part("stage", "Prod"),
            text_part("replace", "true"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED, "replace=true");
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["sha256"], sha_b);
    assert_eq!(second["stage"], "Prod");
    assert_ne!(
        second["uuid"], first["uuid"],
        "new content is a new package"
    );
    assert_eq!(download(&s, "dup.pkg").await, served(&b));
    let listed = s.get_json("/api/admin/packages").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["sha256"], sha_b);
    wait_gc_done(&s, &sha_a).await;
    s.eventually(20, "the replaced content to be removed", || async {
        blob_names(&s) == vec![sha_b.clone()]
    })
    .await;

    // Replacing with identical content keeps the one blob.
    let r = post_form(
        &s,
        &[
            text_part("replace", "true"),
            text_part("stage", "Prod"),
            file_part(b"dup.pkg", b.clone()),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // replace=true for a new name simply creates it.
    let c = bytes(700_000, 12);
    let sha_c = sha256_hex(&c);
    let r = post_form(
        &s,
        &[
            text_part("replace", "true"),
            text_part("stage", "Dev"),
            file_part(b"fresh.pkg", c.clone()),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_jobs_drained(&s).await;
    let mut want = vec![sha_b.clone(), sha_c.clone()];
    want.sort();
    assert_eq!(blob_names(&s), want);
    assert_eq!(download(&s, "dup.pkg").await, served(&b));

    // Same content under two more names: one blob file for all three.
    for name in ["one.pkg", "two.pkg"] {
        let r = s.upload(name, c.clone(), "Prod").await;
        assert_eq!(r.status(), StatusCode::CREATED, "{name}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["sha256"], sha_c);
    }
    assert_eq!(blob_names(&s), want, "shared content stored once");

    // Deleting some users of the content keeps it; deleting the last removes it.
    for (i, name) in ["fresh.pkg", "one.pkg", "two.pkg"].iter().enumerate() {
        let r = s
            .admin(Method::DELETE, &format!("/api/admin/packages/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "delete {name}");
        let r = s
            .admin(Method::DELETE, &format!("/api/admin/packages/{name}"))
            .send()
            .await
            .unwrap();
        expect_error(r, StatusCode::NOT_FOUND, "delete twice").await;
        wait_gc_done(&s, &sha_c).await;
        if i < 2 {
            assert_eq!(blob_names(&s), want, "after deleting {name}");
            let other = ["fresh.pkg", "one.pkg", "two.pkg"][i + 1];
            assert_eq!(download(&s, other).await, served(&c));
        } else {
            s.eventually(20, "the shared content to be removed", || async {
                blob_names(&s) == vec![sha_b.clone()]
            })
            .await;
        }
    }
    assert_eq!(filenames(&s).await, vec!["dup.pkg".to_string()]);
    assert_jobs_drained(&s).await;
    let done = jobs(&s, "kind=blob_gc&state=done&limit=1000").await;
    assert!(done.len() >= 2, "{done:?}");

    // Deleting the last package empties the store.
    let r = s
        .admin(Method::DELETE, "/api/admin/packages/dup.pkg")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    wait_gc_done(&s, &sha_b).await;
    s.eventually(20, "an empty blob store", || async {
        blob_names(&s).is_empty()
    })
    .await;
    assert_jobs_drained(&s).await;
    assert!(!s.log().contains("ERROR"), "{}", s.log());
}

/// Content deleted and uploaded again straight away (under another name) must stay
/// stored: the collector of the old package must not remove the new package's blob.
#[tokio::test]
async fn content_uploaded_again_during_collection_stays() {
    let s = Server::start().await;
    for round in 0..15u64 {
        let data = bytes(64 * 1024 + round as usize, 500 + round % 3);
        let (old, new) = (format!("old-{round}.pkg"), format!("new-{round}.pkg"));
        assert_eq!(
            s.upload(&old, data.clone(), "Prod").await.status(),
            StatusCode::CREATED
        );
        let r = s
            .admin(Method::DELETE, &format!("/api/admin/packages/{old}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            s.upload(&new, data.clone(), "Prod").await.status(),
            StatusCode::CREATED
        );
        assert_jobs_drained(&s).await;
        assert_eq!(download(&s, &new).await, served(&data), "round {round}");
        assert!(blob_names(&s).contains(&sha256_hex(&data)), "round {round}");
        let r = s
            .admin(Method::DELETE, &format!("/api/admin/packages/{new}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    assert_jobs_drained(&s).await;
    s.eventually(20, "an empty blob store", || async {
        blob_names(&s).is_empty()
    })
    .await;
}
