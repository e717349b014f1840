//! Uploads and downloads against a real `ods serve`: round trips at the 1 MiB chunk
//! boundaries with independently computed hashes, the download headers, single and
//! multiple ranges, conditional requests, Unicode and percent-encoded filenames,
//! traversal attempts, what is not downloadable, the share context and download auth.
mod common;

use std::time::{Duration, SystemTime};

use base64::Engine;
use common::{Opts, Server, bytes, sha1_hex, sha256_hex};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

/// Percent-encodes every byte that is not unreserved (RFC 3986).
fn enc(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn get(s: &Server, path: &str, hdrs: &[(&str, &str)]) -> reqwest::Response {
    let mut rb = s.http.get(s.at(path));
    for (k, v) in hdrs {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

fn hdr(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} has no {name} header: {:?}", r.url(), r.headers()))
        .to_str()
        .unwrap()
        .to_string()
}

/// Asserts a `{"error": {"code", "message"}}` body with `status`.
async fn expect_json_error(r: reqwest::Response, status: StatusCode, what: &str) -> Value {
    assert_eq!(r.status(), status, "{what}");
    let ct = hdr(&r, "content-type");
    assert!(ct.starts_with("application/json"), "{what}: {ct}");
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["code"].is_string(), "{what}: {v}");
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
    v
}

/// A response read off a raw socket: exactly what the server sent.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method target` verbatim (no URL normalisation) and reads to the close.
async fn raw(s: &Server, method: &str, target: &str, extra: &[(&str, &str)]) -> Raw {
    let addr = s.url.strip_prefix("http://").unwrap();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut raw = Raw {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    };
    if raw
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        raw.body = dechunk(&raw.body);
    }
    raw
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

/// Splits a `multipart/byteranges` body into (Content-Range, bytes) per part.
fn byteranges(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {content_type}"));
    let delim = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], from: usize| {
        hay[from..]
            .windows(delim.len())
            .position(|w| w == delim.as_slice())
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, 0).expect("a first boundary");
    assert!(
        body[..at].iter().all(|b| *b == b'\r' || *b == b'\n'),
        "only a line break may precede the first boundary"
    );
    loop {
        let after = at + delim.len();
        if body[after..].starts_with(b"--") {
            assert!(
                body[after + 2..].iter().all(|b| *b == b'\r' || *b == b'\n'),
                "nothing but a line break after the closing boundary"
            );
            return parts;
        }
        assert!(body[after..].starts_with(b"\r\n"));
        let head_end = after
            + body[after..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap();
        let head = std::str::from_utf8(&body[after + 2..head_end]).unwrap();
        let mut content_range = None;
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':').unwrap();
            if k.eq_ignore_ascii_case("content-range") {
                content_range = Some(v.trim().to_string());
            }
        }
        let next = find(body, head_end + 4).expect("a closing boundary");
        // The CRLF before a boundary belongs to the delimiter, not to the part.
        assert_eq!(&body[next - 2..next], b"\r\n");
        parts.push((
            content_range.expect("each part has a Content-Range"),
            body[head_end + 4..next - 2].to_vec(),
        ));
        at = next;
    }
}

fn repr_digest(data: &[u8]) -> String {
    use sha2::Digest;
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(data))
    )
}

fn chunk_sha1s(data: &[u8]) -> Vec<String> {
    data.chunks(MIB).map(sha1_hex).collect()
}

