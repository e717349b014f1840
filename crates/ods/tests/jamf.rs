//! Jamf Pro package records (JAMF.md §3), end to end: a real `ods` process on the
//! test's database engine against the fake Jamf Pro of `fake_jamf` (JAMF.md §5).
mod common;
mod fake_jamf;
mod jamf_support;

use std::time::Duration;

use common::bytes;
use fake_jamf::{FakeJamf, Fault, USER};
use jamf_support::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn records_are_created_once_updated_keeping_admin_edits_and_drift_is_reported() {
    let fake = FakeJamf::start(Duration::from_secs(600)).await;
    let s = ods(&[]).await;
    let inst = add_instance(&s, &fake, basic(), json!({})).await;
    let id = inst["id"].as_i64().unwrap();
    // Credentials are write-only.
    assert_eq!(inst["auth"], "basic");
    assert_eq!(inst["hash_type"], "SHA_512");
    let listed = s.get_json("/api/admin/jamf").await.to_string();
    assert!(!listed.contains(USER.1), "{listed}");
    assert!(!s.log().contains(USER.1), "the password is logged");

    let v1 = bytes(300_000, 1);
    upload(&s, "app.pkg", &v1, false).await;
    let rec = wait_synced(&s, "app.pkg", &sha512_hex(&v1), &fake).await;
    assert_eq!(rec["hashType"], "SHA_512");
    assert_eq!(rec["packageName"], "app.pkg");
    assert_eq!(rec["categoryId"], "-1");
    assert_eq!(rec["priority"], 10);
    let st = state(&s, "app.pkg").await;
    assert_eq!(st["record_id"], rec["id"]);
    assert_eq!(st["instance_id"], id);
    assert_eq!(fake.calls("POST", "/api/v1/packages").len(), 1);
    // The digest is stored with the package.
    let detail = s.get_json("/api/admin/packages/name/app.pkg").await;
    assert_eq!(detail["sha512"], sha512_hex(&v1));

    // A second pass changes nothing.
    fake.clear_journal();
    reconcile(&s, id).await;
    jobs_settled(&s).await;
    assert!(
        !fake.calls("GET", "/api/v1/packages").is_empty(),
        "the reconcile read the records"
    );
    assert!(
        !fake.calls("GET", "/api/v1/jamf-pro-version").is_empty(),
        "the reconcile checked the version"
    );
    assert!(fake.calls("POST", "/api/v1/packages").is_empty());
    assert!(fake.calls("PUT", "/api/v1/packages").is_empty());
    assert_eq!(fake.records().len(), 1);

    // The admin files the record in Jamf Pro; a new version keeps those edits.
    let rid = rec["id"].as_str().unwrap().to_string();
    fake.edit(
        &rid,
        json!({"categoryId": "7", "notes": "admin notes", "priority": 3}),
    );
    let v2 = bytes(200_000, 2);
    fake.clear_journal();
    upload(&s, "app.pkg", &v2, true).await;
    let rec = wait_synced(&s, "app.pkg", &sha512_hex(&v2), &fake).await;
    assert_eq!(rec["id"], rid.as_str());
    assert_eq!(rec["categoryId"], "7");
    assert_eq!(rec["notes"], "admin notes");
    assert_eq!(rec["priority"], 3);
    assert_eq!(fake.records().len(), 1);
    let puts = fake.calls("PUT", "/api/v1/packages/");
    assert_eq!(puts.len(), 1, "{puts:?}");
    for f in ["id", "indexed", "cloudTransferStatus", "size"] {
        assert!(
            puts[0].body.get(f).is_none(),
            "{f} sent: {:?}",
            puts[0].body
        );
    }
    assert!(fake.calls("POST", "/api/v1/packages").is_empty());

    // Drift: a record without a package here, and one whose hash is not ours.
    fake.add(json!({"packageName": "ghost", "fileName": "ghost.pkg", "hashType": "MD5", "hashValue": "00"}));
    let other = bytes(5000, 3);
    let part = reqwest::multipart::Part::bytes(other.clone()).file_name("test-only.pkg");
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("stage", "Test");
    let r = s
        .admin(Method::POST, "/api/admin/upload")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    fake.add(json!({"packageName": "t", "fileName": "test-only.pkg", "hashType": "MD5", "hashValue": "ffff"}));
    reconcile(&s, id).await;
    let drift = s.get_json(&format!("/api/admin/jamf/{id}/drift")).await;
    let items = drift["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{drift}");
    assert!(
        items
            .iter()
            .any(|d| d["file_name"] == "ghost.pkg" && d["problem"] == "file_missing")
    );
    let differs = items
        .iter()
        .find(|d| d["file_name"] == "test-only.pkg")
        .unwrap();
    assert_eq!(differs["problem"], "hash_differs");
    assert!(
        differs["detail"]
            .as_str()
            .unwrap()
            .contains(&md5_hex(&other))
    );
    // A Test package gets no record from a Prod instance.
    assert_eq!(
        fake.record_by_file("test-only.pkg").unwrap()["hashValue"],
        "ffff"
    );
    // Every call was a visible job.
    let jobs = s.get_json("/api/admin/jobs?kind=jamf_reconcile").await;
    assert!(!jobs["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn oauth_duplicate_field_and_transient_failures_are_handled() {
    let fake = FakeJamf::start(Duration::from_secs(600)).await;
    let s = ods(&[]).await;
    add_instance(&s, &fake, oauth(), json!({"hash_type": "MD5"})).await;
    // A competitor creates the record between our query and our create.
    fake.inject(Method::POST, "/api/v1/packages", Fault::RaceCreate);
    let d = bytes(70_000, 4);
    upload(&s, "raced.pkg", &d, false).await;
    let rec = wait_synced(&s, "raced.pkg", &md5_hex(&d), &fake).await;
    assert_eq!(rec["hashType"], "MD5");
    assert_eq!(fake.records().len(), 1, "{:?}", fake.records());
    let posts = fake.calls("POST", "/api/v1/packages");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].status, 400);
    assert_eq!(fake.calls("PUT", "/api/v1/packages/").len(), 1);
    assert!(!fake.calls("POST", "/api/oauth/token").is_empty());
    assert!(fake.calls("POST", "/api/v1/auth/token").is_empty());

    // 429 (with Retry-After), 500 and 503 are retried; a slow answer is waited for.
    fake.clear_journal();
    fake.inject(Method::GET, "/api/v1/packages", Fault::Status(429, Some(1)));
    fake.inject(Method::GET, "/api/v1/packages", Fault::Status(500, None));
    fake.inject(Method::POST, "/api/v1/packages", Fault::Status(503, None));
    fake.inject(
        Method::POST,
        "/api/v1/packages",
        Fault::Slow(Duration::from_secs(2)),
    );
    let e = bytes(9_000, 5);
    upload(&s, "retried.pkg", &e, false).await;
    wait_synced(&s, "retried.pkg", &md5_hex(&e), &fake).await;
    let statuses: Vec<u16> = fake
        .journal()
        .iter()
        .filter(|e| e.path.starts_with("/api/v1/packages"))
        .map(|e| e.status)
        .collect();
    for code in [429, 500, 503] {
        assert!(statuses.contains(&code), "{statuses:?}");
    }
    assert_eq!(
        fake.records()
            .iter()
            .filter(|r| r["fileName"] == "retried.pkg")
            .count(),
        1
    );
}

