//! Download bodies sent from their files (`sendfile`) against a real `ods serve`:
//! pipelined requests on one kept-alive HTTP/1.1 connection (whole small files,
//! ranges of them, HEAD, a 304, an empty file and a large streamed one, in one write)
//! come back byte for byte, and HTTP/2 without TLS as well; `/metrics` shows that the
//! small bodies went out through `sendfile`.
mod common;

use common::{Opts, Server, bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "zero-copy-metrics-token-0123456789";

fn opts() -> Opts {
    let mut opts = Opts::default();
    opts.env.push(("ODS_METRICS_TOKEN".into(), TOKEN.into()));
    opts
}

/// The value of the zero-copy byte counter (0 before its first increment).
async fn zero_copy_bytes(s: &Server) -> f64 {
    s.metrics(TOKEN)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("ods_http_zero_copy_bytes_total "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// One answer read off the wire: status, headers (lower-case names), body, and where
/// the next answer starts.
type Answer = (u16, Vec<(String, String)>, Vec<u8>, usize);

/// One response read from `buf` at `at` (`Content-Length` bytes of body, none for
/// HEAD/304), or `None` while it is incomplete.
fn parse_response(buf: &[u8], at: usize, head_only: bool) -> Option<Answer> {
    let rest = &buf[at..];
    let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&rest[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let body_len = if head_only || status == 304 { 0 } else { len };
    let start = end + 4;
    if rest.len() < start + body_len {
        return None;
    }
    let body = rest[start..start + body_len].to_vec();
    Some((status, headers, body, at + start + body_len))
}

#[tokio::test]
async fn pipelined_downloads_on_one_connection_come_back_byte_for_byte() {
    let s = Server::start_with(opts()).await;
    let small = bytes(64 * 1024, 1);
    let odd = bytes(100_003, 2);
    let big = bytes(3 * 1024 * 1024 + 17, 3);
    for (name, data) in [
        ("small.pkg", small.clone()),
        ("odd.pkg", odd.clone()),
        ("empty.pkg", Vec::new()),
        ("big.pkg", big.clone()),
    ] {
        assert_eq!(s.upload(name, data, "Prod").await.status(), 201);
    }
    let etag = s
        .http
        .head(s.at("/share/small.pkg"))
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let before = zero_copy_bytes(&s).await;

    // Every request in one write: the answers are written back to back.
    let requests: Vec<(String, bool, u16, Vec<u8>)> = vec![
        ("GET /share/small.pkg".into(), false, 200, small.clone()),
        (
            "GET /share/odd.pkg\r\nRange: bytes=1000-60999".into(),
            false,
            206,
            odd[1000..61000].to_vec(),
        ),
        ("HEAD /share/small.pkg".into(), true, 200, Vec::new()),
        (
            format!("GET /share/small.pkg\r\nIf-None-Match: {etag}"),
            false,
            304,
            Vec::new(),
        ),
        ("GET /share/empty.pkg".into(), false, 200, Vec::new()),
        ("GET /share/odd.pkg".into(), false, 200, odd.clone()),
        ("GET /share/big.pkg".into(), false, 200, big.clone()),
        (
            "GET /share/odd.pkg\r\nRange: bytes=-3".into(),
            false,
            206,
            odd[odd.len() - 3..].to_vec(),
        ),
        ("GET /share/small.pkg".into(), false, 200, small.clone()),
    ];
    let host = s.url.trim_start_matches("http://").to_string();
    let mut wire = String::new();
    for (line, _, _, _) in &requests {
        let (method_path, extra) = line.split_once("\r\n").unwrap_or((line, ""));
        wire.push_str(&format!("{method_path} HTTP/1.1\r\nHost: {host}\r\n"));
        if !extra.is_empty() {
            wire.push_str(extra);
            wire.push_str("\r\n");
        }
        wire.push_str("\r\n");
    }
    let mut conn = tokio::net::TcpStream::connect(&host).await.unwrap();
    conn.write_all(wire.as_bytes()).await.unwrap();

    let mut buf = Vec::new();
    let mut at = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    for (i, (line, head_only, status, body)) in requests.iter().enumerate() {
        let (got_status, headers, got_body, next) = loop {
            if let Some(r) = parse_response(&buf, at, *head_only) {
                break r;
            }
            let n = tokio::time::timeout(std::time::Duration::from_secs(20), conn.read(&mut chunk))
                .await
                .expect("answers within 20 s")
                .unwrap();
            assert!(n > 0, "the connection closed before answer {i} ({line})");
            buf.extend_from_slice(&chunk[..n]);
        };
        assert_eq!(got_status, *status, "answer {i} ({line}): {headers:?}");
        assert!(got_body == *body, "answer {i} ({line}): the body differs");
        at = next;
    }
    assert_eq!(at, buf.len(), "nothing follows the last answer");

    // HTTP/2 without TLS (prior knowledge) takes the same path.
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (name, data) in [("small.pkg", &small), ("odd.pkg", &odd), ("big.pkg", &big)] {
        let r = h2
            .get(s.at(&format!("/share/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap() == data[..], "{name} over HTTP/2");
    }

    // The small bodies went out from their files: at least the three whole small
    // files and the ranges of the first connection.
    let sent = zero_copy_bytes(&s).await - before;
    let least = (2 * small.len() + 2 * odd.len() + 60000 + 3) as f64;
    assert!(
        sent >= least,
        "{sent} bytes sent with sendfile, expected at least {least}"
    );
}