/// Uploads and checks the 201 answer against hashes computed here.
async fn upload_ok(s: &Server, name: &str, data: &[u8]) -> Value {
    let r = s.upload(name, data.to_vec(), "Prod").await;
    assert_eq!(r.status(), StatusCode::CREATED, "upload {name:?}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["filename"], name);
    assert_eq!(v["sha1"], sha1_hex(data), "{name}");
    assert_eq!(v["sha256"], sha256_hex(data), "{name}");
    assert_eq!(v["file_size"], data.len() as u64, "{name}");
    assert_eq!(v["status"], "Public");
    assert_eq!(v["stage"], "Prod");
    v
}

/// The headers every full or partial download carries.
fn check_common_headers(r: &reqwest::Response, data: &[u8], what: &str) {
    assert_eq!(
        hdr(r, "etag"),
        format!("\"{}\"", sha256_hex(data)),
        "{what}"
    );
    assert_eq!(hdr(r, "repr-digest"), repr_digest(data), "{what}");
    assert_eq!(hdr(r, "accept-ranges"), "bytes", "{what}");
    let lm = httpdate::parse_http_date(&hdr(r, "last-modified")).unwrap();
    let age = SystemTime::now()
        .duration_since(lm)
        .unwrap_or(Duration::ZERO);
    assert!(
        age < Duration::from_secs(600),
        "{what}: Last-Modified {lm:?}"
    );
    assert!(r.headers().get("content-encoding").is_none(), "{what}");
}

#[tokio::test]
async fn round_trips_ranges_and_conditional_requests() {
    let s = Server::start().await;
    let sizes = [0, 1, MIB - 1, MIB, MIB + 1, 5 * MIB + MIB / 2];
    for (i, &size) in sizes.iter().enumerate() {
        let data = bytes(size, 100 + i as u64);
        let name = format!("round-trip-{size}.pkg");
        upload_ok(&s, &name, &data).await;

        // The package record carries one SHA-1 per 1 MiB chunk, the last one short.
        let detail = s.get_json(&format!("/api/admin/packages/{name}")).await;
        let chunks: Vec<String> = detail["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                assert_eq!(c["index"], i);
                c["sha1"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(chunks, chunk_sha1s(&data), "{name}");
        assert_eq!(detail["file_size"], size);

        for path in [
            format!("/share/{name}"),
            format!("/CasperShare/Packages/{name}"),
        ] {
            let r = get(&s, &path, &[("accept-encoding", "gzip, deflate, br")]).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            check_common_headers(&r, &data, &path);
            assert_eq!(hdr(&r, "content-length"), size.to_string(), "{path}");
            let body = r.bytes().await.unwrap();
            assert!(body[..] == data[..], "{path}: the bytes differ");

            // HEAD: the same headers, and on the wire no body at all.
            let h = raw(&s, "HEAD", &path, &[("Accept-Encoding", "gzip")]).await;
            assert_eq!(h.status, 200, "HEAD {path}");
            assert!(h.body.is_empty(), "HEAD {path} sent {} bytes", h.body.len());
            assert_eq!(h.header("content-length"), Some(size.to_string().as_str()));
            assert_eq!(
                h.header("etag"),
                Some(format!("\"{}\"", sha256_hex(&data)).as_str())
            );
            assert_eq!(h.header("repr-digest"), Some(repr_digest(&data).as_str()));
            assert_eq!(h.header("accept-ranges"), Some("bytes"));
            assert!(h.header("last-modified").is_some());
            assert!(h.header("content-encoding").is_none());
        }
    }

    // An empty file: every Range gets the whole (empty) file as a 200, so a slice cache
    // asking for its first slice stores the package instead of an error body.
    for spec in ["bytes=-5", "bytes=0-0", "bytes=0-1048575", "bytes=0-"] {
        let r = get(&s, "/share/round-trip-0.pkg", &[("range", spec)]).await;
        assert_eq!(r.status(), StatusCode::OK, "{spec} of an empty file");
        assert_eq!(hdr(&r, "content-length"), "0", "{spec}");
        assert!(r.headers().get("content-range").is_none(), "{spec}");
        assert!(r.bytes().await.unwrap().is_empty(), "{spec}");
    }

    // Ranges on the 5.5 MiB file.
    let size = *sizes.last().unwrap();
    let data = bytes(size, 100 + sizes.len() as u64 - 1);
    let path = format!("/share/round-trip-{size}.pkg");
    let len = size as u64;
    let etag = format!("\"{}\"", sha256_hex(&data));
    for (spec, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, len - 1),
        ("bytes=-50", len - 50, len - 1),
        ("bytes=1048570-1048585", 1_048_570, 1_048_585),
        (
            &format!("bytes={}-{}", len - 10, len + 1000),
            len - 10,
            len - 1,
        ),
        ("bytes=0-0", 0, 0),
    ] {
        for p in [
            path.clone(),
            path.replace("/share/", "/CasperShare/Packages/"),
        ] {
            let r = get(&s, &p, &[("range", spec)]).await;
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{p} {spec}");
            check_common_headers(&r, &data, spec);
            assert_eq!(
                hdr(&r, "content-range"),
                format!("bytes {start}-{end}/{len}")
            );
            assert_eq!(hdr(&r, "content-length"), (end - start + 1).to_string());
            let body = r.bytes().await.unwrap();
            assert!(
                body[..] == data[start as usize..=end as usize],
                "{p} {spec}: wrong bytes"
            );
        }
    }

    // Several ranges: multipart/byteranges with one Content-Range per part.
    let spec = "bytes=0-9,1048570-1048585,200-299,-50";
    let r = get(&s, &path, &[("range", spec)]).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{spec}");
    check_common_headers(&r, &data, spec);
    assert!(r.headers().get("content-range").is_none());
    let ct = hdr(&r, "content-type");
    let declared: usize = hdr(&r, "content-length").parse().unwrap();
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), declared);
    let parts = byteranges(&ct, &body);
    let want = [
        (0, 9),
        (1_048_570, 1_048_585),
        (200, 299),
        (len - 50, len - 1),
    ];
    assert_eq!(parts.len(), want.len(), "{spec}");
    for ((cr, got), (start, end)) in parts.iter().zip(want) {
        assert_eq!(cr, &format!("bytes {start}-{end}/{len}"));
        assert!(got[..] == data[start as usize..=end as usize], "{cr}");
    }
    // The same through HEAD: headers only.
    let h = raw(&s, "HEAD", &path, &[("Range", spec)]).await;
    assert_eq!(h.status, 206);
    assert!(h.body.is_empty());

    // Overlapping and adjacent ranges are coalesced: never more than the file.
    let r = get(&s, &path, &[("range", "bytes=0-,0-")]).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "bytes=0-,0- is the whole file once"
    );
    assert_eq!(r.bytes().await.unwrap().len(), size);
    let r = get(&s, &path, &[("range", "bytes=0-9,5-19,20-29")]).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(hdr(&r, "content-range"), format!("bytes 0-29/{len}"));
    assert!(r.bytes().await.unwrap()[..] == data[..30]);
    // Hundreds of tiny ranges would cost ~100 bytes of framing each: the whole file.
    let many: Vec<String> = (0..500).map(|i| format!("{0}-{0}", i * 2)).collect();
    let r = get(
        &s,
        &path,
        &[("range", &format!("bytes={}", many.join(",")))],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "500 ranges");
    assert_eq!(r.bytes().await.unwrap().len(), size);

    // Unsatisfiable: 416 with the current length.
    for spec in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 10),
    ] {
        let r = get(&s, &path, &[("range", &spec)]).await;
        assert_eq!(hdr(&r, "content-range"), format!("bytes */{len}"), "{spec}");
        expect_json_error(r, StatusCode::RANGE_NOT_SATISFIABLE, &spec).await;
    }
    // A Range header in a unit we do not know is ignored: the whole file.
    let r = get(&s, &path, &[("range", "items=0-9")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len(), size);

    // If-Range: the range only while the client's copy is current.
    let r = get(&s, &path, &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "matching If-Range");
    assert!(r.bytes().await.unwrap()[..] == data[..10]);
    let stale = format!("\"{}\"", sha256_hex(b"an older version"));
    for if_range in [stale.as_str(), &format!("W/{etag}")] {
        let r = get(&s, &path, &[("range", "bytes=0-9"), ("if-range", if_range)]).await;
        assert_eq!(r.status(), StatusCode::OK, "If-Range {if_range}");
        assert!(r.headers().get("content-range").is_none());
        assert!(r.bytes().await.unwrap()[..] == data[..], "full body");
    }

    // If-None-Match / If-Modified-Since: 304 without a body, with the validators.
    let last_modified = hdr(&get(&s, &path, &[]).await, "last-modified");
    for (k, v) in [
        ("if-none-match", etag.as_str()),
        ("if-none-match", &format!("{stale}, {etag}")),
        ("if-none-match", "*"),
        ("if-modified-since", &last_modified),
    ] {
        let r = get(&s, &path, &[(k, v)]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{k}: {v}");
        assert_eq!(hdr(&r, "etag"), etag);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let long_ago = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(86_400));
    for (k, v) in [
        ("if-none-match", stale.as_str()),
        ("if-modified-since", &long_ago),
    ] {
        let r = get(&s, &path, &[(k, v)]).await;
        assert_eq!(r.status(), StatusCode::OK, "{k}: {v}");
        assert_eq!(r.bytes().await.unwrap().len(), size);
    }
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let r = get(
        &s,
        &path,
        &[
            ("if-none-match", &stale),
            ("if-modified-since", &last_modified),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    // If-Match / If-Unmodified-Since: 412 on a mismatch, the file otherwise.
    for (k, v) in [
        ("if-match", stale.as_str()),
        ("if-match", &format!("W/{etag}")),
        ("if-unmodified-since", &long_ago),
    ] {
        let r = get(&s, &path, &[(k, v)]).await;
        assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED, "{k}: {v}");
        assert!(r.bytes().await.unwrap().is_empty());
    }
    for (k, v) in [("if-match", etag.as_str()), ("if-match", "*")] {
        let r = get(&s, &path, &[(k, v), ("range", "bytes=-3")]).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{k}: {v}");
        assert!(r.bytes().await.unwrap()[..] == data[size - 3..]);
    }

    // Downloads are never compressed, whatever the client accepts.
    let r = get(&s, &path, &[("accept-encoding", "gzip")]).await;
    assert!(r.headers().get("content-encoding").is_none());
    assert!(r.bytes().await.unwrap()[..] == data[..]);
}

#[tokio::test]
async fn filenames_traversal_and_what_is_not_downloadable() {
    let s = Server::start().await;
    let names = [
        "Größe 2.0 (x86).pkg",
        "日本語 インストーラ.dmg",
        "100% pure+simple.pkg",
        "it's [beta] #1; a=b & c.zip",
        "a%2Fb.pkg", // a literal percent sign, not a slash
        ".hidden.pkg",
        "x",
    ];
    for (i, name) in names.iter().enumerate() {
        let data = bytes(1000 + i, 900 + i as u64);
        upload_ok(&s, name, &data).await;
        let listed = s.get_json("/api/admin/packages").await;
        assert!(
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["filename"] == *name),
            "{name:?} listed"
        );
        for path in [
            format!("/share/{}", enc(name)),
            format!("/CasperShare/Packages/{}", enc(name)),
        ] {
            let r = get(&s, &path, &[]).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert!(r.bytes().await.unwrap()[..] == data[..], "{path}");
        }
        // Only what needs escaping escaped, as browsers and curl send it.
        let light = name
            .replace('%', "%25")
            .replace('#', "%23")
            .replace(' ', "%20");
        let r = get(&s, &format!("/share/{light}"), &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{light}");
        assert!(r.bytes().await.unwrap()[..] == data[..]);
    }
    // "a%2Fb.pkg" is a name with a percent sign; the encoded slash is not it.
    let r = raw(&s, "GET", "/share/a%2Fb.pkg", &[]).await;
    assert_eq!(r.status, 400, "an encoded slash");

    // Traversal and hostile names in download paths: 400 with a JSON error.
    for prefix in ["/share/", "/CasperShare/Packages/"] {
        for bad in [
            "..%2Fetc%2Fpasswd",
            "..%2F..%2F..%2Fetc%2Fpasswd",
            "%2e%2e",
            "%2E%2E%2Fods.sqlite3",
            "..%5Cods.sqlite3",
            "a%5Cb.pkg",
            "x.pkg%00.txt",
            "%00",
            "x%0Ay.pkg",
            "x%1By.pkg",
            "..",
            "..%2F",
            "%2F",
            "sub%2Fx",
            "%FF%FE.pkg",
        ] {
            let target = format!("{prefix}{bad}");
            let r = raw(&s, "GET", &target, &[]).await;
            assert_eq!(r.status, 400, "{target}");
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "{target}: {:?}",
                r.headers
            );
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert!(v["error"]["code"].is_string(), "{target}: {v}");
        }
        // Literal dot segments never reach a file.
        for bad in ["../etc/passwd", "../../ods.sqlite3", "./x"] {
            let target = format!("{prefix}{bad}");
            let r = raw(&s, "GET", &target, &[]).await;
            assert!(r.status == 400 || r.status == 404, "{target}: {}", r.status);
            assert!(serde_json::from_slice::<Value>(&r.body).is_ok(), "{target}");
        }
    }

    // Unknown: 404 JSON, on GET and HEAD.
    for path in ["/share/nope.pkg", "/CasperShare/Packages/nope.pkg"] {
        expect_json_error(get(&s, path, &[]).await, StatusCode::NOT_FOUND, path).await;
        assert_eq!(raw(&s, "HEAD", path, &[]).await.status, 404);
    }
    // Case matters: filenames are exact.
    let r = get(&s, "/share/X", &[]).await;
    expect_json_error(r, StatusCode::NOT_FOUND, "/share/X").await;

    // A package that is not Public (a transfer in progress, or failed) is not served.
    let data = bytes(5000, 77);
    upload_ok(&s, "incoming.pkg", &data).await;
    for status in ["Downloading", "Failed"] {
        let n = s
            .sql(&format!(
                "UPDATE packages SET status = '{status}' WHERE filename = 'incoming.pkg'"
            ))
            .await;
        assert_eq!(n, 1);
        for path in ["/share/incoming.pkg", "/CasperShare/Packages/incoming.pkg"] {
            let r = get(&s, path, &[]).await;
            expect_json_error(r, StatusCode::NOT_FOUND, &format!("{status} {path}")).await;
            let r = get(&s, path, &[("range", "bytes=0-9")]).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
        }
    }
    s.sql("UPDATE packages SET status = 'Public' WHERE filename = 'incoming.pkg'")
        .await;
    // A change made behind this process's back (as by another process sharing the
    // database) is seen within the download path's one-second cache.
    s.eventually(5, "the package to be served again", || async {
        get(&s, "/share/incoming.pkg", &[]).await.status() == StatusCode::OK
    })
    .await;
    let r = get(&s, "/share/incoming.pkg", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap()[..] == data[..]);

    // Deleted: gone from both paths.
    let r = s
        .admin(Method::DELETE, "/api/admin/packages/incoming.pkg")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for path in ["/share/incoming.pkg", "/CasperShare/Packages/incoming.pkg"] {
        expect_json_error(get(&s, path, &[]).await, StatusCode::NOT_FOUND, path).await;
    }
}

#[tokio::test]
async fn share_context_and_download_auth() {
    let s = Server::start_with(Opts {
        env: vec![("ODS_SHARE_CONTEXT".into(), "Other".into())],
        ..Opts::default()
    })
    .await;
    let data = bytes(3 * MIB + 7, 5);
    upload_ok(&s, "Context Test.pkg", &data).await;
    let paths = [
        "/share/Context%20Test.pkg",
        "/Other/Packages/Context%20Test.pkg",
    ];
    for path in paths {
        let r = get(&s, path, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        check_common_headers(&r, &data, path);
        assert!(r.bytes().await.unwrap()[..] == data[..]);
        let r = get(&s, path, &[("range", "bytes=-1")]).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.bytes().await.unwrap()[..], data[data.len() - 1..]);
    }
    let r = get(&s, "/CasperShare/Packages/Context%20Test.pkg", &[]).await;
    expect_json_error(
        r,
        StatusCode::NOT_FOUND,
        "the default context is not served",
    )
    .await;

    // A viewer account, the read account Jamf Pro stores for a distribution point.
    s.add_user("jamf-read", "read-only-secret", "viewer").await;

    let set_auth = |mode: &'static str| {
        let s = &s;
        async move {
            let r = s
                .admin(Method::POST, "/api/admin/about")
                .json(&json!({ "download_auth": mode }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "download_auth {mode}");
            assert_eq!(s.get_json("/api/admin/about").await["download_auth"], mode);
        }
    };
    set_auth("basic").await;
    for path in paths {
        for hdrs in [vec![], vec![("range", "bytes=0-9")]] {
            let r = get(&s, path, &hdrs).await;
            assert!(
                hdr(&r, "www-authenticate").starts_with("Basic"),
                "{path}: {:?}",
                r.headers()
            );
            expect_json_error(r, StatusCode::UNAUTHORIZED, path).await;
        }
        let h = raw(&s, "HEAD", path, &[]).await;
        assert_eq!(h.status, 401, "HEAD {path}");
        assert!(h.body.is_empty());

        let r = s
            .http
            .get(s.at(path))
            .basic_auth("jamf-read", Some("wrong password"))
            .send()
            .await
            .unwrap();
        expect_json_error(r, StatusCode::UNAUTHORIZED, "wrong password").await;

        let r = s
            .http
            .get(s.at(path))
            .basic_auth("jamf-read", Some("read-only-secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path} as the viewer");
        assert!(r.bytes().await.unwrap()[..] == data[..]);
        let r = s
            .http
            .get(s.at(path))
            .basic_auth("jamf-read", Some("read-only-secret"))
            .header("range", "bytes=10-19")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert!(r.bytes().await.unwrap()[..] == data[10..20]);
    }
    // Unknown packages do not answer before authentication.
    let r = get(&s, "/share/unknown.pkg", &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    set_auth("none").await;
    for path in paths {
        let r = get(&s, path, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{path} open again");
        assert!(r.bytes().await.unwrap()[..] == data[..]);
    }
}
