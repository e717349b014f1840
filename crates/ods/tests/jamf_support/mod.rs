//! What the Jamf tests share: a server that scans every second, instances on the fake
//! Jamf Pro, uploads, the package's Jamf state, and waiting for a record in sync.
#![allow(dead_code)]

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Opts, Server};
use crate::fake_jamf::{CLIENT, FakeJamf, USER};

pub fn sha512_hex(d: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha512::digest(d))
}

pub fn md5_hex(d: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(d))
}

/// A server that scans for out-of-sync records every second.
pub async fn ods(extra: &[(&str, &str)]) -> Server {
    let mut opts = Opts::default();
    opts.env.push(("ODS_JAMF_SCAN_SECS".into(), "1".into()));
    opts.env.push(("ODS_SYNC_INTERVAL".into(), "1".into()));
    for (k, v) in extra {
        opts.env.push((k.to_string(), v.to_string()));
    }
    Server::start_with(opts).await
}

pub fn basic() -> Value {
    json!({"type": "basic", "username": USER.0, "password": USER.1})
}

pub fn oauth() -> Value {
    json!({"type": "oauth", "client_id": CLIENT.0, "client_secret": CLIENT.1})
}

pub async fn add_instance(s: &Server, fake: &FakeJamf, auth: Value, extra: Value) -> Value {
    let mut body = json!({"url": fake.url, "auth": auth, "stage": "Prod"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = s
        .admin(Method::POST, "/api/admin/jamf")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

pub async fn upload(s: &Server, name: &str, data: &[u8], replace: bool) {
    let part = reqwest::multipart::Part::bytes(data.to_vec()).file_name(name.to_string());
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("stage", "Prod");
    let path = if replace {
        "/api/admin/upload?replace=true"
    } else {
        "/api/admin/upload"
    };
    let r = s
        .admin(Method::POST, path)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// The package's Jamf state on its only instance.
pub async fn state(s: &Server, name: &str) -> Value {
    let p = s
        .get_json(&format!("/api/admin/packages/name/{name}"))
        .await;
    p["jamf"][0].clone()
}

pub async fn wait_synced(s: &Server, name: &str, hash: &str, fake: &FakeJamf) -> Value {
    s.eventually(60, &format!("{name} synced"), || async {
        state(s, name).await["state"] == "synced"
            && fake
                .record_by_file(name)
                .is_some_and(|r| r["hashValue"] == hash)
    })
    .await;
    fake.record_by_file(name).unwrap()
}

/// How many reconciles have finished.
pub async fn reconciles_done(s: &Server) -> usize {
    let j = s
        .get_json("/api/admin/jobs?kind=jamf_reconcile&state=done")
        .await;
    j["items"].as_array().unwrap().len()
}

/// Asks for a reconcile and waits until it has finished.
pub async fn reconcile(s: &Server, id: i64) {
    let before = reconciles_done(s).await;
    let r = s
        .admin(Method::POST, &format!("/api/admin/jamf/{id}/reconcile"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    s.eventually(30, "the reconcile to finish", || async {
        reconciles_done(s).await > before
    })
    .await;
}

pub async fn jobs_settled(s: &Server) {
    s.eventually(30, "Jamf jobs to settle", || async {
        let j = s.get_json("/api/admin/jobs?kind=jamf_upsert").await;
        j["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "done" || j["state"] == "dead")
    })
    .await;
}

pub async fn set_about(s: &Server, name: &str) {
    crate::common::mesh::name(s, name, "Prod").await;
}
