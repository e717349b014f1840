//! Helpers shared by the admin API tests (`admin_api.rs`, `admin_auth.rs`,
//! `admin_cli.rs`): credentials, JSON error checks, the seed's human-readable
//! formats written independently of the server, and a dump of a server's database.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::common::{Engine, Server, engine};

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Cred {
    None,
    Basic(String, String),
    Bearer(String),
}

impl Cred {
    pub fn basic(user: &str, pass: &str) -> Cred {
        Cred::Basic(user.to_string(), pass.to_string())
    }
    pub fn admin() -> Cred {
        Cred::basic(crate::common::ADMIN.0, crate::common::ADMIN.1)
    }
    pub fn apply(&self, rb: RequestBuilder) -> RequestBuilder {
        match self {
            Cred::None => rb,
            Cred::Basic(u, p) => rb.basic_auth(u, Some(p)),
            Cred::Bearer(t) => rb.bearer_auth(t),
        }
    }
}

/// A request to `path` on `s` with `cred`.
pub fn req(s: &Server, cred: &Cred, method: Method, path: &str) -> RequestBuilder {
    cred.apply(s.http.request(method, s.at(path)))
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address reaches the
/// server on 127.0.0.1), so the server sees another client address.
pub fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap()
}

pub fn content_type(r: &Response) -> String {
    r.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Asserts `status` and a JSON body; returns the body.
pub async fn expect_json(r: Response, status: u16) -> Value {
    let what = format!("{} {}", r.url().path(), r.status());
    let ct = content_type(&r);
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(st, status, "{what}: {text}");
    assert!(
        ct.starts_with("application/json"),
        "{what}: content-type {ct:?}: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

/// Asserts the JSON error shape `{"error": {"code": code, "message": "..."}}` and
/// nothing else in the body; returns the body.
pub async fn expect_error(r: Response, status: u16, code: &str) -> Value {
    let v = expect_json(r, status).await;
    assert_error_shape(&v, code);
    v
}

pub fn assert_error_shape(v: &Value, code: &str) {
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    let e = v["error"].as_object().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(e.len(), 2, "error has exactly code and message: {v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty()),
        "{v}"
    );
}

/// 401 with a Basic challenge and the JSON error.
pub async fn expect_unauthorized(r: Response) -> Value {
    let challenge = r
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let url = r.url().to_string();
    assert!(
        challenge.starts_with("Basic "),
        "{url}: WWW-Authenticate {challenge:?} ({})",
        r.status()
    );
    expect_error(r, 401, "unauthorized").await
}

pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The seed's sizes (`3.3 MB`): written here from the seed's examples, not the server.
pub fn seed_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut scaled = bytes as f64;
    let mut unit = 0;
    while scaled >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{scaled:.1} {}", UNITS[unit])
}

/// The seed's uptime (Python `timedelta`): `8:33:26`, `1 day, 0:00:05`.
pub fn seed_duration(secs: u64) -> String {
    let (d, r) = (secs / 86_400, secs % 86_400);
    let hms = format!("{}:{:02}:{:02}", r / 3600, r % 3600 / 60, r % 60);
    match d {
        0 => hms,
        1 => format!("1 day, {hms}"),
        n => format!("{n} days, {hms}"),
    }
}

/// Parses the seed's `2017-11-11T03:15:54` (UTC, no fraction, no offset) to Unix seconds.
pub fn parse_iso(s: &str) -> i64 {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    assert_eq!(s.len(), 19, "{s:?} is not YYYY-MM-DDTHH:MM:SS");
    time::PrimitiveDateTime::parse(s, fmt)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .assume_utc()
        .unix_timestamp()
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Uploads `data` as `filename` to `path` (`/api/admin/upload` or `/api/admin/packages`).
pub async fn upload_to(
    s: &Server,
    cred: &Cred,
    path: &str,
    filename: &str,
    data: Vec<u8>,
    stage: &str,
) -> Response {
    let part = reqwest::multipart::Part::bytes(data)
        .file_name(filename.to_string())
        .mime_str("application/octet-stream")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("stage", stage.to_string());
    req(s, cred, Method::POST, path)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Everything the server's database holds, as text, read with the engine's own tool
/// (`sqlite3 .dump`, `pg_dump`, `mariadb-dump`); for SQLite without the CLI, the raw
/// bytes of the database and its WAL.
pub fn database_dump(s: &Server) -> Vec<u8> {
    let run = |c: &mut Command| {
        let out = c.output().expect("running the database dump tool");
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    match engine() {
        Engine::Sqlite => {
            let file = s.data_dir.join("ods.sqlite3");
            assert!(file.exists(), "{} missing", file.display());
            match Command::new("sqlite3").arg(&file).arg(".dump").output() {
                Ok(out) if out.status.success() => out.stdout,
                _ => {
                    let mut all = std::fs::read(&file).unwrap();
                    for ext in ["-wal", "-shm"] {
                        let mut p = file.clone().into_os_string();
                        p.push(ext);
                        all.extend(std::fs::read(p).unwrap_or_default());
                    }
                    all
                }
            }
        }
        Engine::Postgres => {
            let url = s.db.url.as_deref().unwrap();
            run(Command::new("pg_dump").args(["--data-only", url]))
        }
        Engine::MySql => {
            // mysql://root@HOST:PORT/NAME
            let rest = s.db.url.as_deref().unwrap().trim_start_matches("mysql://");
            let (auth, rest) = rest.split_once('@').unwrap();
            let (hostport, name) = rest.split_once('/').unwrap();
            let (host, port) = hostport.split_once(':').unwrap();
            run(Command::new("mariadb-dump").args([
                "-h",
                host,
                "-P",
                port,
                "-u",
                auth,
                "--skip-extended-insert",
                name,
            ]))
        }
    }
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
