//! Several `ods serve` nodes on one database and one blob store are one site (issue 10
//! item 2), behind the repo's load-balancer config (deploy/nginx/ods-site.conf) run
//! with Debian's nginx. On PostgreSQL and MariaDB: an upload through node 1 is served
//! at once by the others; one identity and one login limiter; a peer site syncs a
//! package once, whichever node takes the job; kill -9 of a node mid-upload loses
//! nothing and, once another node sweeps, leaves no orphan, while the upload in flight
//! on a live node is spared; 1,000 webhook deliveries queued across three nodes are
//! each sent exactly once. On SQLite a second node is refused with a clear message:
//! every test asserts that in the SQLite round.
//!
//! The blob store is a parameter (`Blobs`): one directory shared by the nodes, as on a
//! shared filesystem, or one S3 bucket (moto_server); the upload and peer-sync cases
//! run on both.
mod common;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use common::s3::{Kind, S3Server};
use common::{Engine, Opts, Server, bytes, engine, python, sha256_hex};

/// Keys every node of the test site shares (as the README asks of a site).
const SECRET_KEY: &str = "multinode-test-secret-key-0123456789";
const DATABASE_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// Seconds of heartbeat silence after which a node counts as gone.
const NODE_TIMEOUT: u64 = 10;

/// Where the site keeps its blobs.
enum Blobs {
    /// One directory every node uses (`ODS_BLOB_DIR`), as on NFS or a cluster FS.
    SharedDir(tempfile::TempDir),
    /// One S3 bucket every node uses (`ODS_STORAGE=s3://…`), on a real moto_server.
    Bucket(S3Server),
}

impl Blobs {
    fn shared_dir() -> Blobs {
        Blobs::SharedDir(
            tempfile::Builder::new()
                .prefix("ods-site-blobs-")
                .tempdir()
                .unwrap(),
        )
    }

    fn bucket() -> Blobs {
        Blobs::Bucket(S3Server::start(Kind::Moto))
    }

    fn env(&self) -> Vec<(String, String)> {
        match self {
            Blobs::SharedDir(d) => vec![("ODS_BLOB_DIR".into(), d.path().display().to_string())],
            Blobs::Bucket(s3) => s3.env(BUCKET_PREFIX),
        }
    }

    /// Uploads in progress (or left behind), by file name.
    fn staging(&self) -> Vec<String> {
        match self {
            Blobs::SharedDir(d) => names(&d.path().join(".staging")),
            Blobs::Bucket(s3) => ["staging", "uploads"]
                .iter()
                .flat_map(|k| s3.keys(&format!("{BUCKET_PREFIX}/{k}/")))
                .map(|(k, _)| k)
                .collect(),
        }
    }

