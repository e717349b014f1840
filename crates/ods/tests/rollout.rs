//! `package.rollout_complete` (issue 8 item 3) across three real servers: raised on the
//! uploading server exactly once, and only after the last server that should hold the
//! package turned it Public (the third is down until the other two have it).
mod common;

use std::time::Duration;

use common::{Server, register};
use serde_json::Value;

async fn node(name: &str, stage: &str) -> Server {
    node_with(name, stage, &[]).await
}

async fn node_with(name: &str, stage: &str, env: &[(&str, &str)]) -> Server {
    let mut opts = common::Opts::default();
    opts.env.push(("ODS_SYNC_INTERVAL".into(), "1".into()));
    for (k, v) in env {
        opts.env.push((k.to_string(), v.to_string()));
    }
    let s = Server::start_with(opts).await;
    common::mesh::name(&s, name, stage).await;
    s
}

async fn events(s: &Server, kind: &str) -> Vec<Value> {
    s.get_json(&format!("/api/admin/events?kind={kind}")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn is_public(s: &Server, filename: &str) -> bool {
    s.get_json("/api/admin/packages").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["filename"] == filename && p["status"] == "Public")
}

#[tokio::test]
async fn rollout_complete_once_after_the_last_server() {
    let a = node("roll-a", "Dev").await;
    let b = node("roll-b", "Dev").await;
    let mut c = node("roll-c", "Test").await;
    // A fourth server whose stage does not hold the package must not hold it up.
    let prod = node("roll-prod", "Prod").await;
    register(&b, &a).await;
    register(&c, &a).await;
    register(&prod, &a).await;

    c.kill9();
    let r = a
        .upload("roll.pkg", common::bytes(3 << 20, 9), "Test")
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    b.eventually(60, "roll.pkg Public on b", || is_public(&b, "roll.pkg"))
        .await;
    // b has it and a knows (b announced it); c does not: not complete.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        events(&a, "package.rollout_complete").await.is_empty(),
        "c is still missing it"
    );
    assert!(
        !is_public(&prod, "roll.pkg").await,
        "a Prod server does not hold a Test package"
    );

    c.restart().await;
    c.eventually(60, "roll.pkg Public on c", || is_public(&c, "roll.pkg"))
        .await;
    a.eventually(60, "package.rollout_complete on a", || async {
        !events(&a, "package.rollout_complete").await.is_empty()
    })
    .await;
    // Several more anti-entropy rounds: still exactly once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let done = events(&a, "package.rollout_complete").await;
    assert_eq!(done.len(), 1, "{done:?}");
    let e = &done[0];
    assert_eq!(e["filename"], "roll.pkg");
    assert!(
        e["message"].as_str().unwrap().contains("3 known here"),
        "{e}"
    );
    let c_public = events(&c, "package.public").await;
    let c_at = c_public
        .iter()
        .find(|x| x["filename"] == "roll.pkg")
        .unwrap()["created_ts"]
        .as_i64()
        .unwrap();
    assert!(
        e["created_ts"].as_i64().unwrap() >= c_at,
        "raised after c turned Public: {e} vs {c_at}"
    );
    let uuid = e["package_uuid"].as_str().unwrap();
    let pkg = a.get_json("/api/admin/packages/roll.pkg").await;
    assert_eq!(pkg["uuid"], uuid);
}

#[tokio::test]
async fn unreachable_only_after_the_configured_downtime() {
    let a = node_with("down-a", "Prod", &[("ODS_UNREACHABLE_AFTER_SECS", "6")]).await;
    let mut b = node("down-b", "Prod").await;
    register(&a, &b).await;
    // Registration was a good contact; now b is gone.
    b.kill9();
    let down_at = std::time::Instant::now();
    let r = a.upload("down.pkg", common::bytes(1000, 1), "Prod").await;
    assert_eq!(r.status(), 201);
    a.eventually(30, "a to see the link fail", || async {
        a.get_json("/api/admin/registered_ods").await["items"][0]["status"] == "unreachable"
    })
    .await;
    // Failing, but not for long enough yet.
    while down_at.elapsed() < Duration::from_secs(4) {
        assert!(
            events(&a, "ods.unreachable").await.is_empty(),
            "raised before the downtime"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    a.eventually(30, "ods.unreachable after 6 s down", || async {
        !events(&a, "ods.unreachable").await.is_empty()
    })
    .await;
    assert!(
        down_at.elapsed() >= Duration::from_secs(5),
        "{:?}",
        down_at.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        events(&a, "ods.unreachable").await.len(),
        1,
        "once per outage"
    );
    assert!(events(&a, "ods.recovered").await.is_empty());
    b.restart().await;
    a.eventually(30, "ods.recovered", || async {
        !events(&a, "ods.recovered").await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(events(&a, "ods.recovered").await.len(), 1);
    assert_eq!(events(&a, "ods.unreachable").await.len(), 1);
}
