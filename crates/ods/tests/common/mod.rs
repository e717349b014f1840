//! Test harness: starts real `ods` processes on loopback ports, each with its own data
//! directory and its own fresh database on the engine named by `ODS_TEST_DB`
//! (`sqlite`, the default; `postgres`; `mysql`). PostgreSQL and MariaDB databases are
//! created with the engines' own command-line clients and dropped afterwards.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod db;
pub mod mesh;
pub mod nginx;
pub mod python;
pub mod s3;

// (Each test binary uses what it needs of these.)
#[allow(unused_imports)]
pub use db::{Engine, TestDb, engine};

/// The admin every test server starts with: `Server::command` sets this password
/// with `ODS_INITIAL_ADMIN_PASSWORD`, so it need not be changed. This is the one place
/// the tests' admin password is chosen.
pub const ADMIN: (&str, &str) = ("admin", "ods-test-admin-1");
/// The well-known first-start admin, which may only change its password; a server
/// started with `Opts { default_admin: true, .. }` has it instead of `ADMIN`.
pub const DEFAULT_ADMIN: (&str, &str) = ("admin", "ods1234!");

pub fn hex_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        t & 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `ods` under test: the one cargo built beside the tests, or `ODS_TEST_BIN` (for a
/// target directory shared by several checkouts, whose `debug/ods` is whichever
/// checkout built last).
pub fn ods_bin() -> PathBuf {
    std::env::var_os("ODS_TEST_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ods")))
}

/// Options for starting a server.
#[derive(Default, Clone)]
pub struct Opts {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// A CA (PEM) the test's client trusts, for a server with TLS.
    pub ca: Option<PathBuf>,
    /// Start like a real first start, without `ODS_INITIAL_ADMIN_PASSWORD`: the admin
    /// is `DEFAULT_ADMIN` and must change its password before anything else.
    pub default_admin: bool,
}

/// The test's client of a server: no proxy, and trusting `ca` when there is one.
pub fn client_for(opts: &Opts) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut b = reqwest::Client::builder().no_proxy();
    if let Some(ca) = &opts.ca {
        let pem = std::fs::read(ca).expect("reading the test CA");
        b = b.tls_certs_merge([reqwest::Certificate::from_pem(&pem).expect("a PEM CA")]);
    }
    b.build().unwrap()
}

