//! Many clients at once on whatever engine `ODS_TEST_DB` names (the original product
//! failed here on SQLite with "database is locked"): concurrent uploads, then
//! concurrent downloads, every one answered correctly and nothing in the log; racing
//! uploads of one filename or of one content resolve cleanly.
mod common;

use std::sync::Arc;

use common::{Server, bytes, sha1_hex, sha256_hex};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

const KIB: usize = 1024;

fn assert_clean_log(s: &Server) {
    let log = s.log();
    let bad: Vec<&str> = log
        .lines()
        .filter(|line| {
            let l = line.to_ascii_lowercase();
            line.contains(" ERROR ")
                || l.contains("database is locked")
                || l.contains("database table is locked")
                || l.contains("deadlock")
                || l.contains("panicked")
        })
        .collect();
    assert!(bad.is_empty(), "the server logged:\n{}", bad.join("\n"));
}

#[tokio::test]
async fn fifty_uploads_then_two_hundred_downloads_at_once() {
    let s = Arc::new(Server::start().await);
    let files: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        (0..50)
            .map(|i| {
                (
                    format!("concurrent-{i:02}.pkg"),
                    bytes(256 * KIB + i * 977, 7000 + i as u64),
                )
            })
            .collect(),
    );

    let uploads = (0..files.len()).map(|i| {
        let (s, files) = (s.clone(), files.clone());
        tokio::spawn(async move {
            let (name, data) = &files[i];
            let r = s.upload(name, data.clone(), "Prod").await;
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            (status, v)
        })
    });
    for (i, res) in join_all(uploads).await.into_iter().enumerate() {
        let (status, v) = res.unwrap();
        let (name, data) = &files[i];
        assert_eq!(status, StatusCode::CREATED, "{name}: {v}");
        assert_eq!(v["filename"], *name);
        assert_eq!(v["sha1"], sha1_hex(data), "{name}");
        assert_eq!(v["sha256"], sha256_hex(data), "{name}");
    }
    let listed = s.get_json("/api/admin/packages").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), files.len());
    assert_eq!(s.blob_files().len(), files.len());
    assert!(s.staging_files().is_empty());

    let downloads = (0..200).map(|i| {
        let (s, files) = (s.clone(), files.clone());
        tokio::spawn(async move {
            let (name, data) = &files[i % files.len()];
            let path = if i % 2 == 0 {
                format!("/share/{name}")
            } else {
                format!("/CasperShare/Packages/{name}")
            };
            let mut req = s.http.get(s.at(&path));
            // Every fourth asks for a range across the middle.
            let want: &[u8] = if i % 4 == 3 {
                req = req.header("range", "bytes=1000-200000");
                &data[1000..=200_000]
            } else {
                data
            };
            let r = req.send().await.unwrap();
            let status = r.status();
            let body = r.bytes().await.unwrap();
            (
                status,
                i % 4 == 3,
                sha256_hex(&body) == sha256_hex(want),
                path,
            )
        })
    });
    for res in join_all(downloads).await {
        let (status, ranged, same, path) = res.unwrap();
        let want = if ranged {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        assert_eq!(status, want, "{path}");
        assert!(same, "{path}: wrong bytes");
    }
    assert_clean_log(&s);
}

/// Starts `n` uploads of `contested.pkg` at once, each with different bytes; returns
/// (status, sha256 of what was sent) per upload.
async fn race_for_one_name(s: &Arc<Server>, n: u64) -> Vec<(StatusCode, String)> {
    let racers = (0..n).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            let data = bytes(128 * KIB, 300 + i);
            let r = s.upload("contested.pkg", data.clone(), "Prod").await;
            (r.status(), sha256_hex(&data))
        })
    });
    join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn racing_uploads_of_one_filename_have_one_winner() {
    let s = Arc::new(Server::start().await);
    let results = race_for_one_name(&s, 10).await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(st, _)| *st == StatusCode::CREATED)
        .map(|(_, sha)| sha)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(st, _)| *st == StatusCode::CREATED || *st == StatusCode::CONFLICT),
        "{results:?}\n{}",
        s.log()
    );
    let listed = s.get_json("/api/admin/packages").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(&listed["items"][0]["sha256"], winners[0].as_str());
    let served = s
        .http
        .get(s.at("/share/contested.pkg"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        &sha256_hex(&served),
        winners[0],
        "the winner's bytes are served"
    );
    s.eventually(10, "no staging file", || async {
        s.staging_files().is_empty()
    })
    .await;
    assert_clean_log(&s);
}

/// A loser of a filename race has already stored its content when the insert finds
/// the name taken; nothing then removes that blob until the hourly sweep, 10 minutes
/// later at the earliest. Fix belongs in `packages::accept_upload` (queue a `blob_gc`
/// for the content on that conflict, or check the name before committing the file);
/// then drop the `ignore`. (Timing-dependent: it does not reproduce on every run.)
#[tokio::test]
async fn a_lost_filename_race_leaves_no_blob() {
    let s = Arc::new(Server::start().await);
    let results = race_for_one_name(&s, 10).await;
    let winner = results
        .iter()
        .find(|(st, _)| *st == StatusCode::CREATED)
        .map(|(_, sha)| sha.clone())
        .unwrap();
    s.eventually(30, "only the winner's blob", || async {
        let blobs = s.blob_files();
        blobs.len() == 1 && blobs[0].ends_with(&winner)
    })
    .await;
}

/// Two uploads of the same bytes both find no `blobs` row and both insert one: on
/// PostgreSQL and MariaDB the second fails with a duplicate key and the upload answers
/// 500 (SQLite's single writer serialises them). Fix belongs in
/// `db::packages::insert_blob` (insert-or-ignore); then drop the `ignore`.
#[tokio::test]
async fn concurrent_uploads_of_one_content_share_one_blob() {
    let s = Arc::new(Server::start().await);
    let same = Arc::new(bytes(300 * KIB, 999));
    let racers = (0..10).map(|i| {
        let (s, same) = (s.clone(), same.clone());
        tokio::spawn(async move {
            s.upload(&format!("same-{i}.pkg"), same.to_vec(), "Test")
                .await
                .status()
        })
    });
    for st in join_all(racers).await {
        let st = st.unwrap();
        assert_eq!(st, StatusCode::CREATED, "{}", s.log());
    }
    let want = sha256_hex(&same);
    for i in 0..10 {
        let d = s
            .get_json(&format!("/api/admin/packages/same-{i}.pkg"))
            .await;
        assert_eq!(d["sha256"], want);
        assert_eq!(d["chunks"].as_array().unwrap().len(), 1, "same-{i}.pkg");
    }
    assert_eq!(s.blob_files().len(), 1, "{:?}", s.blob_files());
    assert_clean_log(&s);
}
