//! Small steps of the sync tests, written once: naming a server (its About: name, its
//! own URL, stage), finding a package in its list, and slowing its link to a peer.

use reqwest::Method;
use serde_json::{Value, json};

use super::Server;

/// Sets `s`'s About to `name`, its own URL and `stage`.
pub async fn name(s: &Server, name: &str, stage: &str) {
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({"name": name, "url": s.url, "stage": stage}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// `filename`'s row in `s`'s package list (the first 200), if it is there.
pub async fn package(s: &Server, filename: &str) -> Option<Value> {
    let list = s.get_json("/api/admin/packages?limit=200").await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["filename"] == filename)
        .cloned()
}

/// Limits how fast `s` fetches from its first registered peer, in bytes per second.
pub async fn rate_limit_first_peer(s: &Server, bytes_per_sec: u64) {
    let peers = s.get_json("/api/admin/registered_ods").await;
    let peer_id = peers["items"][0]["id"].as_i64().unwrap();
    let r = s
        .admin(
            Method::PATCH,
            &format!("/api/admin/registered_ods/{peer_id}"),
        )
        .json(&json!({"rate_limit": bytes_per_sec}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