    /// How many blobs are stored.
    fn count(&self) -> usize {
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
const BUCKET_PREFIX: &str = "site";

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The options of node `name`: what all nodes share, and its own name.
fn node_opts(blobs: &Blobs, name: &str, extra: &[(&str, &str)]) -> Opts {
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
struct Site {
    nodes: Vec<Server>,
    nginx: Nginx,
    blobs: Blobs,
}

/// Starts node 1; on SQLite asserts that a second node is refused and returns `None`,
/// elsewhere starts the other nodes and nginx in front of them.
async fn site(n: usize, blobs: Blobs, extra: &[(&str, &str)]) -> Option<Site> {
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
async fn second_node_is_refused(first: &Server, opts: Opts) {
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
struct Nginx {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    async fn start(nodes: &[Server]) -> Nginx {
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

    fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }
}

/// Text columns of a query on the site's database.
async fn query(s: &Server, sql: &str) -> Vec<String> {
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

async fn get_bytes(http: &reqwest::Client, url: &str) -> (u16, Bytes) {
    let r = http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap())
}

#[tokio::test]
async fn an_upload_on_one_node_is_served_by_every_node_at_once() {
    upload_served_by_every_node(Blobs::shared_dir()).await;
}

#[tokio::test]
async fn on_one_bucket_an_upload_on_one_node_is_served_by_every_node_at_once() {
    upload_served_by_every_node(Blobs::bucket()).await;
}

async fn upload_served_by_every_node(blobs: Blobs) {
    let extra = [("ODS_LOGIN_MAX_FAILURES_PER_ACCOUNT", "3")];
    let Some(site) = site(3, blobs, &extra).await else {
        return;
    };
    let [n1, n2, n3] = &site.nodes[..] else {
        unreachable!()
    };
    let path = "/CasperShare/Packages/at-once.pkg";
    // The other nodes are asked first: a miss they answered must not be remembered.
    for s in [n2, n3] {
        assert_eq!(get_bytes(&s.http, &s.at(path)).await.0, 404);
    }
    let data = bytes(700_000, 11);
    let r = n1.upload("at-once.pkg", data.clone(), "Prod").await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for url in [n2.at(path), n3.at(path), n1.at(path)] {
        let (status, body) = get_bytes(&n2.http, &url).await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(sha256_hex(&body), sha256_hex(&data), "{url}");
    }
    for _ in 0..6 {
        let (status, body) = get_bytes(&n1.http, &site.nginx.at(path)).await;
        assert_eq!((status, body.len()), (200, data.len()), "through nginx");
    }
    assert_eq!(site.blobs.count(), 1, "one blob for the whole site");
    assert!(site.blobs.staging().is_empty());

    // One identity and one catalog, whichever node answers.
    let about: Vec<Value> =
        futures_util::future::join_all(site.nodes.iter().map(|s| s.get_json("/api/admin/about")))
            .await;
    for a in &about {
        for k in ["iss", "key", "name", "url"] {
            assert_eq!(a[k], about[0][k], "{k}");
        }
    }
    assert_eq!(about[0]["url"], json!(site.nginx.url));
    for s in [n2, n3] {
        let list = s.get_json("/api/admin/packages").await;
        assert_eq!(list["items"][0]["filename"], "at-once.pkg");
    }

    // One login limiter: three failures for one account spread over the nodes lock
    // it on every node.
    let fail = |s: &Server| {
        s.http
            .get(s.at("/api/admin/about"))
            .basic_auth("mallory", Some("guess"))
            .send()
    };
    for s in [n1, n2, n3] {
        assert_eq!(fail(s).await.unwrap().status(), 401);
    }
    for s in [n1, n2, n3] {
        assert_eq!(fail(s).await.unwrap().status(), 429, "{}", s.url);
    }
    let through_nginx = n1
        .http
        .get(site.nginx.at("/api/admin/about"))
        .basic_auth("mallory", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(through_nginx.status(), 429);
}

#[tokio::test]
async fn a_peer_site_syncs_a_package_once_whichever_node_fetches() {
    peer_syncs_once(Blobs::shared_dir()).await;
}

#[tokio::test]
async fn on_one_bucket_a_peer_site_syncs_a_package_once_whichever_node_fetches() {
    peer_syncs_once(Blobs::bucket()).await;
}

async fn peer_syncs_once(blobs: Blobs) {
    let Some(site) = site(3, blobs, &[]).await else {
        return;
    };
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
    // The peer knows the site only by its load-balanced URL.
    let a = site.nodes[1].get_json("/api/admin/about").await;
    let r = peer
        .admin(Method::POST, "/api/admin/register")
        .json(&json!({"url": site.nginx.url, "iss_id": a["iss"], "key": a["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "register: {}", r.text().await.unwrap());
    let peers = peer.get_json("/api/admin/registered_ods").await;
    assert!(
        peers.to_string().contains(&site.nginx.url),
        "the peer stores the site's URL: {peers}"
    );

    let data = bytes(3_000_000, 23);
    let r = peer.upload("from-peer.pkg", data.clone(), "Prod").await;
    assert_eq!(r.status(), 201);
    let path = "/CasperShare/Packages/from-peer.pkg";
    for s in &site.nodes {
        s.eventually(90, "the package on every node", || async {
            get_bytes(&s.http, &s.at(path)).await.0 == 200
        })
        .await;
        let (_, body) = get_bytes(&s.http, &s.at(path)).await;
        assert_eq!(
            (body.len(), sha256_hex(&body)),
            (data.len(), sha256_hex(&data)),
            "{}",
            s.url
        );
    }
    // Let any duplicate the site might queue show up before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fetches = query(
        &site.nodes[0],
        "SELECT locked_by FROM jobs WHERE kind = 'fetch'",
    )
    .await;
    assert_eq!(fetches.len(), 1, "one fetch job for the site: {fetches:?}");
    let ids: HashSet<String> = query(&site.nodes[0], "SELECT id FROM nodes")
        .await
        .into_iter()
        .collect();
    assert!(
        ids.contains(&fetches[0]),
        "run by a node of the site: {fetches:?} {ids:?}"
    );
    eprintln!("the fetch ran on {}", fetches[0]);
    let sent = peer.get_json("/api/admin/sync").await;
    assert_eq!(
        sent["chunk_bytes_served"],
        json!(data.len()),
        "the peer sent the file once: {sent}"
    );
    assert_eq!(site.blobs.count(), 1);
}

/// A multipart upload of `pieces` x 64 KiB, one piece every `delay`; returns the
/// request and the file's sha256.
fn slow_upload(
    s: &Server,
    filename: &str,
    pieces: usize,
    delay: Duration,
    seed: u64,
) -> (
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
    String,
) {
    const B: &str = "multinode-boundary-7f3a";
    let piece = move |i: usize| Bytes::from(bytes(65_536, seed * 100_000 + i as u64));
    let sha = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for i in 0..pieces {
            h.update(piece(i));
        }
        hex::encode(h.finalize())
    };
    let head = Bytes::from(format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"stage\"\r\n\r\nProd\r\n\
         --{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    ));
    let tail = Bytes::from(format!("\r\n--{B}--\r\n"));
    let total = (head.len() + pieces * 65_536 + tail.len()) as u64;
    let body = futures_util::stream::iter(0..pieces).then(move |i| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, io::Error>(piece(i))
    });
    let body = futures_util::stream::once(async move { Ok(head) })
        .chain(body)
        .chain(futures_util::stream::once(async move { Ok(tail) }));
    let req = s
        .admin(Method::POST, "/api/admin/upload")
        .header("content-type", format!("multipart/form-data; boundary={B}"))
        .header("content-length", total)
        .body(reqwest::Body::wrap_stream(body));
    (tokio::spawn(req.send()), sha)
}

#[tokio::test]
async fn kill9_mid_upload_loses_nothing_and_leaves_no_orphan() {
    let Some(mut site) = site(3, Blobs::shared_dir(), &[]).await else {
        return;
    };
    let kept = bytes(400_000, 5);
    let r = site.nodes[0].upload("kept.pkg", kept.clone(), "Prod").await;
    assert_eq!(r.status(), 201);
    // One upload in flight on node 1 (to be killed), one on node 2 (to live on).
    let (doomed, _) = slow_upload(
        &site.nodes[0],
        "doomed.pkg",
        400,
        Duration::from_millis(50),
        1,
    );
    let (alive, alive_sha) = slow_upload(
        &site.nodes[1],
        "alive.pkg",
        200,
        Duration::from_millis(60),
        2,
    );
    let owned_by = |prefix: &str| {
        site.blobs
            .staging()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while owned_by("node1-") == 0 || owned_by("node2-") == 0 {
        assert!(Instant::now() < deadline, "{:?}", site.blobs.staging());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    site.nodes[0].kill9();
    assert!(
        doomed.await.unwrap().is_err(),
        "the killed node's upload fails"
    );
    // Node 3 sweeps at start once node 1's heartbeat is older than the timeout.
    tokio::time::sleep(Duration::from_secs(NODE_TIMEOUT + 1)).await;
    site.nodes[2].restart().await;
    site.nodes[2]
        .eventually(20, "node 3's sweep at start", || async {
            owned_by("node1-") == 0
        })
        .await;
    assert_eq!(
        owned_by("node2-"),
        1,
        "the live node's upload in flight is spared: {:?}",
        site.blobs.staging()
    );
    assert!(!site.nodes[1].log().contains("the staging writer stopped"));
    let r = alive.await.unwrap().unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let n3 = &site.nodes[2];
    let (status, body) = get_bytes(&n3.http, &n3.at("/CasperShare/Packages/alive.pkg")).await;
    assert_eq!((status, sha256_hex(&body)), (200, alive_sha));
    let (status, body) =
        get_bytes(&n3.http, &site.nginx.at("/CasperShare/Packages/kept.pkg")).await;
    assert_eq!((status, sha256_hex(&body)), (200, sha256_hex(&kept)));
    let list = n3.get_json("/api/admin/packages").await;
    let mut files: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["filename"].as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["alive.pkg", "kept.pkg"],
        "nothing of the killed upload"
    );
    assert!(
        site.blobs.staging().is_empty(),
        "{:?}",
        site.blobs.staging()
    );
    assert_eq!(site.blobs.count(), 2, "no orphan blob");
    // Node 1 comes back and rejoins.
    site.nodes[0].restart().await;
    let (status, _) = get_bytes(
        &site.nodes[0].http,
        &site.nodes[0].at("/CasperShare/Packages/alive.pkg"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_thousand_jobs_across_three_nodes_each_run_once() {
    let Some(site) = site(3, Blobs::shared_dir(), &[]).await else {
        return;
    };
    if !python::ready_or_skip(
        python::has_module("standardwebhooks"),
        "python3 with standardwebhooks is needed (pip install standardwebhooks)",
        "python3 with standardwebhooks is not installed",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, secrets) = (
        dir.path().join("requests.jsonl"),
        dir.path().join("secrets.json"),
    );
    let rx = python::Helper::start("webhook_receiver.py", &[&log, &secrets]);
    // Ten webhooks (a webhook has at most two deliveries in flight per node), made
    // through the load balancer.
    const HOOKS: usize = 10;
    const N: usize = 1000;
    let mut tests = Vec::new();
    let mut secrets_json = json!({});
    for h in 0..HOOKS {
        let path = format!("/count/{h}");
        let r = site.nodes[0]
            .http
            .post(site.nginx.at("/api/admin/webhooks"))
            .basic_auth(common::ADMIN.0, Some(common::ADMIN.1))
            .json(&json!({"url": format!("http://127.0.0.1:{}{path}", rx.port), "events": ["package.deleted"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let hook: Value = r.json().await.unwrap();
        secrets_json[&path] = hook["secret"].clone();
        tests.push(format!("/api/admin/webhooks/{}/test", hook["id"]));
    }
    std::fs::write(&secrets, secrets_json.to_string()).unwrap();

    // 1,000 test messages queued through the three nodes in turn, 16 at a time.
    let statuses: Vec<u16> = futures_util::stream::iter(0..N)
        .map(|i| {
            let s = &site.nodes[i % 3];
            let req = s.admin(Method::POST, &tests[i % HOOKS]);
            async move { req.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let received = || python::read_jsonl(&log);
    site.nodes[0]
        .eventually(300, "1,000 deliveries", || async { received().len() >= N })
        .await;
    // Any second sending of a message would arrive within these seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = received();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &all {
        assert_eq!(r["verified"], json!(true), "{r}");
        *per_id
            .entry(r["headers"]["webhook-id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!((all.len(), per_id.len()), (N, N));
    // Which node sent them: the delivery jobs that ended done (a job that found its
    // webhook's places taken queued a successor and ended too, so there are more).
    let workers = query(
        &site.nodes[0],
        "SELECT locked_by FROM jobs WHERE kind = 'webhook_deliver' AND state = 'done'",
    )
    .await;
    assert!(workers.len() >= N);
    let mut by_node: HashMap<String, usize> = HashMap::new();
    for w in workers {
        *by_node
            .entry(w.split('-').next().unwrap().to_string())
            .or_default() += 1;
    }
    eprintln!("delivery jobs per node: {by_node:?}");
    assert!(
        by_node.len() >= 2,
        "the nodes shared the queue: {by_node:?}"
    );
    let pending = query(
        &site.nodes[0],
        "SELECT COUNT(*) FROM jobs WHERE kind = 'webhook_deliver' AND state <> 'done'",
    )
    .await;
    assert_eq!(pending, ["0"], "the queue is drained");
}

/// `ods worker` has no HTTP listener of its own; with `ODS_METRICS_LISTEN` it serves
/// `/metrics` there, behind the same token, with the job gauges read from the database.
#[tokio::test]
async fn a_worker_serves_metrics_on_its_metrics_listener() {
    const TOKEN: &str = "worker-scrape-token-1";
    let mut s = Server::start_with(Opts {
        env: vec![("ODS_METRICS_TOKEN".into(), TOKEN.into())],
        ..Default::default()
    })
    .await;
    // One process per SQLite database: the worker takes over from the server.
    let stopped = s.stop();
    assert!(stopped.success(), "{stopped}: {}", s.log());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut worker = s
        .command(&["worker"])
        .env("ODS_METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        if let Ok(r) = s.http.get(&url).bearer_auth(TOKEN).send().await {
            assert_eq!(r.status(), 200);
            break r.text().await.unwrap();
        }
        assert!(worker.try_wait().unwrap().is_none(), "the worker exited");
        assert!(Instant::now() < deadline, "no metrics listener");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.contains("ods_jobs{"), "{body}");
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401, "the token is needed");
    let r = s
        .http
        .get(format!("http://127.0.0.1:{port}/api/admin/about"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "only /metrics is served there");
    let _ = worker.kill();
    let _ = worker.wait();
}
