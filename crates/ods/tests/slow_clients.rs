//! Slow and flooding clients against a real `ods serve`, on loopback and bounded in
//! time: a half-sent header is cut off, a stalled upload is cut off and leaves nothing,
//! connection floods are capped per address and overall while the admins keep a way
//! in, and a download read slowly still completes.
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Opts, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn env(pairs: &[(&str, &str)]) -> Opts {
    Opts {
        env: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Opts::default()
    }
}

fn addr(s: &Server) -> SocketAddr {
    s.url
        .trim_start_matches("http://")
        .parse()
        .expect("server URL is http://ADDR:PORT")
}

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    sock.connect(to).await.unwrap()
}

/// Reads until the server closes; returns what it sent, or None if still open at `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|_| got)
}

#[tokio::test]
async fn a_half_sent_header_is_cut_off() {
    let s = Server::start_with(env(&[("ODS_HEADER_TIMEOUT_SECS", "1")])).await;
    let mut c = connect_from(Ipv4Addr::LOCALHOST, addr(&s)).await;
    c.write_all(b"GET /api/admin/about HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut c, Duration::from_secs(10))
            .await
            .is_some(),
        "the server kept a half-sent header open for 10 s"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The server is fine.
    let r = s.http.get(s.at("/api/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_stalled_upload_is_cut_off_and_leaves_nothing() {
    let s = Server::start_with(env(&[("ODS_BODY_IDLE_TIMEOUT_SECS", "1")])).await;
    let mut c = connect_from(Ipv4Addr::LOCALHOST, addr(&s)).await;
    let boundary = "XyZ";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"stage\"\r\n\r\nProd\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"stall.pkg\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let total = head.len() + 10 * 1_048_576;
    let auth = base64_basic(common::ADMIN.0, common::ADMIN.1);
    let req = format!(
        "POST /api/admin/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n{head}"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    c.write_all(&vec![7u8; 2 * 1_048_576]).await.unwrap();
    // ... and then nothing more.
    let answer = closed_within(&mut c, Duration::from_secs(15))
        .await
        .expect("a stalled upload was kept open for 15 s");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 4"),
        "stalled upload answered {text:?}"
    );
    s.eventually(10, "the staging file is removed", || async {
        s.staging_files().is_empty()
    })
    .await;
    let list = s.get_json("/api/admin/packages").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// Opens `n` connections from `from` that send half a header and wait.
async fn hold(from: Ipv4Addr, to: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = connect_from(from, to).await;
        let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        out.push(c);
    }
    out
}

/// How many of `conns` the server refused (it answered 503 and closed at once).
async fn refused(conns: &mut [TcpStream]) -> usize {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut n = 0;
    for c in conns.iter_mut() {
        let mut buf = [0u8; 64];
        match c.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {} // held open
            Ok(0) | Err(_) => n += 1,
            Ok(k) => {
                let head = String::from_utf8_lossy(&buf[..k]);
                assert!(head.starts_with("HTTP/1.1 503"), "refusal said {head:?}");
                n += 1;
            }
        }
    }
    n
}

#[tokio::test]
async fn floods_are_capped_and_the_admins_keep_a_way_in() {
    ods::http::serve::raise_fd_limit();
    let s = Server::start_with(env(&[
        ("ODS_HEADER_TIMEOUT_SECS", "60"),
        ("ODS_MAX_CONNECTIONS", "1000"),
        ("ODS_MAX_CONNECTIONS_PER_ADDRESS", "100"),
        ("ODS_ADMIN_NETWORKS", "127.0.0.1/32"),
    ]))
    .await;
    let to = addr(&s);
    // One address: its 100 are held, the rest refused at once.
    let mut one = hold(Ipv4Addr::new(127, 0, 0, 2), to, 150).await;
    assert_eq!(refused(&mut one).await, 50, "per-address cap");
    // 2,000 slow connections from twenty addresses: 950 in all are held (1,000 less the
    // admins' fiftieth), every other one refused.
    let mut flood = Vec::new();
    for i in 3..23u8 {
        flood.extend(hold(Ipv4Addr::new(127, 0, 0, i), to, 95).await);
    }
    let refused_flood = refused(&mut flood).await;
    assert_eq!(refused_flood, 1900 - 850, "held: 100 + 850 of the flood");
    // A request from elsewhere outside the admin networks is refused, not left hanging.
    let mut late = hold(Ipv4Addr::new(127, 0, 0, 99), to, 1).await;
    assert_eq!(refused(&mut late).await, 1);
    // The admins still get in, fast, while all that is held.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let r = s
            .admin(reqwest::Method::GET, "/api/admin/about")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        worst = worst.max(t.elapsed());
    }
    println!("admin request latency with 2,050 slow connections held: worst {worst:?} of 20");
    assert!(worst < Duration::from_secs(2), "admin latency {worst:?}");
    drop(one);
    drop(flood);
    // Once the flood lets go, everyone is served again.
    s.eventually(
        10,
        "a client outside the admin networks is served",
        || async {
            let c = reqwest::Client::builder()
                .no_proxy()
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 99)))
                .build()
                .unwrap();
            c.get(s.at("/api/openapi.json"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
}

#[tokio::test]
async fn a_slow_download_completes() {
    let s = Server::start_with(env(&[
        ("ODS_HEADER_TIMEOUT_SECS", "1"),
        ("ODS_BODY_IDLE_TIMEOUT_SECS", "1"),
    ]))
    .await;
    let data = common::bytes(3 * 1_048_576, 9);
    let r = s.upload("slow.pkg", data.clone(), "Prod").await;
    assert_eq!(r.status(), 201);
    let mut c = connect_from(Ipv4Addr::LOCALHOST, addr(&s)).await;
    c.write_all(b"GET /share/slow.pkg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Read a little, stop reading for longer than every timeout, twice, then the rest.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for pause in [true, true, false] {
        let n = c.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
        if pause {
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
    }
    c.read_to_end(&mut got).await.unwrap();
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(got[split..] == data[..], "the slow download lost bytes");
}
