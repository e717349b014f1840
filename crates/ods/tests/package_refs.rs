//! Finding 4 of issue 9: a package whose filename is a number is never shadowed by an
//! id. `/packages/id/{id}` and `/packages/name/{filename}` say which is meant; the
//! seed's `/packages/{id_or_name}` works where it is unambiguous and is 409
//! `ambiguous_package` where it is not, acting on nothing.
mod admin_support;
mod common;

use admin_support::*;
use common::Server;
use reqwest::Method;
use serde_json::json;

async fn upload(s: &Server, name: &str) -> i64 {
    let r = s.upload(name, name.as_bytes().repeat(10), "Dev").await;
    expect_json(r, 201).await["id"].as_i64().unwrap()
}

async fn filenames(s: &Server) -> Vec<String> {
    let mut v: Vec<String> = s.get_json("/api/admin/packages").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["filename"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn numeric_filenames_and_ids_never_shadow_each_other() {
    let s = Server::start().await;
    let a = Cred::admin();
    let ida = upload(&s, "a.pkg").await;
    let idb = upload(&s, "b.pkg").await;
    let id1 = upload(&s, &ida.to_string()).await; // a file named like a.pkg's id
    let id2 = upload(&s, &idb.to_string()).await; // a file named like b.pkg's id
    let other = upload(&s, "c.pkg").await;
    let (n1, n2) = (ida.to_string(), idb.to_string());

    // The seed's form refuses to guess, for every verb, and changes nothing.
    for (m, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::PATCH, ""),
        (Method::POST, "/digests"),
    ] {
        let r = req(&s, &a, m, &format!("/api/admin/packages/{n2}{suffix}"))
            .json(&json!({"stage": "Prod"}))
            .send()
            .await
            .unwrap();
        let e = expect_error(r, 409, "ambiguous_package").await;
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("/packages/id/") && msg.contains("/packages/name/"),
            "{msg}"
        );
    }
    assert_eq!(filenames(&s).await.len(), 5);
    let b = s.get_json(&format!("/api/admin/packages/id/{idb}")).await;
    assert_eq!(
        (b["filename"].as_str(), b["stage"].as_str()),
        (Some("b.pkg"), Some("Dev"))
    );

    // By name: the file named "<idb>" goes, and only it.
    let r = req(
        &s,
        &a,
        Method::DELETE,
        &format!("/api/admin/packages/name/{n2}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let mut want = vec!["a.pkg", "b.pkg", "c.pkg", n1.as_str()];
    want.sort();
    assert_eq!(filenames(&s).await, want);
    // Now unambiguous: the seed's form reaches b.pkg by its id.
    assert_eq!(
        s.get_json(&format!("/api/admin/packages/{n2}")).await["filename"],
        "b.pkg"
    );
    let r = req(
        &s,
        &a,
        Method::GET,
        &format!("/api/admin/packages/id/{id2}"),
    )
    .send()
    .await
    .unwrap();
    expect_error(r, 404, "not_found").await;

    // By id: a.pkg goes; the file named like its id stays and is then reachable.
    let r = req(
        &s,
        &a,
        Method::PATCH,
        &format!("/api/admin/packages/id/{ida}"),
    )
    .json(&json!({"stage": "Prod"}))
    .send()
    .await
    .unwrap();
    assert_eq!(expect_json(r, 200).await["filename"], "a.pkg");
    let r = req(
        &s,
        &a,
        Method::DELETE,
        &format!("/api/admin/packages/id/{ida}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let got = s.get_json(&format!("/api/admin/packages/{n1}")).await;
    assert_eq!(
        (got["id"].as_i64(), got["filename"].as_str()),
        (Some(id1), Some(n1.as_str()))
    );
    let got = s.get_json(&format!("/api/admin/packages/name/{n1}")).await;
    assert_eq!(got["id"].as_i64(), Some(id1));
    // The seed's name form keeps working for ordinary names, and a plain id too.
    assert_eq!(
        s.get_json("/api/admin/packages/c.pkg").await["id"].as_i64(),
        Some(other)
    );
    assert_eq!(
        s.get_json(&format!("/api/admin/packages/{other}")).await["filename"],
        "c.pkg"
    );

    // Bad ids are 400, unknown names 404.
    let r = req(&s, &a, Method::GET, "/api/admin/packages/id/c.pkg")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_id").await;
    let r = req(&s, &a, Method::GET, "/api/admin/packages/name/nope.pkg")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;
    let mut want = vec!["b.pkg", "c.pkg", n1.as_str()];
    want.sort();
    assert_eq!(filenames(&s).await, want);
}
