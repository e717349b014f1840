//! S3 blob storage against two independent S3-compatible servers started here,
//! moto_server and s3s-fs, with real `ods` processes: uploads (one PUT, multipart,
//! part-by-part server-side copy), ranges and conditionals, deduplication, collection,
//! aborted and crashed uploads, redirect mode followed by curl, `ods storage migrate`
//! local -> S3 -> local, a peer transfer resumed after a restart, and one 1 GiB upload
//! with the server's peak RSS measured.

mod common;

use std::process::Command;
use std::time::Duration;

use common::s3::{Kind, S3Server};
use common::{Opts, Server, bytes, sha256_hex};
use reqwest::StatusCode;

async fn start_on(s3: &S3Server, prefix: &str, extra: &[(&str, &str)]) -> Server {
    let mut env = s3.env(prefix);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Server::start_with(Opts {
        env,
        ..Opts::default()
    })
    .await
}

async fn get(s: &Server, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    // A fresh client: the tests wait long between requests, and a pooled connection
    // the server closed meanwhile would fail the next one.
    let mut r = common::client_for(&s.opts).get(s.at(path));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn blob_keys(s3: &S3Server, prefix: &str) -> Vec<(String, u64)> {
    s3.keys(&format!("{prefix}/blobs/"))
}

async fn uploads_ranges_dedup_and_collection(kind: Kind) {
    let s3 = S3Server::start(kind);
    // A 5 MiB CopyObject limit, so the 20 MiB file is copied part by part.
    let s = start_on(&s3, "site", &[("ODS_S3_MAX_COPY_BYTES", "5242880")]).await;
    assert!(s.log().is_empty() || !s.log().contains(common::s3::SECRET_KEY));
    let small = bytes(100_000, 1);
    let big = bytes(20 * 1024 * 1024 + 12_345, 2);
    for (name, data) in [("small.pkg", &small), ("big.pkg", &big)] {
        let r = s.upload(name, data.clone(), "Prod").await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let mut blobs = blob_keys(&s3, "site");
    blobs.sort();
    let mut want = vec![
        (
            format!("site/blobs/{}", sha256_hex(&small)),
            small.len() as u64,
        ),
        (format!("site/blobs/{}", sha256_hex(&big)), big.len() as u64),
    ];
    want.sort();
    assert_eq!(blobs, want);
    assert!(s3.keys("site/staging/").is_empty(), "staging left behind");
    assert!(
        s3.keys("site/uploads/").is_empty(),
        "upload records left behind"
    );
    assert_eq!(s3.open_uploads(), 0, "multipart uploads left open");
    assert!(!s.data_dir.join("blobs").exists() || s.blob_files().is_empty());

    // Whole, single range, multiple ranges, conditionals.
    let r = get(&s, "/share/big.pkg", &[]).await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&big)));
    assert!(r.bytes().await.unwrap() == big, "whole download differs");
    let r = get(
        &s,
        "/share/big.pkg",
        &[("range", "bytes=16777210-16777300")],
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &big[16_777_210..=16_777_300]);
    let r = get(&s, "/share/big.pkg", &[("range", "bytes=-100")]).await;
    assert_eq!(&r.bytes().await.unwrap()[..], &big[big.len() - 100..]);
    let r = get(&s, "/share/small.pkg", &[("range", "bytes=0-9,99990-")]).await;
    assert_eq!(r.status(), 206);
    let body = r.bytes().await.unwrap();
    assert!(body.windows(10).any(|w| w == &small[..10]));
    assert!(body.windows(10).any(|w| w == &small[99_990..]));
    let r = get(&s, "/share/big.pkg", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    let r = get(&s, "/share/big.pkg", &[("range", "bytes=999999999-")]).await;
    assert_eq!(r.status(), 416);

    // The same bytes under another name share the blob.
    let r = s.upload("big-copy.pkg", big.clone(), "Prod").await;
    assert_eq!(r.status(), 201);
    assert_eq!(blob_keys(&s3, "site").len(), 2);

    // Deleting one name keeps the blob; deleting both collects it.
    for name in ["big.pkg", "big-copy.pkg"] {
        let r = s
            .admin(
                reqwest::Method::DELETE,
                &format!("/api/admin/packages/{name}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        if name == "big.pkg" {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(blob_keys(&s3, "site").len(), 2, "collected while in use");
        }
    }
    let big_key = format!("site/blobs/{}", sha256_hex(&big));
    s.eventually(40, "the unused blob to be collected", || {
        let gone = !blob_keys(&s3, "site").iter().any(|(k, _)| *k == big_key);
        async move { gone }
    })
    .await;
    assert_eq!(
        blob_keys(&s3, "site").len(),
        1,
        "the small file's blob stays"
    );
    assert!(
        s3.keys("site/gc/").is_empty(),
        "collector intents left behind"
    );
    let r = get(&s, "/share/small.pkg", &[]).await;
    assert!(r.bytes().await.unwrap() == small);
}

#[tokio::test]
async fn moto_uploads_ranges_dedup_and_collection() {
    uploads_ranges_dedup_and_collection(Kind::Moto).await;
}

#[tokio::test]
async fn s3s_fs_uploads_ranges_dedup_and_collection() {
    uploads_ranges_dedup_and_collection(Kind::S3sFs).await;
}

/// Streams `total` bytes as an upload body, then (without finishing) returns.
async fn half_upload(s: &Server, name: &str, sent_first: usize) -> tokio::task::JoinHandle<()> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|x| (x, rx))
    }));
    let part = reqwest::multipart::Part::stream(body).file_name(name.to_string());
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("stage", "Prod");
    let req = s
        .admin(reqwest::Method::POST, "/api/admin/upload")
        .multipart(form);
    let sender = tokio::spawn(async move {
        for n in 0..sent_first / (1024 * 1024) {
            let chunk = bytes::Bytes::from(bytes(1024 * 1024, n as u64));
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
        // Hold the request open until the test is done with it.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(tx);
    });
    let send = tokio::spawn(async move {
        let _ = req.send().await;
    });
    drop(sender); // detached: it holds the body open until the test ends
    send
}

