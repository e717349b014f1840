//! The test site of `multinode.rs`: its nodes (sharing one database, keys and blob
//! store), the blob store they share (`Blobs`: a directory or a moto bucket, and what
//! is left in it), nginx in front of them with the repo's load-balancer config, a peer
//! site registered with it, and queries on the site's database.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde_json::json;

use crate::common::s3::{Kind, S3Server};
use crate::common::{self, Engine, Opts, Server, engine};

/// Keys every node of the test site shares (as the README asks of a site).
pub const SECRET_KEY: &str = "multinode-test-secret-key-0123456789";
pub const DATABASE_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// Seconds of heartbeat silence after which a node counts as gone.
pub const NODE_TIMEOUT: u64 = 10;

/// Where the site keeps its blobs.
pub enum Blobs {
    /// One directory every node uses (`ODS_BLOB_DIR`), as on NFS or a cluster FS.
    SharedDir(tempfile::TempDir),
    /// One S3 bucket every node uses (`ODS_STORAGE=s3://…`), on a real moto_server.
    Bucket(S3Server),
}

impl Blobs {
    pub fn shared_dir() -> Blobs {
        Blobs::SharedDir(
            tempfile::Builder::new()
                .prefix("ods-site-blobs-")
                .tempdir()
                .unwrap(),
        )
    }

    pub fn bucket() -> Blobs {
        Blobs::Bucket(S3Server::start(Kind::Moto))
    }

    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Blobs::SharedDir(d) => vec![("ODS_BLOB_DIR".into(), d.path().display().to_string())],
            Blobs::Bucket(s3) => s3.env(BUCKET_PREFIX),
        }
    }

    /// Uploads in progress (or left behind), by file name: staging files, or the
    /// `staging/` objects and `uploads/` markers of a bucket (all named
    /// `<node id>.<random>`, the node id starting with the node's name).
    pub fn staging(&self) -> Vec<String> {
        match self {
            Blobs::SharedDir(d) => names(&d.path().join(".staging")),
            Blobs::Bucket(s3) => ["staging", "uploads"]
                .iter()
                .flat_map(|k| s3.keys(&format!("{BUCKET_PREFIX}/{k}/")))
                .map(|(k, _)| k.rsplit('/').next().unwrap_or_default().to_string())
                .collect(),
        }
    }

    /// What is left of peer transfers: partial files, or chunk objects.
    pub fn partials(&self) -> Vec<String> {
        match self {
            Blobs::SharedDir(d) => names(&d.path().join(".partial")),
            Blobs::Bucket(s3) => s3
                .keys(&format!("{BUCKET_PREFIX}/partial/"))
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
        }
    }

    /// The bucket, when the site uses one.
    pub fn s3(&self) -> Option<&S3Server> {
        match self {
            Blobs::Bucket(s3) => Some(s3),
            Blobs::SharedDir(_) => None,
        }
    }

    /// How many blobs are stored.
    pub fn count(&self) -> usize {
        match self {
            Blobs::SharedDir(d) => names(d.path())
                .iter()
                .filter(|n| n.len() == 2)
                .map(|n| names(&d.path().join(n)).len())
                .sum(),
            Blobs::Bucket(s3) => s3.keys(&format!("{BUCKET_PREFIX}/blobs/")).len(),
        }
    }
}

/// Where the site's objects live in the bucket.
pub const BUCKET_PREFIX: &str = "site";

