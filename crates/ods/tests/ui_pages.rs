//! Browser end-to-end tests of the web UI's Network, Users, Account, Jobs and Events
//! tabs: each test starts real `ods` servers, runs a Playwright script of
//! `tests/browser/` (headless Debian Chromium) against them and checks through the API
//! that what the page did really happened. Screenshots go to
//! `<target dir>/ui-screenshots/<script>/`. They run on every database engine.
mod common;
#[path = "browser/run.rs"]
mod run;

use common::{ADMIN, Opts, Server, bytes};
use reqwest::Method;
use serde_json::{Value, json};

use run::{ready, run_script};

/// A server named `name`, its URL set, with a fast sync timer.
async fn node(name: &str) -> Server {
    let mut opts = Opts::default();
    opts.env.push(("ODS_SYNC_INTERVAL".into(), "2".into()));
    let s = Server::start_with(opts).await;
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({"name": name, "url": s.url, "stage": "Dev", "firewalled_mode": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    s
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn two_servers_register_through_the_forms_and_a_package_arrives_live() {
    if !ready() {
        return;
    }
    let a = node("A").await;
    let b = node("B").await;
    let out = run_script(
        "network.py",
        &a,
        ADMIN.0,
        ADMIN.1,
        &[
            ("ODS_URL_B", b.url.clone()),
            ("ODS_PACKAGE", "from-a.pkg".into()),
        ],
    );
    assert!(out.contains("OK a wrong key shows the banner: Registration refused"));
    assert!(out.contains("OK the package uploaded on A turns Public on B's Packages tab"));
    // The API agrees: B holds A's package, Public, with A's digest; the link is gone.
    let on_a = items(&a.get_json("/api/admin/packages").await);
    let on_b = items(&b.get_json("/api/admin/packages").await);
    let pa = on_a.iter().find(|p| p["filename"] == "from-a.pkg").unwrap();
    let pb = on_b.iter().find(|p| p["filename"] == "from-a.pkg").unwrap();
    assert_eq!(pb["status"], "Public");
    assert_eq!(pb["sha256"], pa["sha256"]);
    assert!(items(&a.get_json("/api/admin/registered_ods").await).is_empty());
}

#[tokio::test]
async fn users_and_tokens_through_the_pages() {
    if !ready() {
        return;
    }
    let s = Server::start().await;
    let out = run_script("users_tokens.py", &s, ADMIN.0, ADMIN.1, &[]);
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN "))
        .expect("the script prints the revoked token");
    // The revoked token is refused by the API; carol is gone; the admin remains.
    let r = s
        .http
        .get(s.at("/api/admin/about"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let users = items(&s.get_json("/api/admin/users").await);
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["username"], ADMIN.0);
}

/// Inserts a dead `sweep` job (5 of 5 attempts, a last error) and returns its id.
async fn dead_job(s: &Server) -> i64 {
    s.sql(
        "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, last_error, created, updated) \
         VALUES ('sweep', 'null', 'dead', 5, 5, 0, 'injected by the test: the disk was unreachable', 1700000000000, 1700000000000)",
    )
    .await;
    let dead = items(&s.get_json("/api/admin/jobs?state=dead").await);
    dead.iter()
        .find(|j| j["kind"] == "sweep")
        .and_then(|j| j["id"].as_i64())
        .expect("the dead job is listed")
}

#[tokio::test]
async fn jobs_retry_and_events_filter_and_page() {
    if !ready() {
        return;
    }
    let s = Server::start().await;
    for i in 0..26u64 {
        let r = s
            .upload(
                &format!("ev-{i:02}.pkg"),
                bytes(1000 + i as usize, i),
                "Dev",
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let job = dead_job(&s).await;
    let events = items(&s.get_json("/api/admin/events?limit=1000").await).len();
    assert!((51..=100).contains(&events), "{events} events");
    run_script(
        "jobs_events.py",
        &s,
        ADMIN.0,
        ADMIN.1,
        &[
            ("ODS_JOB", job.to_string()),
            ("ODS_PACKAGE", "ev-07.pkg".into()),
            ("ODS_EVENTS", events.to_string()),
        ],
    );
    let j = s.get_json(&format!("/api/admin/jobs/{job}")).await;
    assert_eq!(j["state"], "done", "{j}");
    // The API's package filter gives what the page showed.
    // uploaded, public and rollout_complete (a lone server completes its own rollout).
    let of_pkg = items(&s.get_json("/api/admin/events?package=ev-07.pkg").await);
    assert_eq!(of_pkg.len(), 3, "{of_pkg:?}");
    assert!(of_pkg.iter().all(|e| e["filename"] == "ev-07.pkg"));
}

#[tokio::test]
async fn a_viewer_sees_no_admin_actions_on_these_tabs_and_is_refused_them() {
    if !ready() {
        return;
    }
    let a = node("A").await;
    let b = node("B").await;
    let bi = b.get_json("/api/admin/about").await;
    let r = a
        .admin(Method::POST, "/api/admin/register")
        .json(&json!({"url": b.url, "iss_id": bi["iss"], "key": bi["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let peer = items(&a.get_json("/api/admin/registered_ods").await)[0]["id"]
        .as_i64()
        .unwrap();
    a.add_user("vera", "vera-viewer-1", "viewer").await;
    let job = dead_job(&a).await;
    run_script(
        "viewer_pages.py",
        &a,
        "vera",
        "vera-viewer-1",
        &[
            ("ODS_PEER_ID", peer.to_string()),
            ("ODS_JOB", job.to_string()),
        ],
    );
    // Nothing the viewer tried happened.
    let peers = items(&a.get_json("/api/admin/registered_ods").await);
    assert_eq!(peers.len(), 1);
    assert!(peers[0]["rate_limit"].is_null());
    let users = items(&a.get_json("/api/admin/users").await);
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(
        users
            .iter()
            .any(|u| u["username"] == "vera" && u["role"] == "viewer")
    );
    assert_eq!(
        a.get_json(&format!("/api/admin/jobs/{job}")).await["state"],
        "dead"
    );
    let r = a
        .http
        .get(a.at("/api/admin/about"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the admin's password is unchanged");
    let tokens = items(&a.get_json("/api/admin/tokens?all=true").await);
    let names: Vec<&str> = tokens.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["viewer-read"]);
}