async fn aborted_and_crashed_uploads_leave_nothing(kind: Kind) {
    let s3 = S3Server::start(kind);
    let mut s = start_on(&s3, "site", &[]).await;
    // An aborted upload (the client goes away) aborts its multipart upload.
    let h = half_upload(&s, "aborted.pkg", 24 * 1024 * 1024).await;
    s.eventually(30, "a multipart upload to start", || {
        let n = s3.open_uploads();
        async move { n == 1 }
    })
    .await;
    h.abort();
    s.eventually(
        30,
        "the aborted upload's multipart upload to be aborted",
        || {
            let done = s3.open_uploads() == 0 && s3.keys("site/uploads/").is_empty();
            async move { done }
        },
    )
    .await;

    // A node killed mid-upload: its restart sweeps what it left.
    let h = half_upload(&s, "crashed.pkg", 24 * 1024 * 1024).await;
    s.eventually(30, "a multipart upload to start and be recorded", || {
        let n = (s3.open_uploads(), s3.keys("site/uploads/"));
        async move { n.0 == 1 && n.1.len() == 1 && n.1[0].1 > 0 }
    })
    .await;
    s.kill9();
    h.abort();
    assert_eq!(
        s3.open_uploads(),
        1,
        "the killed node's upload is still open\n{}",
        s.log()
    );
    assert_eq!(s3.keys("site/uploads/").len(), 1);
    // And one killed between writing its marker (empty, first) and recording the
    // upload's id in it: what a node of another name left, as the bucket keeps it.
    let dead = "elsewhere-4294967294-0badcafe.0123456789abcdef0123456789abcdef";
    s3.boto(&format!(
        "s3.put_object(Bucket={b:?}, Key='site/uploads/{dead}', Body=b'')\n\
         s3.create_multipart_upload(Bucket={b:?}, Key='site/staging/{dead}')",
        b = s3.bucket
    ));
    assert_eq!(s3.open_uploads(), 2);
    s.restart().await;
    // s3s-fs has no ListMultipartUploads: the sweep removes the empty marker and
    // cannot find the upload it stood for (the bucket's lifecycle rule must).
    let left = usize::from(kind == Kind::S3sFs);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s3.open_uploads() != left || !s3.keys("site/uploads/").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead nodes' multipart uploads are not aborted: {} open, markers {:?}\n{}",
            s3.open_uploads(),
            s3.keys("site/uploads/"),
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s3.keys("site/staging/").is_empty());
    assert!(blob_keys(&s3, "site").is_empty());
    let list = s.get_json("/api/admin/packages").await;
    assert!(!list.to_string().contains("crashed.pkg"), "{list}");
}

