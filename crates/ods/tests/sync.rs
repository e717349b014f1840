//! The ODS network, end to end: several real `ods` processes on loopback (each with its
//! own data directory and database) registering with each other and syncing.
mod common;

use std::time::{Duration, Instant};

use common::mesh::package;
use common::{Server, bytes, register, sha256_hex};
use reqwest::Method;
use serde_json::{Value, json};

/// A server with a fast anti-entropy timer, named and staged, with its URL set.
async fn node(name: &str, stage: &str) -> Server {
    node_with(name, stage, false, &[]).await
}

async fn node_with(name: &str, stage: &str, firewalled: bool, env: &[(&str, &str)]) -> Server {
    let mut opts = common::Opts::default();
    opts.env.push(("ODS_SYNC_INTERVAL".into(), "2".into()));
    opts.env
        .push(("ODS_UNREACHABLE_AFTER_SECS".into(), "1".into()));
    for (k, v) in env {
        opts.env.push((k.to_string(), v.to_string()));
    }
    let s = Server::start_with(opts).await;
    // A firewalled server publishes no URL: nobody can call it.
    let url = if firewalled {
        Value::Null
    } else {
        json!(s.url)
    };
    set_about(
        &s,
        json!({"name": name, "url": url, "stage": stage, "firewalled_mode": firewalled}),
    )
    .await;
    s
}