#[tokio::test]
async fn tokens_are_renewed_before_expiry_and_after_a_401() {
    let fake = FakeJamf::start(Duration::from_secs(7)).await;
    let s = ods(&[]).await;
    add_instance(&s, &fake, basic(), json!({})).await;
    let a = bytes(1000, 6);
    upload(&s, "a.pkg", &a, false).await;
    wait_synced(&s, "a.pkg", &sha512_hex(&a), &fake).await;
    let tokens = |f: &FakeJamf| f.calls("POST", "/api/v1/auth/token").len();
    let first = tokens(&fake);
    assert!(first >= 1);
    // The token has less than the renewal margin left: a new one is fetched first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    fake.clear_journal();
    let b = bytes(1000, 7);
    upload(&s, "b.pkg", &b, false).await;
    wait_synced(&s, "b.pkg", &sha512_hex(&b), &fake).await;
    assert!(tokens(&fake) >= 1, "{:?}", fake.journal());
    assert!(
        fake.journal().iter().all(|e| e.status != 401),
        "renewed before expiry: {:?}",
        fake.journal()
    );

    // A token that stops working mid-run: one 401, a new token, and the call again.
    fake.set_token_lifetime(Duration::from_secs(600));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c0 = bytes(1000, 8);
    upload(&s, "c0.pkg", &c0, false).await;
    wait_synced(&s, "c0.pkg", &sha512_hex(&c0), &fake).await;
    fake.clear_journal();
    fake.expire_tokens();
    let c = bytes(1000, 9);
    upload(&s, "c.pkg", &c, false).await;
    wait_synced(&s, "c.pkg", &sha512_hex(&c), &fake).await;
    let j = fake.journal();
    let first_401 = j.iter().position(|e| e.status == 401).expect("a 401");
    assert!(
        j[first_401..]
            .iter()
            .any(|e| e.path == "/api/v1/auth/token" && e.status == 200),
        "{j:?}"
    );
    assert_eq!(j.iter().filter(|e| e.status == 401).count(), 1, "{j:?}");
}

