//! Findings 7 and 10 of issue 9 on the peer API: a signed request replayed after a
//! restart is refused (accepted nonces are kept in the database), and an unknown
//! sender gets exactly the answer a bad signature gets.
mod common;

use common::Server;
use ods::sync::auth::{ISS_HEADER, SIG_HEADER, sign};
use serde_json::{Value, json};

#[tokio::test]
async fn a_request_replayed_after_a_restart_is_refused() {
    let mut b = Server::start().await;
    let about = b.get_json("/api/admin/about").await;
    let biss = about["iss"].as_str().unwrap().to_string();
    let key = about["key"].as_str().unwrap().to_string();
    let now = ods::model::now_unix();
    let fake_iss = "abcdefabcdefabcdefabcdefabcdef02";
    let body = serde_json::to_vec(&json!({"iss": fake_iss, "name": "X", "url": null, "stage": "Prod", "firewalled_mode": true})).unwrap();
    let sig = sign(
        key.as_bytes(),
        fake_iss,
        &biss,
        "POST",
        "/api/ods/register",
        &body,
        now,
    );
    let r = b
        .http
        .post(b.at("/api/ods/register"))
        .header(ISS_HEADER, fake_iss)
        .header(SIG_HEADER, sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pair = r.json::<Value>().await.unwrap()["pair_secret"]
        .as_str()
        .unwrap()
        .to_string();

    // A captured, valid catalog request.
    let path = "/api/ods/catalog?since=0";
    let captured = sign(
        pair.as_bytes(),
        fake_iss,
        &biss,
        "GET",
        path,
        b"",
        ods::model::now_unix(),
    );
    let send = |s: &Server, iss: &str, sig: &str| {
        s.http
            .get(s.at(path))
            .header(ISS_HEADER, iss)
            .header(SIG_HEADER, sig)
            .send()
    };
    assert_eq!(send(&b, fake_iss, &captured).await.unwrap().status(), 200);
    assert_eq!(
        send(&b, fake_iss, &captured).await.unwrap().status(),
        401,
        "replay in the same process"
    );

    // After a restart (the memory of nonces is gone) it is still a replay.
    b.restart().await;
    let r = send(&b, fake_iss, &captured).await.unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "peer_auth_failed");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{e}"
    );
    // A fresh request still works.
    let fresh = sign(
        pair.as_bytes(),
        fake_iss,
        &biss,
        "GET",
        path,
        b"",
        ods::model::now_unix(),
    );
    assert_eq!(send(&b, fake_iss, &fresh).await.unwrap().status(), 200);

    // A second process on the same data directory and database refuses it too (a
    // second process on one SQLite database is refused altogether: PostgreSQL and
    // MariaDB rounds only).
    if common::engine() != common::Engine::Sqlite {
        let mut second = b
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let url = {
            use std::io::BufRead;
            let out = std::io::BufReader::new(second.stdout.take().unwrap());
            out.lines()
                .map_while(Result::ok)
                .find_map(|l| {
                    l.strip_prefix("ODS listening on ")
                        .map(|u| u.trim().to_string())
                })
                .expect("the second process listens")
        };
        let send2 = |sig: &str| {
            b.http
                .get(format!("{url}{path}"))
                .header(ISS_HEADER, fake_iss)
                .header(SIG_HEADER, sig.to_string())
                .send()
        };
        let r = send2(&fresh).await.unwrap();
        let status = r.status();
        let fresh2 = sign(
            pair.as_bytes(),
            fake_iss,
            &biss,
            "GET",
            path,
            b"",
            ods::model::now_unix(),
        );
        let ok2 = send2(&fresh2).await.unwrap().status();
        let _ = second.kill();
        let _ = second.wait();
        assert_eq!(
            status, 401,
            "used on the first process, refused by the second"
        );
        assert_eq!(ok2, 200, "the second process serves fresh requests");
    }

    // An unknown sender and a bad signature are answered alike.
    let t = ods::model::now_unix();
    let bad_sig = sign(b"not-the-secret", fake_iss, &biss, "GET", path, b"", t);
    let unknown = "0123456789abcdef0123456789abcdef";
    let other = sign(pair.as_bytes(), unknown, &biss, "GET", path, b"", t);
    let r1 = send(&b, fake_iss, &bad_sig).await.unwrap();
    let r2 = send(&b, unknown, &other).await.unwrap();
    assert_eq!((r1.status().as_u16(), r2.status().as_u16()), (401, 401));
    let (h1, h2) = (r1.headers().clone(), r2.headers().clone());
    assert_eq!(h1.get("content-type"), h2.get("content-type"));
    assert_eq!(r1.text().await.unwrap(), r2.text().await.unwrap());
}