async fn set_about(s: &Server, body: Value) {
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn about(s: &Server) -> Value {
    s.get_json("/api/admin/about").await
}

async fn wait_public(s: &Server, filename: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(p) = package(s, filename).await
            && p["status"] == "Public"
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{filename} not Public in {secs} s\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_gone(s: &Server, filename: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while package(s, filename).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "{filename} still on the server after {secs} s\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn download(s: &Server, filename: &str) -> Vec<u8> {
    let r = s
        .http
        .get(s.at(&format!("/share/{filename}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "download {filename}");
    r.bytes().await.unwrap().to_vec()
}

async fn stats(s: &Server) -> Value {
    s.get_json("/api/admin/sync").await
}

async fn events(s: &Server, kind: &str) -> Vec<Value> {
    let v = s.get_json(&format!("/api/admin/events?kind={kind}")).await;
    v["items"].as_array().unwrap().clone()
}

async fn set_stage(s: &Server, filename: &str, stage: &str) {
    let r = s
        .admin(Method::PATCH, &format!("/api/admin/packages/{filename}"))
        .json(&json!({"stage": stage}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn delete(s: &Server, filename: &str) {
    let r = s
        .admin(Method::DELETE, &format!("/api/admin/packages/{filename}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn registration_is_mutual_checked_and_revocable() {
    let a = node("A", "Prod").await;
    let b = node("B", "Prod").await;
    let bi = about(&b).await;
    let post = |body: Value| {
        a.admin(Method::POST, "/api/admin/register")
            .json(&body)
            .send()
    };

    // Wrong key, wrong ISS, unreachable URL, ourselves: 4xx and nothing stored anywhere.
    let wrong_key = post(json!({"url": b.url, "iss_id": bi["iss"], "key": "bm90IHRoZSBrZXk="}))
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 400);
    assert_eq!(
        wrong_key.json::<Value>().await.unwrap()["error"]["code"],
        "registration_refused"
    );
    let wrong_iss =
        post(json!({"url": b.url, "iss_id": "0123456789abcdef0123456789abcdef", "key": bi["key"]}))
            .await
            .unwrap();
    assert_eq!(wrong_iss.status(), 400);
    let unreachable =
        post(json!({"url": "http://127.0.0.1:9", "iss_id": bi["iss"], "key": bi["key"]}))
            .await
            .unwrap();
    assert_eq!(unreachable.status(), 400);
    assert_eq!(
        unreachable.json::<Value>().await.unwrap()["error"]["code"],
        "peer_unreachable"
    );
    let ai = about(&a).await;
    let myself = post(json!({"url": a.url, "iss_id": ai["iss"], "key": ai["key"]}))
        .await
        .unwrap();
    assert_eq!(myself.status(), 400);
    // Plain http to a non-loopback address is refused before any connection is made.
    let insecure = post(json!({"url": "http://192.0.2.10", "iss_id": bi["iss"], "key": bi["key"]}))
        .await
        .unwrap();
    assert_eq!(insecure.status(), 400);
    assert_eq!(
        insecure.json::<Value>().await.unwrap()["error"]["code"],
        "insecure_url"
    );
    let missing = post(json!({"url": b.url})).await.unwrap();
    assert_eq!(missing.status(), 400);
    for s in [&a, &b] {
        assert_eq!(
            s.get_json("/api/admin/registered_ods").await["items"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
    }

    register(&a, &b).await;
    let again = post(json!({"url": b.url, "iss_id": bi["iss"], "key": bi["key"]}))
        .await
        .unwrap();
    assert_eq!(again.status(), 409, "already registered");
    let on_a = s_items(&a).await;
    let on_b = s_items(&b).await;
    assert_eq!(on_a.len(), 1);
    assert_eq!(on_b.len(), 1);
    assert_eq!(on_a[0]["iss"], bi["iss"]);
    assert_eq!(on_a[0]["name"], "B");
    assert_eq!(on_b[0]["iss"], ai["iss"]);
    for field in [
        "firewalled_mode",
        "id",
        "name",
        "registered_on",
        "registered_on_ts",
        "stage",
        "url",
    ] {
        assert!(
            on_a[0].get(field).is_some(),
            "registered_ods item lacks {field}"
        );
    }
    assert!(!events(&a, "ods.registered").await.is_empty());
    assert!(!events(&b, "ods.registered").await.is_empty());

    // The registration key is not the link secret: rotating nothing, a third party with
    // B's key still cannot act as A (checked in peer_requests_are_authenticated).
    // Unregistering removes the link on both sides.
    let id = on_a[0]["id"].as_i64().unwrap();
    let r = a
        .admin(Method::DELETE, &format!("/api/admin/registered_ods/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["peer_notified"], true);
    assert!(s_items(&a).await.is_empty());
    assert!(s_items(&b).await.is_empty());
}

async fn s_items(s: &Server) -> Vec<Value> {
    s.get_json("/api/admin/registered_ods").await["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn peer_requests_are_authenticated() {
    use ods::sync::auth::{ISS_HEADER, SIG_HEADER, sign};
    let b = node("B", "Prod").await;
    let bi = about(&b).await;
    let biss = bi["iss"].as_str().unwrap();
    let key = bi["key"].as_str().unwrap();
    let now = ods::model::now_unix();
    let fake_iss = "abcdefabcdefabcdefabcdefabcdef01";
    let body = serde_json::to_vec(&json!({"iss": fake_iss, "name": "X", "url": null, "stage": "Prod", "firewalled_mode": true})).unwrap();
    let send = |sig: String, body: Vec<u8>| {
        b.http
            .post(b.at("/api/ods/register"))
            .header(ISS_HEADER, fake_iss)
            .header(SIG_HEADER, sig)
            .body(body)
            .send()
    };
    // Unsigned, forged, expired, wrong audience: 401, nothing registered.
    let unsigned = b
        .http
        .get(b.at("/api/ods/catalog?since=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let forged = send(
        format!("t={now},n={},s={}", "a".repeat(32), "0".repeat(64)),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(forged.status(), 401);
    let expired = send(
        sign(
            key.as_bytes(),
            fake_iss,
            biss,
            "POST",
            "/api/ods/register",
            &body,
            now - 3600,
        ),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(expired.status(), 401);
    let misaddressed = send(
        sign(
            key.as_bytes(),
            fake_iss,
            "ffffffffffffffffffffffffffffffff",
            "POST",
            "/api/ods/register",
            &body,
            now,
        ),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(misaddressed.status(), 401);
    let other_body = send(
        sign(
            key.as_bytes(),
            fake_iss,
            biss,
            "POST",
            "/api/ods/register",
            b"{}",
            now,
        ),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(other_body.status(), 401, "the signature covers the body");
    assert!(s_items(&b).await.is_empty());
    assert_eq!(
        forged.json::<Value>().await.unwrap()["error"]["code"],
        "peer_auth_failed"
    );

    // A valid one works once; the same request replayed is refused.
    let good = sign(
        key.as_bytes(),
        fake_iss,
        biss,
        "POST",
        "/api/ods/register",
        &body,
        now,
    );
    let first = send(good.clone(), body.clone()).await.unwrap();
    assert_eq!(first.status(), 200);
    let welcome: Value = first.json().await.unwrap();
    assert_eq!(welcome["iss"], biss);
    let pair = welcome["pair_secret"].as_str().unwrap().to_string();
    assert_ne!(
        pair, key,
        "links use their own secret, not the registration key"
    );
    let replay = send(good, body.clone()).await.unwrap();
    assert_eq!(replay.status(), 401);
    // Whoever holds the shared registration key cannot re-key an existing link (and
    // so impersonate that server): a fresh, validly signed registration is refused.
    let takeover = sign(
        key.as_bytes(),
        fake_iss,
        biss,
        "POST",
        "/api/ods/register",
        &body,
        now,
    );
    let r = send(takeover, body.clone()).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "already_registered"
    );

    // Peer calls need the pair secret; the registration key no longer works for them.
    let path = "/api/ods/catalog?since=0";
    let with_key = b
        .http
        .get(b.at(path))
        .header(ISS_HEADER, fake_iss)
        .header(
            SIG_HEADER,
            sign(key.as_bytes(), fake_iss, biss, "GET", path, b"", now),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), 401);
    let with_pair = b
        .http
        .get(b.at(path))
        .header(ISS_HEADER, fake_iss)
        .header(
            SIG_HEADER,
            sign(pair.as_bytes(), fake_iss, biss, "GET", path, b"", now),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(with_pair.status(), 200);
    let page: Value = with_pair.json().await.unwrap();
    assert_eq!(page["identity"]["iss"], biss);
}

#[tokio::test]
async fn chain_syncs_uploads_deletions_and_promotions() {
    let a = node("A", "Dev").await;
    let b = node("B", "Dev").await;
    let c = node("C", "Dev").await;
    register(&a, &b).await;
    register(&c, &b).await;

    let data = bytes(3 * 1024 * 1024 + 777, 1);
    let up = a.upload("chain.pkg", data.clone(), "Dev").await;
    assert_eq!(up.status(), 201);
    let origin: Value = up.json().await.unwrap();
    let on_c = wait_public(&c, "chain.pkg", 30).await;
    assert_eq!(on_c["uuid"], origin["uuid"], "the uuid is global");
    assert_eq!(on_c["sha256"], sha256_hex(&data));
    assert_eq!(download(&c, "chain.pkg").await, data);
    assert_eq!(
        wait_public(&b, "chain.pkg", 10).await["sha256"],
        sha256_hex(&data)
    );

    // Upload on the far end flows back.
    let back = bytes(100_000, 2);
    assert_eq!(
        c.upload("back.pkg", back.clone(), "Test").await.status(),
        201
    );
    wait_public(&a, "back.pkg", 30).await;
    assert_eq!(download(&a, "back.pkg").await, back);

    // A promotion reaches everyone.
    set_stage(&a, "chain.pkg", "Prod").await;
    for s in [&b, &c] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while package(s, "chain.pkg").await.unwrap()["stage"] != "Prod" {
            assert!(Instant::now() < deadline, "promotion did not arrive");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A deletion reaches everyone and the bytes go away.
    delete(&c, "chain.pkg").await;
    wait_gone(&a, "chain.pkg", 20).await;
    wait_gone(&b, "chain.pkg", 20).await;
    let r = a.http.get(a.at("/share/chain.pkg")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(!events(&a, "package.deleted").await.is_empty());
}

#[tokio::test]
async fn full_mesh_of_five_converges_and_fetches_once() {
    let mut nodes = Vec::new();
    for i in 0..5 {
        nodes.push(node(&format!("N{i}"), "Prod").await);
    }
    for i in 0..5 {
        for j in (i + 1)..5 {
            register(&nodes[i], &nodes[j]).await;
        }
    }
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("mesh{i}.pkg"),
                bytes(1024 * 1024 + i * 1000, 10 + i as u64),
            )
        })
        .collect();
    for (i, (name, data)) in files.iter().enumerate() {
        assert_eq!(
            nodes[i].upload(name, data.clone(), "Prod").await.status(),
            201
        );
    }
    for n in &nodes {
        for (name, data) in &files {
            let p = wait_public(n, name, 60).await;
            assert_eq!(p["sha256"], sha256_hex(data));
        }
    }
    // Every server fetched each of the four others' packages exactly once.
    let chunks = |d: &Vec<u8>| d.len().div_ceil(1024 * 1024) as u64;
    for (i, n) in nodes.iter().enumerate() {
        let st = stats(n).await;
        let expected: u64 = files
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (_, d))| chunks(d))
            .sum();
        assert_eq!(
            st["chunks_fetched"].as_u64().unwrap(),
            expected,
            "each foreign chunk fetched once: {st}"
        );
    }
}

#[tokio::test]
async fn stages_decide_what_each_server_holds() {
    let dev = node("Dev", "Dev").await;
    let test = node("Test", "Test").await;
    let prod = node("Prod", "Prod").await;
    register(&test, &dev).await;
    register(&prod, &dev).await;
    register(&prod, &test).await;

    for (name, stage) in [("d.pkg", "Dev"), ("t.pkg", "Test"), ("p.pkg", "Prod")] {
        assert_eq!(
            dev.upload(name, bytes(50_000, name.len() as u64), stage)
                .await
                .status(),
            201
        );
    }
    wait_public(&prod, "p.pkg", 30).await;
    wait_public(&test, "p.pkg", 30).await;
    wait_public(&test, "t.pkg", 30).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a full anti-entropy round more
    assert!(
        package(&prod, "t.pkg").await.is_none(),
        "Prod must not hold a Test package"
    );
    assert!(package(&prod, "d.pkg").await.is_none());
    assert!(
        package(&test, "d.pkg").await.is_none(),
        "Test must not hold a Dev package"
    );

    // Promotion Test -> Prod makes it flow to Prod; demotion withdraws it again.
    set_stage(&dev, "t.pkg", "Prod").await;
    wait_public(&prod, "t.pkg", 30).await;
    set_stage(&dev, "t.pkg", "Test").await;
    wait_gone(&prod, "t.pkg", 30).await;
    assert!(
        package(&test, "t.pkg").await.is_some(),
        "Test still holds it"
    );

    // A server changing its own stage: Prod becomes Dev and takes everything.
    set_about(&prod, json!({"stage": "Dev"})).await;
    for f in ["d.pkg", "t.pkg", "p.pkg"] {
        wait_public(&prod, f, 30).await;
    }
    // And Test becomes Prod: it drops the Test package.
    set_about(&test, json!({"stage": "Prod"})).await;
    wait_gone(&test, "t.pkg", 30).await;
    assert!(package(&test, "p.pkg").await.is_some());
}

#[tokio::test]
async fn firewalled_server_receives_and_relays_without_inbound_calls() {
    let a = node("A", "Prod").await;
    let f = node_with("F", "Prod", true, &[]).await;
    let c = node("C", "Prod").await;
    // F registers with both; nobody can register with F (it has no URL).
    register(&f, &a).await;
    register(&f, &c).await;
    assert_eq!(s_items(&a).await[0]["firewalled_mode"], true);

    let data = bytes(2 * 1024 * 1024 + 5, 7);
    assert_eq!(
        a.upload("relay.pkg", data.clone(), "Prod").await.status(),
        201
    );
    wait_public(&f, "relay.pkg", 30).await;
    let on_c = wait_public(&c, "relay.pkg", 30).await;
    assert_eq!(on_c["sha256"], sha256_hex(&data));
    assert_eq!(download(&c, "relay.pkg").await, data);

    // F's own upload reaches A and C.
    let own = bytes(1_500_000, 8);
    assert_eq!(
        f.upload("from-f.pkg", own.clone(), "Prod").await.status(),
        201
    );
    assert_eq!(
        download(
            &a,
            wait_public(&a, "from-f.pkg", 30).await["filename"]
                .as_str()
                .unwrap()
        )
        .await,
        own
    );
    wait_public(&c, "from-f.pkg", 30).await;
    // A deletion made on F reaches the others too.
    delete(&f, "from-f.pkg").await;
    wait_gone(&a, "from-f.pkg", 30).await;

    assert_eq!(
        stats(&f).await["peer_requests"],
        0,
        "nobody called the firewalled server"
    );
    assert!(stats(&a).await["peer_requests"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn offline_server_catches_up_and_deletions_stay_deleted() {
    let a = node("A", "Prod").await;
    let mut b = node("B", "Prod").await;
    register(&a, &b).await;
    assert_eq!(
        a.upload("keep.pkg", bytes(10_000, 1), "Prod")
            .await
            .status(),
        201
    );
    assert_eq!(
        a.upload("doomed.pkg", bytes(10_000, 2), "Prod")
            .await
            .status(),
        201
    );
    wait_public(&b, "doomed.pkg", 30).await;
    wait_public(&b, "keep.pkg", 30).await;

    b.kill9();
    delete(&a, "doomed.pkg").await;
    let later = bytes(1_200_000, 3);
    assert_eq!(
        a.upload("later.pkg", later.clone(), "Prod").await.status(),
        201
    );
    // A keeps trying B and records it as unreachable.
    a.eventually(30, "A to notice B is down", || async {
        s_items(&a).await[0]["status"] == "unreachable"
    })
    .await;
    a.eventually(30, "ods.unreachable once B was down a second", || async {
        !events(&a, "ods.unreachable").await.is_empty()
    })
    .await;

    b.restart().await;
    assert_eq!(
        download(
            &b,
            wait_public(&b, "later.pkg", 30).await["filename"]
                .as_str()
                .unwrap()
        )
        .await,
        later
    );
    wait_gone(&b, "doomed.pkg", 30).await;
    a.eventually(30, "A to see B again", || async {
        s_items(&a).await[0]["status"] == "ok"
    })
    .await;
    // A few more rounds: the tombstone keeps the deleted package from coming back.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(package(&a, "doomed.pkg").await.is_none());
    assert!(package(&b, "doomed.pkg").await.is_none());
    assert!(package(&b, "keep.pkg").await.is_some());
}

#[tokio::test]
async fn same_filename_on_two_servers_converges_to_the_later_upload() {
    let a = node("A", "Prod").await;
    let b = node("B", "Prod").await;
    let first = bytes(70_000, 100);
    let second = bytes(80_000, 200);
    assert_eq!(a.upload("same.pkg", first, "Prod").await.status(), 201);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        b.upload("same.pkg", second.clone(), "Prod").await.status(),
        201
    );
    register(&a, &b).await;
    // The later upload (B's) wins on both.
    a.eventually(30, "A to take B's version", || async {
        package(&a, "same.pkg")
            .await
            .is_some_and(|p| p["sha256"] == sha256_hex(&second) && p["status"] == "Public")
    })
    .await;
    let pa = package(&a, "same.pkg").await.unwrap();
    let pb = package(&b, "same.pkg").await.unwrap();
    assert_eq!(pa["uuid"], pb["uuid"]);
    assert_eq!(download(&a, "same.pkg").await, second);
    let conflicts = [
        events(&a, "package.conflict").await,
        events(&b, "package.conflict").await,
    ]
    .concat();
    assert!(!conflicts.is_empty(), "a package.conflict event is raised");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        a.get_json("/api/admin/packages").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        b.get_json("/api/admin/packages").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn corrupt_source_never_makes_a_package_public() {
    let a = node("A", "Prod").await;
    let data = bytes(3 * 1024 * 1024, 42);
    let up: Value = a
        .upload("bad.pkg", data.clone(), "Prod")
        .await
        .json()
        .await
        .unwrap();
    // Damage A's stored copy behind its back (a bad disk).
    let sha = up["sha256"].as_str().unwrap();
    let path = a.data_dir.join("blobs").join(&sha[..2]).join(sha);
    let mut disk = std::fs::read(&path).unwrap();
    disk[1024 * 1024 + 10] ^= 0xff;
    std::fs::write(&path, &disk).unwrap();

    let b = node("B", "Prod").await;
    register(&b, &a).await;
    b.eventually(30, "B to try and reject the bad chunk", || async {
        stats(&b).await["chunks_rejected"].as_u64().unwrap() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = package(&b, "bad.pkg").await.expect("B knows the package");
    assert_ne!(p["status"], "Public", "never Public with wrong bytes");
    assert_eq!(
        b.http
            .get(b.at("/share/bad.pkg"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // A healthy second source: B completes from it, with the right bytes.
    let c = node("C", "Prod").await;
    // C gets the good bytes directly (same file, same uuid is not needed: by content).
    register(&b, &c).await;
    assert_eq!(
        c.upload("other-name.pkg", data.clone(), "Prod")
            .await
            .status(),
        201
    );
    // C does not have bad.pkg's uuid yet; it pulls it from B's catalog and fetches
    // from A (corrupt) or reuses its own identical content.
    register(&c, &a).await;
    let on_c = wait_public(&c, "bad.pkg", 40).await;
    assert_eq!(on_c["sha256"], sha256_hex(&data));
    let on_b = wait_public(&b, "bad.pkg", 60).await;
    assert_eq!(on_b["sha256"], sha256_hex(&data));
    assert_eq!(download(&b, "bad.pkg").await, data);
}

#[tokio::test]
async fn killed_receiver_resumes_with_only_the_missing_chunks() {
    let a = node("A", "Prod").await;
    let mut b = node("B", "Prod").await;
    let size = 48 * 1024 * 1024;
    let data = bytes(size, 9);
    assert_eq!(
        a.upload("big.pkg", data.clone(), "Prod").await.status(),
        201
    );
    register(&b, &a).await;
    // Slow B's fetching from A to 8 MiB/s so the kill lands mid-transfer.
    common::mesh::rate_limit_first_peer(&b, 8 * 1024 * 1024).await;
    b.eventually(60, "half of the transfer", || async {
        stats(&a).await["chunk_bytes_served"].as_u64().unwrap() >= (size / 2) as u64
    })
    .await;
    let p = package(&b, "big.pkg").await.unwrap();
    assert_eq!(p["status"], "Downloading");
    let progress = p["progress"].as_f64().unwrap();
    assert!(progress > 0.0 && progress < 1.0, "progress {progress}");
    b.kill9();
    let served_before = stats(&a).await["chunk_bytes_served"].as_u64().unwrap();
    b.restart().await;
    // The restarted process takes its predecessor's transfer up at once (not after
    // the dead process's job lease runs out).
    let done = wait_public(&b, "big.pkg", 40).await;
    assert_eq!(done["sha256"], sha256_hex(&data));
    let served_after = stats(&a).await["chunk_bytes_served"].as_u64().unwrap() - served_before;
    let total = stats(&a).await["chunk_bytes_served"].as_u64().unwrap();
    // What was verified and recorded before the kill is not sent again: the resend is
    // at most the unrecorded tail (16 recorded-batch chunks plus 8 in flight).
    assert!(
        served_after < (size as u64) - served_before + 24 * 1024 * 1024,
        "after restart {served_after} bytes"
    );
    assert!(
        total < size as u64 + 24 * 1024 * 1024,
        "total served {total} for {size}"
    );
    println!(
        "resume: {served_before} bytes before the kill, {served_after} after, {total} in all for {size}"
    );
    assert_eq!(download(&b, "big.pkg").await, data);
}