#[tokio::test]
async fn moto_aborted_and_crashed_uploads_leave_nothing() {
    aborted_and_crashed_uploads_leave_nothing(Kind::Moto).await;
}

#[tokio::test]
async fn s3s_fs_aborted_and_crashed_uploads_leave_nothing() {
    aborted_and_crashed_uploads_leave_nothing(Kind::S3sFs).await;
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-D", "-", "-o", "/dev/stderr"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success() || !out.stdout.is_empty(),
        "curl failed"
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.stderr,
    )
}

async fn redirect_mode(kind: Kind) {
    let s3 = S3Server::start(kind);
    let s = start_on(&s3, "r", &[("ODS_DOWNLOAD_REDIRECT", "true")]).await;
    let data = bytes(3 * 1024 * 1024 + 7, 9);
    let r = s.upload("app.pkg", data.clone(), "Prod").await;
    assert_eq!(r.status(), 201);
    let tag = format!("\"{}\"", sha256_hex(&data));

    // The redirect itself: 307 to a presigned URL of the bucket, with our ETag.
    let no_follow = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow.get(s.at("/share/app.pkg")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.headers()["etag"], tag.as_str());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&s3.endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");

    // curl follows it: whole file, a range, and the conditionals ODS answers itself.
    let url = s.at("/share/app.pkg");
    let (head, body) = curl(&["-L", &url]);
    assert!(head.contains("307"), "{head}");
    assert!(body == data, "the redirected download differs");
    let (head, body) = curl(&["-L", "-r", "1000-1999", &url]);
    assert!(head.contains(" 206"), "{head}");
    assert_eq!(&body[..], &data[1000..2000]);
    let (head, body) = curl(&["-L", "-H", &format!("If-None-Match: {tag}"), &url]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    assert!(body.is_empty());
    let (head, _) = curl(&["-L", "-H", "If-Match: \"other\"", &url]);
    assert!(head.starts_with("HTTP/1.1 412"), "{head}");
    let (head, _) = curl(&[
        "-L",
        "-H",
        "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT",
        &url,
    ]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    // A stale If-Range: the whole file, from ODS itself.
    let (head, body) = curl(&["-L", "-r", "0-9", "-H", "If-Range: \"stale\"", &url]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == data);
    // HEAD is answered here, with the headers of a download.
    let r = s.http.head(s.at("/share/app.pkg")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        data.len().to_string().as_str()
    );
}

#[tokio::test]
async fn moto_redirect_mode_followed_by_curl() {
    redirect_mode(Kind::Moto).await;
}

#[tokio::test]
async fn s3s_fs_redirect_mode_followed_by_curl() {
    redirect_mode(Kind::S3sFs).await;
}

fn migrate(s: &Server, storage: &str, s3: &S3Server, to: &str) -> String {
    let mut c = s.command(&["storage", "migrate", "--to", to]);
    for (k, v) in s3.env("") {
        c.env(k, v);
    }
    c.env("ODS_STORAGE", storage);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "migrate --to {to}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

async fn migrate_local_to_s3_and_back(kind: Kind) {
    let s3 = S3Server::start(kind);
    let mut s = Server::start().await;
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| bytes(700_000 + i * 3_000_000, 20 + i as u64))
        .collect();
    for (i, d) in files.iter().enumerate() {
        assert_eq!(
            s.upload(&format!("f{i}.pkg"), d.clone(), "Prod")
                .await
                .status(),
            201
        );
    }
    let url = format!("s3://{}/m", s3.bucket);
    // While the server runs; then again, which copies nothing.
    let out = migrate(&s, "local", &s3, &url);
    assert!(out.contains("migrated: 3 copied"), "{out}");
    let out = migrate(&s, "local", &s3, &url);
    assert!(
        out.contains("migrated: 0 copied") && out.contains("3 already there"),
        "{out}"
    );
    assert_eq!(blob_keys(&s3, "m").len(), 3);

    // The server on S3 serves every file, and takes a new one.
    s.stop();
    s.opts.env = s3.env("m");
    s.restart().await;
    for (i, d) in files.iter().enumerate() {
        let r = get(&s, &format!("/share/f{i}.pkg"), &[]).await;
        assert!(r.bytes().await.unwrap() == *d, "f{i} from S3");
    }
    let extra = bytes(6_000_000, 99);
    assert_eq!(
        s.upload("new.pkg", extra.clone(), "Prod").await.status(),
        201
    );

    // Back to local disk, into an emptied blob directory.
    s.stop();
    std::fs::remove_dir_all(s.data_dir.join("blobs")).unwrap();
    let out = migrate(&s, &url, &s3, "local");
    assert!(out.contains("migrated: 4 copied"), "{out}");
    s.opts.env.clear();
    s.restart().await;
    assert_eq!(s.blob_files().len(), 4);
    for (i, d) in files.iter().enumerate() {
        let r = get(&s, &format!("/share/f{i}.pkg"), &[]).await;
        assert!(r.bytes().await.unwrap() == *d, "f{i} back on disk");
    }
    let r = get(&s, "/share/new.pkg", &[]).await;
    assert!(r.bytes().await.unwrap() == extra);
}

#[tokio::test]
async fn moto_migrate_local_to_s3_and_back() {
    migrate_local_to_s3_and_back(Kind::Moto).await;
}

#[tokio::test]
async fn s3s_fs_migrate_local_to_s3_and_back() {
    migrate_local_to_s3_and_back(Kind::S3sFs).await;
}

#[tokio::test]
async fn bad_storage_settings_are_refused_at_start() {
    let s3 = S3Server::start(Kind::Moto);
    let check = |env: &[(&str, &str)]| {
        let mut c = Command::new(common::ods_bin());
        c.arg("check-config")
            .arg("--data-dir")
            .arg(std::env::temp_dir());
        for (k, v) in s3.env("p") {
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = check(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        !out.contains(common::s3::SECRET_KEY),
        "a secret printed: {out}"
    );
    let (code, out) = check(&[("AWS_ENDPOINT_URL", "http://192.0.2.1:9000")]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("plain http") && out.contains("loopback"),
        "{out}"
    );
    let (code, out) = check(&[("ODS_STORAGE", "s3://no-such-bucket-here/x")]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("cannot be used") || out.contains("did not answer"),
        "{out}"
    );
    let (code, out) = check(&[("ODS_STORAGE", "ftp://x")]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("neither `local`"), "{out}");
    let (code, out) = check(&[("ODS_STORAGE", "local"), ("ODS_DOWNLOAD_REDIRECT", "true")]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("needs S3 storage"), "{out}");
    assert!(!out.contains(common::s3::SECRET_KEY));
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// One 1 GiB upload, streamed from disk, on s3s-fs (moto would hold it in its own
/// memory twice). Only in the SQLite round: the database plays no part in how the
/// bytes flow, and the case takes a while.
#[tokio::test]
async fn one_gib_upload_has_bounded_memory() {
    if common::engine() != common::Engine::Sqlite {
        return;
    }
    let s3 = S3Server::start(Kind::S3sFs);
    let s = start_on(&s3, "big", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.pkg");
    let out = Command::new("head")
        .args(["-c", "1073741824", "/dev/urandom"])
        .output()
        .unwrap();
    std::fs::write(&file, &out.stdout).unwrap();
    let sha = sha256_hex(&out.stdout);
    drop(out);
    let before = peak_rss(s.pid());
    let (head, _) = curl(&[
        "-u",
        &format!("{}:{}", common::ADMIN.0, common::ADMIN.1),
        "-F",
        &format!("file=@{}", file.display()),
        "-F",
        "stage=Prod",
        &s.at("/api/admin/upload"),
    ]);
    assert!(head.contains(" 201"), "{head}");
    let peak = peak_rss(s.pid());
    println!(
        "ods peak RSS: {} MiB before, {} MiB after a 1 GiB upload",
        before >> 20,
        peak >> 20
    );
    assert!(peak < 160 << 20, "peak RSS {} MiB", peak >> 20);
    assert_eq!(
        blob_keys(&s3, "big"),
        vec![(format!("big/blobs/{sha}"), 1 << 30)]
    );
    let (head, body) = curl(&["-r", "1073741000-", &s.at("/share/big.pkg")]);
    assert!(head.contains(" 206"), "{head}");
    let data = std::fs::read(&file).unwrap();
    assert_eq!(&body[..], &data[1_073_741_000..]);
}

async fn about_node(s: &Server, name: &str) {
    let r = s
        .admin(reqwest::Method::POST, "/api/admin/about")
        .json(&serde_json::json!({"name": name, "url": s.url, "stage": "Prod", "firewalled_mode": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// A peer transfer into S3 writes its chunks to the bucket, survives a kill -9 of the
/// receiver (resuming, not starting over) and leaves no chunk objects behind.
async fn transfer_into_s3_resumes(kind: Kind) {
    let s3 = S3Server::start(kind);
    let fast = [
        ("ODS_SYNC_INTERVAL", "2"),
        ("ODS_UNREACHABLE_AFTER_SECS", "1"),
    ];
    let a = start_on(&s3, "a", &fast).await;
    let mut b = start_on(&s3, "b", &fast).await;
    about_node(&a, "A").await;
    about_node(&b, "B").await;
    let size = 24 * 1024 * 1024;
    let data = bytes(size, 5);
    common::register(&b, &a).await;
    let peers = b.get_json("/api/admin/registered_ods").await;
    let peer_id = peers["items"][0]["id"].as_i64().unwrap();
    let r = b
        .admin(
            reqwest::Method::PATCH,
            &format!("/api/admin/registered_ods/{peer_id}"),
        )
        .json(&serde_json::json!({"rate_limit": 4 * 1024 * 1024}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Uploaded once the link is slowed (not before: the sync could finish unslowed).
    assert_eq!(
        a.upload("big.pkg", data.clone(), "Prod").await.status(),
        201
    );
    b.eventually(60, "chunks of the transfer in the bucket", || {
        let n = s3.keys("b/partial/").len();
        async move { n >= 8 }
    })
    .await;
    let p = common::mesh::package(&b, "big.pkg").await.unwrap();
    assert_eq!(p["status"], "Downloading");
    b.kill9();
    let before = s3.keys("b/partial/").len();
    b.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if common::mesh::package(&b, "big.pkg")
            .await
            .is_some_and(|p| p["status"] == "Public")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not Public\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let served = a.get_json("/api/admin/sync").await["chunk_bytes_served"]
        .as_u64()
        .unwrap();
    assert!(
        served < size as u64 + 24 * 1024 * 1024,
        "served {served} for {size}: the transfer started over ({before} chunks were stored)"
    );
    assert!(
        s3.keys("b/partial/").is_empty(),
        "chunk objects left behind"
    );
    assert_eq!(
        blob_keys(&s3, "b"),
        vec![(format!("b/blobs/{}", sha256_hex(&data)), size as u64)]
    );
    let r = get(&b, "/share/big.pkg", &[]).await;
    assert!(r.bytes().await.unwrap() == data);
}

#[tokio::test]
async fn moto_transfer_into_s3_resumes() {
    transfer_into_s3_resumes(Kind::Moto).await;
}

#[tokio::test]
async fn s3s_fs_transfer_into_s3_resumes() {
    transfer_into_s3_resumes(Kind::S3sFs).await;
}
