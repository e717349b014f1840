//! Catalog versions on a site of two nodes (one database, one ISS, each node its own
//! hybrid logical clock; `mesh/hlc.rs` says why equal versions from two nodes are
//! harmless). On PostgreSQL and MariaDB: concurrent stage changes of one package
//! through both nodes are serialised, each made on the result of the one before, and a
//! peer site ends with the site's stage and version; a package uploaded again through
//! node 2, after node 1 (its clock running ahead) deleted the old one, is the later
//! upload. On SQLite a site has one node: the same steps run through it alone.
mod common;

use reqwest::Method;
use serde_json::json;

use common::{Engine, Opts, Server, bytes, engine};

const SECRET_KEY: &str = "site-versions-secret-key-0123456789";
const DATABASE_KEY: &str = "8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677";

fn node_opts(blobs: &std::path::Path, name: &str) -> Opts {
    let env = [
        ("SECRET_KEY", SECRET_KEY),
        ("DATABASE_KEY", DATABASE_KEY),
        ("ODS_NODE_NAME", name),
        ("ODS_BLOB_DIR", blobs.to_str().unwrap()),
        ("ODS_SYNC_INTERVAL", "1"),
    ];
    Opts {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// Text columns of the rows `sql` selects on `s`'s database, joined by '|'.
async fn rows(s: &Server, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.database_url())
        .await
        .unwrap();
    let found = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    found
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.try_get::<String, _>(i)
                        .or_else(|_| r.try_get::<i64, _>(i).map(|n| n.to_string()))
                        .unwrap()
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

async fn set_about(s: &Server, name: &str) {
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({"name": name, "url": s.url, "stage": "Dev"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// `uuid`'s `version|stage|deleted` in `s`'s catalog.
async fn record(s: &Server, uuid: &str) -> Option<String> {
    rows(
        s,
        &format!("SELECT version, stage, deleted FROM catalog WHERE uuid = '{uuid}'"),
    )
    .await
    .pop()
}

#[tokio::test]
async fn changes_through_two_nodes_get_ordered_versions_a_peer_applies() {
    let blobs = tempfile::tempdir().unwrap();
    let node1 = Server::start_with(node_opts(blobs.path(), "node1")).await;
    let node2 = match engine() {
        Engine::Sqlite => None,
        _ => Some(node1.start_node(node_opts(blobs.path(), "node2")).await),
    };
    let via = |i: usize| node2.as_ref().filter(|_| i % 2 == 1).unwrap_or(&node1);
    set_about(&node1, "site").await;
    let peer = Server::start_with(Opts {
        env: vec![("ODS_SYNC_INTERVAL".into(), "1".into())],
        ..Default::default()
    })
    .await;
    set_about(&peer, "peer").await;
    common::register(&peer, &node1).await;

    let r = node1.upload("race.pkg", bytes(200_000, 1), "Dev").await;
    assert_eq!(r.status(), 201);
    let uuid = rows(
        &node1,
        "SELECT uuid FROM packages WHERE filename = 'race.pkg'",
    )
    .await
    .pop()
    .unwrap();
    let first = record(&node1, &uuid).await.unwrap();

    // 24 stage changes at once, alternating nodes and stages.
    let stages = ["Test", "Prod", "Dev"];
    let answers = futures_util::future::join_all((0..24).map(|i| {
        via(i)
            .admin(Method::PATCH, "/api/admin/packages/race.pkg")
            .json(&json!({"stage": stages[i % 3]}))
            .send()
    }))
    .await;
    for a in answers {
        assert_eq!(a.unwrap().status(), 200);
    }
    // Each change was made on the one before it: the stages chain, Dev first.
    let changes = rows(
        &node1,
        &format!(
            "SELECT message FROM events WHERE kind = 'package.stage_changed' \
             AND package_uuid = '{uuid}' ORDER BY id"
        ),
    )
    .await;
    assert!(!changes.is_empty());
    let mut stage = "Dev".to_string();
    for m in &changes {
        let (from, to) = m
            .strip_prefix("race.pkg: ")
            .and_then(|t| t.split_once(" -> "))
            .unwrap_or_else(|| panic!("{m}"));
        assert_eq!(
            from, stage,
            "a change not made on the latest record: {changes:?}"
        );
        stage = to.to_string();
    }
    let last = record(&node1, &uuid).await.unwrap();
    assert!(last > first, "{last} after {first}");
    assert!(
        last.ends_with(&format!("|{stage}|0")),
        "{last} vs {changes:?}"
    );

    // The peer applies the site's last change, whichever node made it.
    peer.eventually(60, "the peer has the site's last version", || async {
        record(&peer, &uuid).await.is_some_and(|r| r == last)
    })
    .await;

    // Node 1's clock runs two minutes ahead (its stamp on `again.pkg` says so); it
    // deletes the package, and node 2 uploads new content under the same name: the new
    // upload is still the later one, on the site and at the peer.
    let r = node1.upload("again.pkg", bytes(100_000, 2), "Dev").await;
    assert_eq!(r.status(), 201);
    let old = rows(
        &node1,
        "SELECT uuid FROM packages WHERE filename = 'again.pkg'",
    )
    .await
    .pop()
    .unwrap();
    let v = record(&node1, &old).await.unwrap();
    let ahead = format!(
        "{:013}{}",
        ods::model::now_millis() + 120_000,
        &v.split('|').next().unwrap()[13..]
    );
    node1
        .sql(&format!(
            "UPDATE catalog SET version = '{ahead}', created_version = '{ahead}' WHERE uuid = '{old}'"
        ))
        .await;
    let r = node1
        .admin(Method::DELETE, "/api/admin/packages/again.pkg")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let data = bytes(150_000, 3);
    let r = via(1).upload("again.pkg", data.clone(), "Dev").await;
    assert_eq!(r.status(), 201);
    let versions = rows(
        &node1,
        "SELECT created_version, version, deleted, uuid FROM catalog \
         WHERE filename = 'again.pkg' ORDER BY created_version",
    )
    .await;
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(
        versions[0].contains(&old) && versions[0].contains("|1|"),
        "the old upload first, deleted: {versions:?}"
    );
    let old_tombstone = versions[0].split('|').nth(1).unwrap();
    let new_created = versions[1].split('|').next().unwrap();
    assert!(new_created > old_tombstone, "{versions:?}");
    let new = versions[1].rsplit('|').next().unwrap().to_string();
    peer.eventually(60, "the peer serves the new upload", || async {
        let r = peer.http.get(peer.at("/share/again.pkg")).send().await;
        match r {
            Ok(r) if r.status() == 200 => r.bytes().await.is_ok_and(|b| b[..] == data[..]),
            _ => false,
        }
    })
    .await;
    assert!(record(&peer, &new).await.unwrap().ends_with("|0"));
    assert!(record(&peer, &old).await.is_none_or(|r| r.ends_with("|1")));
}