/// A running `ods serve` process.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    pub db: TestDb,
    pub opts: Opts,
    pub http: reqwest::Client,
    pub stdout_lines: Vec<String>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(Opts::default()).await
    }

    pub async fn start_with(opts: Opts) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("ods-test-")
            .tempdir()
            .unwrap();
        let data_dir = dir.path().join("data");
        let db = TestDb::create();
        let http = client_for(&opts);
        let mut s = Server {
            child: None,
            url: String::new(),
            data_dir,
            _dir: dir,
            db,
            opts,
            http,
            stdout_lines: Vec::new(),
        };
        s.spawn().await;
        s
    }

    /// Another node of this server's site: its own data directory and process, on the
    /// same database. What else the nodes share (the blob store, `SECRET_KEY` and
    /// `DATABASE_KEY`) is in `opts.env`, given to every node alike.
    pub async fn start_node(&self, opts: Opts) -> Server {
        let mut s = self.next_node(opts);
        s.spawn().await;
        s
    }

    /// A node like `start_node`'s, not started yet (`command` runs it).
    pub fn next_node(&self, opts: Opts) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("ods-test-")
            .tempdir()
            .unwrap();
        let http = client_for(&opts);
        Server {
            child: None,
            url: String::new(),
            data_dir: dir.path().join("data"),
            _dir: dir,
            db: TestDb::shared(self.database_url()),
            opts,
            http,
            stdout_lines: Vec::new(),
        }
    }

    /// The URL of this server's database (its SQLite file on SQLite).
    pub fn database_url(&self) -> String {
        self.db.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("ods.sqlite3").display()
            )
        })
    }

    /// The command that would start this server (for `ods user ...` and friends).
    pub fn command(&self, sub: &[&str]) -> Command {
        let mut c = Command::new(ods_bin());
        c.args(sub);
        c.arg("--data-dir").arg(&self.data_dir);
        if let Some(url) = &self.db.url {
            c.arg("--database-url").arg(url);
        }
        for k in [
            "DATABASE_URL",
            "ODS_CONF",
            "ODS_DATA_DIR",
            "ODS_LISTEN",
            "SECRET_KEY",
            "DATABASE_KEY",
            "MYSQL_SERVER",
            "UPLOAD_STAGING_DIRECTORY",
            "DEBUG",
        ] {
            c.env_remove(k);
        }
        c.env("ODS_JOB_POLL_MS", "100");
        c.env_remove("ODS_INITIAL_ADMIN_PASSWORD");
        if !self.opts.default_admin {
            c.env("ODS_INITIAL_ADMIN_PASSWORD", ADMIN.1);
        }
        for (k, v) in &self.opts.env {
            c.env(k, v);
        }
        c
    }

    async fn spawn(&mut self) {
        // A restart comes back on the same address, as a real server would.
        let listen = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"))
            .unwrap_or("127.0.0.1:0")
            .to_string();
        let mut cmd = self.command(&["serve", "--listen", &listen]);
        cmd.args(&self.opts.args);
        std::fs::create_dir_all(&self.data_dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        cmd.stdout(Stdio::piped()).stderr(log);
        let mut child = cmd.spawn().expect("starting ods");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        self.stdout_lines.clear();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("ODS listening on ") {
                        self.url = url.trim().to_string();
                    }
                    self.stdout_lines.push(line);
                    if !self.url.is_empty() {
                        // Collect the banner line that may follow.
                        while let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                            self.stdout_lines.push(l);
                        }
                        break;
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("ods exited with {status} before listening:\n{}", self.log());
                    }
                    assert!(
                        Instant::now() < deadline,
                        "ods did not start in 60 s:\n{}",
                        self.log()
                    );
                }
            }
        }
        self.child = Some(child);
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.parent().unwrap().join("ods.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the process with SIGKILL (no clean shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("server running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().unwrap()
    }

    /// Starts the process again on the same data directory and database.
    pub async fn restart(&mut self) {
        self.kill9();
        // Pooled connections went to the old process: start with a fresh client.
        self.http = client_for(&self.opts);
        self.spawn().await;
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// A request as the default admin.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.at(path))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
    }

    /// The `/metrics` text, read with the bearer `token` (`ODS_METRICS_TOKEN`).
    pub async fn metrics(&self, token: &str) -> String {
        let r = self
            .http
            .get(self.at("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET /metrics");
        r.text().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.admin(reqwest::Method::GET, path).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Uploads `data` as `filename` with `stage` (admin); returns the response.
    pub async fn upload(&self, filename: &str, data: Vec<u8>, stage: &str) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(data).file_name(filename.to_string());
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("stage", stage.to_string());
        self.admin(reqwest::Method::POST, "/api/admin/upload")
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Waits until `check` passes or `secs` elapse.
    pub async fn eventually<F, Fut>(&self, secs: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Files in the staging directory (uploads in progress or left behind).
    pub fn staging_files(&self) -> Vec<PathBuf> {
        list(&self.data_dir.join("blobs/.staging"))
    }

    /// Stored blobs.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in list(&self.data_dir.join("blobs")) {
            if d.is_dir() && d.file_name().is_some_and(|n| n.len() == 2) {
                out.extend(list(&d));
            }
        }
        out
    }
}

fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Deterministic pseudo-random bytes (xorshift) of length `n`.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

pub fn sha1_hex(d: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(d))
}

pub fn sha256_hex(d: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(d))
}

impl Server {
    /// Status and body of what `/share/<name>` serves (an anonymous download).
    pub async fn share(&self, name: &str) -> (reqwest::StatusCode, Vec<u8>) {
        let r = self
            .http
            .get(self.at(&format!("/share/{name}")))
            .send()
            .await
            .unwrap();
        (r.status(), r.bytes().await.unwrap().to_vec())
    }

    /// Runs one SQL statement on this server's own database, for states the API cannot
    /// produce (a package that is not Public); returns the number of rows affected.
    pub async fn sql(&self, sql: &str) -> u64 {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url =
            self.db.url.clone().unwrap_or_else(|| {
                format!("sqlite://{}", self.data_dir.join("ods.sqlite3").display())
            });
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        n.rows_affected()
    }
}

/// `from` registers with `to` (as an admin would on `from`'s Network tab).
pub async fn register(from: &Server, to: &Server) {
    let a = to.get_json("/api/admin/about").await;
    let r = from
        .admin(reqwest::Method::POST, "/api/admin/register")
        .json(&serde_json::json!({"url": to.url, "iss_id": a["iss"], "key": a["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "register: {}", r.text().await.unwrap());
}

/// Runs the openssl CLI in `dir`, failing the test with its stderr if it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cookie `name` a response sets: (`name=value`, the whole Set-Cookie header).
pub fn set_cookie(h: &reqwest::header::HeaderMap, name: &str) -> Option<(String, String)> {
    h.get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap().to_string(), v.to_string()))
}

/// The CSRF token in a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="csrf-token" content=""#)
        .expect("a csrf meta")
        + 27;
    html[at..at + 64].to_string()
}

impl Server {
    /// Creates the user `username` with `role` as the test admin; asserts 201.
    pub async fn add_user(&self, username: &str, password: &str, role: &str) {
        let r = self
            .admin(reqwest::Method::POST, "/api/admin/users")
            .json(&serde_json::json!({"username": username, "password": password, "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}
