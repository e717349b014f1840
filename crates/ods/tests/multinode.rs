//! Several `ods serve` nodes on one database and one blob store are one site (issue 10
//! item 2), behind the repo's load-balancer config (deploy/nginx/ods-site.conf) run
//! with Debian's nginx. On PostgreSQL and MariaDB: an upload through node 1 is served
//! at once by the others; one identity and one login limiter; a peer site syncs a
//! package once, whichever node takes the job; kill -9 of a node mid-upload or
//! mid-transfer (`crashes.rs`); 1,000 webhook deliveries queued across three nodes are
//! each sent exactly once. On SQLite a second node is refused with a clear message:
//! every test asserts that in the SQLite round.
//!
//! The blob store is a parameter (`Blobs`, in `site.rs` with the rest of the test
//! site): one directory shared by the nodes, as on a shared filesystem, or one S3
//! bucket (moto_server); the upload, peer-sync and crash cases run on both.
mod common;
#[path = "multinode/crashes.rs"]
mod crashes;
#[path = "multinode/site.rs"]
mod site;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use common::{Opts, Server, bytes, python, sha256_hex};
use site::{Blobs, get_bytes, peer_of, query, site};

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
    let peer = peer_of(&site).await;
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
