//! The peer chunk endpoint's spans (`?count=`): several consecutive chunks in one
//! signed answer, clipped at the package's end; a bad count is a 400 and serves
//! nothing. A real `ods` and a peer registered by hand (its requests signed here).

mod common;

use common::{Server, bytes};
use ods::sync::auth::{ISS_HEADER, SIG_HEADER, sign};
use reqwest::Method;
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn spans_send_consecutive_chunks_and_refuse_bad_counts() {
    let a = Server::start().await;
    let r = a
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({"name": "A", "url": a.url, "stage": "Prod"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let data = bytes(3 * MIB + 5, 77);
    let up = a.upload("span.pkg", data.clone(), "Prod").await;
    assert_eq!(up.status(), 201);
    let uuid = up.json::<Value>().await.unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();

    // A peer registers with A's key and gets its pair secret.
    let about = a.get_json("/api/admin/about").await;
    let aiss = about["iss"].as_str().unwrap().to_string();
    let key = about["key"].as_str().unwrap().to_string();
    let me = "abcdefabcdefabcdefabcdefabcdef02";
    let body = serde_json::to_vec(
        &json!({"iss": me, "name": "P", "url": null, "stage": "Prod", "firewalled_mode": true}),
    )
    .unwrap();
    let now = ods::model::now_unix();
    let r = a
        .http
        .post(a.at("/api/ods/register"))
        .header(ISS_HEADER, me)
        .header(
            SIG_HEADER,
            sign(
                key.as_bytes(),
                me,
                &aiss,
                "POST",
                "/api/ods/register",
                &body,
                now,
            ),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pair = r.json::<Value>().await.unwrap()["pair_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |path: String| {
        let sig = sign(
            pair.as_bytes(),
            me,
            &aiss,
            "GET",
            &path,
            b"",
            ods::model::now_unix(),
        );
        a.http
            .get(a.at(&path))
            .header(ISS_HEADER, me)
            .header(SIG_HEADER, sig)
            .send()
    };

    let one = get(format!("/api/ods/packages/{uuid}/chunks/1"))
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.bytes().await.unwrap(), &data[MIB..2 * MIB]);
    let two = get(format!("/api/ods/packages/{uuid}/chunks/1?count=2"))
        .await
        .unwrap();
    assert_eq!(two.status(), 200);
    assert_eq!(two.bytes().await.unwrap(), &data[MIB..3 * MIB]);
    // Past the end: clipped to what the package has.
    let tail = get(format!("/api/ods/packages/{uuid}/chunks/2?count=16"))
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    assert_eq!(tail.bytes().await.unwrap(), &data[2 * MIB..]);

    let served = a.get_json("/api/admin/sync").await["chunks_served"]
        .as_u64()
        .unwrap();
    assert_eq!(served, 1 + 2 + 2, "each chunk of a span counts as served");
    for bad in ["0", "17", "-1", "x"] {
        let r = get(format!("/api/ods/packages/{uuid}/chunks/0?count={bad}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "count={bad}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"]["code"].is_string(), "{e}");
    }
    let none = get(format!("/api/ods/packages/{uuid}/chunks/4?count=2"))
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
    assert_eq!(
        a.get_json("/api/admin/sync").await["chunks_served"]
            .as_u64()
            .unwrap(),
        served,
        "refused requests serve nothing"
    );
}
