//! kill -9 of a node of the site: mid-upload (the upload is lost, nothing else; another
//! node's sweep removes what it left, on a shared directory its staging file, in a
//! bucket its multipart upload and marker, and spares the upload in flight on a live
//! node) and mid-transfer from a peer site (another node takes the fetch job over when
//! its lease runs out and resumes from the chunks recorded, so the peer sends little
//! more than the file once).

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Server, bytes, sha256_hex};
use crate::site::{Blobs, NODE_TIMEOUT, Site, get_bytes, peer_of, query, site};

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

// Several threads: the uploads' bodies are sent by spawned tasks while the test looks
// at the bucket with boto3 (a blocking subprocess).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_upload_loses_nothing_and_leaves_no_orphan() {
    kill9_mid_upload(Blobs::shared_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_bucket_kill9_mid_upload_loses_nothing_and_leaves_no_orphan() {
    kill9_mid_upload(Blobs::bucket()).await;
}

async fn kill9_mid_upload(blobs: Blobs) {
    let Some(mut site) = site(3, blobs, &[]).await else {
        return;
    };
    let kept = bytes(400_000, 5);
    let r = site.nodes[0].upload("kept.pkg", kept.clone(), "Prod").await;
    assert_eq!(r.status(), 201);
    // One upload in flight on node 1 (to be killed), one on node 2 (to live on). In a
    // bucket an upload is recorded with its first 8 MiB part, so the one that lives on
    // is made long enough to be still in flight after the sweep.
    let alive_pieces = if site.blobs.s3().is_some() { 640 } else { 240 };
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
        alive_pieces,
        Duration::from_millis(50),
        2,
    );
    let owned_by = |prefix: &str| -> Vec<String> {
        site.blobs
            .staging()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect()
    };
    // In a bucket: the multipart uploads open, by the node that made them.
    let open_of = |node: &str| -> Vec<String> {
        let Some(s3) = site.blobs.s3() else {
            return Vec::new();
        };
        s3.open_upload_keys(&format!("{}/staging/{node}-", crate::site::BUCKET_PREFIX))
    };
    let bucket = site.blobs.s3().is_some();
    let under_way = |node: &str| {
        owned_by(&format!("{node}-")).len() == 1 && (!bucket || open_of(node).len() == 1)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !under_way("node1") || !under_way("node2") {
        assert!(
            Instant::now() < deadline,
            "uploads not under way: {:?} {:?} {:?} {:?} {:?}\n{}\n{}",
            site.blobs.staging(),
            site.blobs.s3().map(|s3| s3.keys("")),
            doomed.is_finished(),
            open_of("node1"),
            open_of("node2"),
            site.nodes[0].log(),
            site.nodes[1].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    site.nodes[0].kill9();
    assert!(
        doomed.await.unwrap().is_err(),
        "the killed node's upload fails"
    );
    assert_eq!(owned_by("node1-").len(), 1, "left behind by the kill");
    // Node 3 sweeps at start once node 1's heartbeat is older than the timeout.
    tokio::time::sleep(Duration::from_secs(NODE_TIMEOUT + 1)).await;
    site.nodes[2].restart().await;
    site.nodes[2]
        .eventually(20, "node 3's sweep at start", || async {
            owned_by("node1-").is_empty()
        })
        .await;
    assert!(
        open_of("node1").is_empty(),
        "the killed node's multipart upload is aborted"
    );
    assert_eq!(
        owned_by("node2-").len(),
        1,
        "the live node's upload in flight is spared: {:?}",
        site.blobs.staging()
    );
    if bucket {
        assert_eq!(open_of("node2").len(), 1, "its multipart upload too");
    }
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
    if let Some(s3) = site.blobs.s3() {
        assert_eq!(s3.open_uploads(), 0, "no multipart upload left open");
    }
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
async fn kill9_mid_transfer_another_node_finishes_it() {
    kill9_mid_transfer(Blobs::shared_dir()).await;
}

#[tokio::test]
async fn on_one_bucket_kill9_mid_transfer_another_node_finishes_it() {
    kill9_mid_transfer(Blobs::bucket()).await;
}

/// The package `filename` as the site lists it, if it does.
async fn package(s: &Server, filename: &str) -> Option<Value> {
    s.get_json("/api/admin/packages").await["items"]
        .as_array()?
        .iter()
        .find(|p| p["filename"] == filename)
        .cloned()
}

/// The peer's count of chunk bytes it sent.
async fn served(peer: &Server) -> u64 {
    peer.get_json("/api/admin/sync").await["chunk_bytes_served"]
        .as_u64()
        .unwrap()
}

/// Recorded chunks of transfers in flight on the site.
async fn recorded(site: &Site) -> u64 {
    query(&site.nodes[0], "SELECT COUNT(*) FROM transfer_chunks").await[0]
        .parse()
        .unwrap()
}

async fn kill9_mid_transfer(blobs: Blobs) {
    const MIB: u64 = 1024 * 1024;
    let Some(mut site) = site(3, blobs, &[]).await else {
        return;
    };
    let peer = peer_of(&site).await;
    // The site fetches from the peer at 2 MiB/s, so the kill lands mid-transfer.
    let peers = site.nodes[0].get_json("/api/admin/registered_ods").await;
    let peer_id = peers["items"][0]["id"].as_i64().unwrap();
    let r = site.nodes[0]
        .admin(
            Method::PATCH,
            &format!("/api/admin/registered_ods/{peer_id}"),
        )
        .json(&json!({"rate_limit": 2 * MIB}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let size = 24 * MIB;
    let data = bytes(size as usize, 31);
    let r = peer.upload("big.pkg", data.clone(), "Prod").await;
    assert_eq!(r.status(), 201);

    // The node running the fetch, once it has recorded a few chunks.
    let running = "SELECT locked_by FROM jobs WHERE kind = 'fetch' AND state = 'running'";
    let deadline = Instant::now() + Duration::from_secs(60);
    let fetcher = loop {
        let by = query(&site.nodes[0], running).await;
        if by.len() == 1 && recorded(&site).await >= 4 {
            break by[0].clone();
        }
        assert!(Instant::now() < deadline, "no fetch under way: {by:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let victim = site
        .nodes
        .iter()
        .position(|n| fetcher.starts_with(&format!("{}-", node_name(n))))
        .unwrap_or_else(|| panic!("the fetch runs on {fetcher}, a node of the site"));
    let survivor = (victim + 1) % site.nodes.len();
    let p = package(&site.nodes[survivor], "big.pkg").await.unwrap();
    assert_eq!(p["status"], "Downloading", "{p}");
    site.nodes[victim].kill9();
    // What the killed node had recorded survives it; what the peer sent it beyond
    // that is lost.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = recorded(&site).await;
    let served_before = served(&peer).await;
    assert!(kept >= 4 && kept < size / MIB, "{kept} chunks recorded");
    eprintln!("killed {fetcher} with {kept} chunks recorded, {served_before} bytes served");

    // Another node takes the job over when its lease (one minute) runs out.
    let s = &site.nodes[survivor];
    s.eventually(150, "the package Public on the site", || async {
        package(s, "big.pkg")
            .await
            .is_some_and(|p| p["status"] == "Public")
    })
    .await;
    let p = package(s, "big.pkg").await.unwrap();
    assert_eq!(p["sha256"], sha256_hex(&data));
    let jobs = query(
        &site.nodes[survivor],
        "SELECT locked_by FROM jobs WHERE kind = 'fetch' AND state = 'done'",
    )
    .await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_ne!(jobs[0], fetcher, "finished by another node");
    let finisher = jobs[0].split('-').next().unwrap().to_string();
    assert_ne!(finisher, node_name(&site.nodes[victim]));
    eprintln!("finished by {}", jobs[0]);
    for (i, n) in site.nodes.iter().enumerate() {
        if i == victim {
            continue;
        }
        let (status, body) = get_bytes(&n.http, &n.at("/CasperShare/Packages/big.pkg")).await;
        assert_eq!(
            (status, sha256_hex(&body)),
            (200, sha256_hex(&data)),
            "{}",
            n.url
        );
    }
    // The resumed transfer fetched only the chunks not recorded, and in all the peer
    // sent the file once plus what the killed node had in flight.
    let total = served(&peer).await;
    assert!(
        total - served_before <= size - kept * MIB,
        "after the kill {} bytes were served for {} missing chunks",
        total - served_before,
        size / MIB - kept
    );
    assert!(
        total <= size + 24 * MIB,
        "the peer served {total} bytes for {size}"
    );
    assert_eq!(site.blobs.count(), 1, "exactly one blob");
    assert_eq!(recorded(&site).await, 0, "chunk records left");
    assert!(
        site.blobs.partials().is_empty(),
        "partial files left: {:?}",
        site.blobs.partials()
    );
    assert!(
        site.blobs.staging().is_empty(),
        "staging left: {:?}",
        site.blobs.staging()
    );
    if let Some(s3) = site.blobs.s3() {
        assert_eq!(s3.open_uploads(), 0, "no multipart upload left open");
    }
}

/// A node's `ODS_NODE_NAME`, which starts its node id.
fn node_name(n: &Server) -> String {
    n.opts
        .env
        .iter()
        .find(|(k, _)| k == "ODS_NODE_NAME")
        .map(|(_, v)| v.clone())
        .unwrap()
}
