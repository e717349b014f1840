//! Jamf Pro records across servers and crashes: no record before the package is
//! verified, waiting until every server of the stage holds it, and a kill -9 in the
//! middle of a create (real `ods` processes against the fake Jamf Pro).
mod common;
mod fake_jamf;
mod jamf_support;

use std::time::{Duration, Instant};

use common::{bytes, register};
use fake_jamf::{FakeJamf, Fault};
use jamf_support::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn no_record_before_the_package_is_verified() {
    // B takes the package from A, slowly; B's instance must not hear of it before
    // B has verified every byte.
    let fake = FakeJamf::start(Duration::from_secs(600)).await;
    let a = ods(&[]).await;
    let b = ods(&[]).await;
    set_about(&a, "A").await;
    set_about(&b, "B").await;
    register(&b, &a).await;
    common::mesh::rate_limit_first_peer(&b, 1024 * 1024).await;
    add_instance(&b, &fake, basic(), json!({})).await;
    let d = bytes(6 * 1024 * 1024, 10);
    upload(&a, "slow.pkg", &d, false).await;
    b.eventually(30, "B to start receiving", || async {
        b.get_json("/api/admin/packages").await["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["filename"] == "slow.pkg")
    })
    .await;
    let mut seen_downloading = 0;
    loop {
        let p = b.get_json("/api/admin/packages/name/slow.pkg").await;
        if p["status"] != "Downloading" {
            break;
        }
        seen_downloading += 1;
        assert!(
            fake.record_by_file("slow.pkg").is_none(),
            "a record before verification"
        );
        let st = &p["jamf"][0];
        assert_eq!(st["state"], "pending", "{st}");
        assert!(
            st["reason"].as_str().unwrap().contains("not verified"),
            "{st}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        seen_downloading >= 3,
        "the transfer was too quick to observe"
    );
    wait_synced(&b, "slow.pkg", &sha512_hex(&d), &fake).await;
}

#[tokio::test]
async fn wait_for_all_servers_publishes_only_once_every_server_of_the_stage_has_it() {
    let fake = FakeJamf::start(Duration::from_secs(600)).await;
    let a = ods(&[]).await;
    let mut b = ods(&[]).await;
    set_about(&a, "A").await;
    set_about(&b, "B").await;
    register(&a, &b).await;
    add_instance(&a, &fake, basic(), json!({"wait_for_all_servers": true})).await;
    b.kill9();
    let d = bytes(2_500_000, 11);
    upload(&a, "mesh.pkg", &d, false).await;
    let t = Instant::now();
    a.eventually(30, "A to say it waits for B", || async {
        state(&a, "mesh.pkg").await["reason"]
            .as_str()
            .is_some_and(|r| r.contains("waiting") && r.contains('B'))
    })
    .await;
    while t.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(fake.record_by_file("mesh.pkg").is_none());
    assert_eq!(state(&a, "mesh.pkg").await["state"], "pending");
    b.restart().await;
    b.eventually(60, "B to hold mesh.pkg", || async {
        let l = b.get_json("/api/admin/packages").await;
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["filename"] == "mesh.pkg" && p["status"] == "Public")
    })
    .await;
    wait_synced(&a, "mesh.pkg", &sha512_hex(&d), &fake).await;
    // B has no instance: only A published.
    assert_eq!(fake.calls("POST", "/api/v1/packages").len(), 1);
}

#[tokio::test]
async fn a_crash_mid_upsert_loses_nothing_and_duplicates_nothing() {
    let fake = FakeJamf::start(Duration::from_secs(600)).await;
    let mut s = ods(&[]).await;
    // The create is slow: the server is killed while it waits for the answer (which
    // the fake still acts on, as a real Jamf Pro would).
    fake.inject(
        Method::POST,
        "/api/v1/packages",
        Fault::Slow(Duration::from_secs(3)),
    );
    add_instance(&s, &fake, basic(), json!({})).await;
    let d = bytes(30_000, 13);
    upload(&s, "crash.pkg", &d, false).await;
    let t = Instant::now();
    while fake.arrived("POST", "/api/v1/packages") == 0 {
        assert!(t.elapsed() < Duration::from_secs(20), "no create arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        fake.record_by_file("crash.pkg").is_none(),
        "killed before the answer"
    );
    s.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    s.restart().await;
    wait_synced(&s, "crash.pkg", &sha512_hex(&d), &fake).await;
    let same: Vec<Value> = fake
        .records()
        .into_iter()
        .filter(|r| r["fileName"] == "crash.pkg")
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
    // The restarted server found the record the killed one had asked for.
    assert_eq!(fake.arrived("POST", "/api/v1/packages"), 1);
    assert!(s.log().contains("Unchanged"), "{}", s.log());
}