pub fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The options of node `name`: what all nodes share, and its own name.
pub fn node_opts(blobs: &Blobs, name: &str, extra: &[(&str, &str)]) -> Opts {
    let mut env = blobs.env();
    for (k, v) in [
        ("SECRET_KEY", SECRET_KEY),
        ("DATABASE_KEY", DATABASE_KEY),
        ("ODS_NODE_NAME", name),
        ("ODS_NODE_TIMEOUT_SECS", &NODE_TIMEOUT.to_string()),
        ("ODS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("ODS_SYNC_INTERVAL", "1"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        env.push((k.to_string(), v.to_string()));
    }
    Opts {
        env,
        ..Default::default()
    }
}

/// A site of several nodes behind nginx, its URL (nginx's) set as the site's URL.
pub struct Site {
    pub nodes: Vec<Server>,
    pub nginx: Nginx,
    pub blobs: Blobs,
}

/// Starts node 1; on SQLite asserts that a second node is refused and returns `None`,
/// elsewhere starts the other nodes and nginx in front of them.
pub async fn site(n: usize, blobs: Blobs, extra: &[(&str, &str)]) -> Option<Site> {
    let first = Server::start_with(node_opts(&blobs, "node1", extra)).await;
    if engine() == Engine::Sqlite {
        second_node_is_refused(&first, node_opts(&blobs, "node2", extra)).await;
        return None;
    }
    let mut nodes = vec![first];
    for i in 2..=n {
        let node = nodes[0]
            .start_node(node_opts(&blobs, &format!("node{i}"), extra))
            .await;
        nodes.push(node);
    }
    let nginx = Nginx::start(&nodes).await;
    let r = nodes[0]
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({"name": "site", "url": nginx.url, "stage": "Prod"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    Some(Site {
        nodes,
        nginx,
        blobs,
    })
}

/// A second `ods serve` on node 1's SQLite database exits at start, saying why.
pub async fn second_node_is_refused(first: &Server, opts: Opts) {
    let second = first.next_node(opts);
    let mut child = second
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a second node on a SQLite database kept running");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("in use by another ODS process") && err.contains("PostgreSQL or MariaDB"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("ODS listening"),
        "it never listened"
    );
    // Node 1 goes on serving.
    assert!(first.get_json("/api/admin/about").await["iss"].is_string());
}

/// nginx running deploy/nginx/ods-site.conf with the nodes as its upstream servers.
pub struct Nginx {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    pub async fn start(nodes: &[Server]) -> Nginx {
        assert!(
            Path::new("/usr/sbin/nginx").exists(),
            "nginx is not installed (apt-get install -y nginx-light)"
        );
        let dir = tempfile::Builder::new()
            .prefix("ods-site-nginx-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/ods-site.conf"),
        )
        .unwrap();
        let servers: Vec<&str> = conf
            .lines()
            .filter(|l| l.trim_start().starts_with("server 127.0.0.1:808"))
            .collect();
        assert_eq!(servers.len(), 3, "ods-site.conf lists three example nodes");
        let ours: Vec<String> = nodes
            .iter()
            .map(|n| {
                format!(
                    "    server {} max_fails=2 fail_timeout=10s;",
                    n.url.trim_start_matches("http://")
                )
            })
            .collect();
        let conf = conf.replace(&servers.join("\n"), &ours.join("\n"));
        assert_eq!(conf.matches("listen 80;").count(), 1);
        let conf = conf.replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        let child = common::nginx::start(d, "ods-site.conf", &conf, port).await;
        Nginx {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }
}

/// Text columns of a query on the site's database.
pub async fn query(s: &Server, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.database_url())
        .await
        .unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    rows.iter()
        .map(|r| {
            r.try_get::<String, _>(0)
                .or_else(|_| r.try_get::<i64, _>(0).map(|n| n.to_string()))
                .unwrap()
        })
        .collect()
}

pub async fn get_bytes(http: &reqwest::Client, url: &str) -> (u16, Bytes) {
    let r = http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap())
}
/// A single `ods serve` as a peer site, registered with `site` by the site's
/// load-balanced URL (so it knows the site only by that URL).
pub async fn peer_of(site: &Site) -> Server {
    let peer = Server::start_with(Opts {
        env: vec![("ODS_SYNC_INTERVAL".into(), "1".into())],
        ..Default::default()
    })
    .await;
    let r = peer
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({"name": "peer", "url": peer.url, "stage": "Prod"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let a = site.nodes[1].get_json("/api/admin/about").await;
    let r = peer
        .admin(Method::POST, "/api/admin/register")
        .json(&json!({"url": site.nginx.url, "iss_id": a["iss"], "key": a["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "register: {}", r.text().await.unwrap());
    peer
}