#[tokio::test]
async fn webhook_receiver_only_schedules_a_reconcile() {
    let fake = FakeJamf::start(Duration::from_secs(600)).await;
    let s = ods(&[("ODS_JAMF_WEBHOOK_SECRET", "hook-secret-1")]).await;
    let id = add_instance(&s, &fake, basic(), json!({})).await["id"]
        .as_i64()
        .unwrap();
    let url = s.at("/api/integrations/jamf/webhook");
    let event = json!({"webhook": {"id": 1, "name": "ods", "webhookEvent": "RestAPIOperation", "eventTimestamp": 1}, "event": {"operationSuccessful": true}});
    let r = s.http.post(&url).json(&event).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .post(&url)
        .basic_auth("jamf", Some("wrong"))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .post(&url)
        .basic_auth("jamf", Some("hook-secret-1"))
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.eventually(30, "the first reconcile", || async {
        reconciles_done(&s).await >= 1
    })
    .await;
    let before = reconciles_done(&s).await;
    fake.clear_journal();
    // Unknown, duplicate and out-of-order events are all accepted.
    for (i, kind) in ["SomethingNew", "RestAPIOperation", "RestAPIOperation"]
        .iter()
        .enumerate()
    {
        let body = json!({"webhook": {"id": 9, "webhookEvent": kind, "eventTimestamp": 100 - i}, "event": {}});
        let req = s.http.post(&url).json(&body);
        let req = if i == 1 {
            req.header("X-ODS-Webhook-Token", "hook-secret-1")
        } else {
            req.basic_auth("any", Some("hook-secret-1"))
        };
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["reconciles_scheduled"], 1);
    }
    s.eventually(30, "the scheduled reconcile", || async {
        reconciles_done(&s).await > before
    })
    .await;
    assert!(!s.get_json(&format!("/api/admin/jamf/{id}")).await["last_reconcile"].is_null());
    assert!(!fake.calls("GET", "/api/v1/packages").is_empty());
}

#[tokio::test]
async fn receiver_is_off_without_a_secret_and_bad_instances_are_refused() {
    let s = ods(&[]).await;
    let r = s
        .http
        .post(s.at("/api/integrations/jamf/webhook"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for bad in [
        json!({"url": "ftp://x", "auth": basic(), "stage": "Prod"}),
        json!({"url": "http://x", "auth": {"type": "basic", "username": "u"}, "stage": "Prod"}),
        json!({"url": "http://x", "auth": basic(), "stage": "Live"}),
        json!({"url": "http://x", "auth": basic(), "stage": "Prod", "hash_type": "SHA1"}),
        json!({"url": "http://x", "auth": basic(), "stage": "Prod", "extra": 1}),
    ] {
        let r = s
            .admin(Method::POST, "/api/admin/jamf")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(
        s.get_json("/api/admin/jamf").await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn sha3_records_and_only_allowed_hosts_are_called() {
    let fake = FakeJamf::start(Duration::from_secs(600)).await;
    let port = fake.url.rsplit(':').next().unwrap().to_string();
    let allowed = format!("127.0.0.1:{port}");
    let s = ods(&[("ODS_JAMF_ALLOWED_HOSTS", allowed.as_str())]).await;
    add_instance(
        &s,
        &fake,
        basic(),
        json!({"hash_type": "SHA3_512", "name": "allowed"}),
    )
    .await;
    // The same Jamf Pro under a name the allow-list does not have: never called.
    let r = s
        .admin(Method::POST, "/api/admin/jamf")
        .json(&json!({"name": "elsewhere", "url": format!("http://localhost:{port}"), "auth": basic(), "stage": "Prod"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let d = bytes(50_000, 12);
    upload(&s, "sha3.pkg", &d, false).await;
    let want = {
        use sha3::Digest;
        hex::encode(sha3::Sha3_512::digest(&d))
    };
    s.eventually(30, "both instances to settle", || async {
        let p = s.get_json("/api/admin/packages/name/sha3.pkg").await;
        let states: Vec<&str> = p["jamf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["state"].as_str().unwrap())
            .collect();
        states == ["synced", "failed"]
    })
    .await;
    let rec = fake.record_by_file("sha3.pkg").unwrap();
    assert_eq!(rec["hashType"], "SHA3_512");
    assert_eq!(rec["hashValue"], want.as_str());
    assert_eq!(fake.calls("POST", "/api/v1/packages").len(), 1);
    let p = s.get_json("/api/admin/packages/name/sha3.pkg").await;
    assert_eq!(p["jamf"][1]["instance_name"], "elsewhere");
    assert!(
        p["jamf"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("ODS_JAMF_ALLOWED_HOSTS"),
        "{p}"
    );
}
