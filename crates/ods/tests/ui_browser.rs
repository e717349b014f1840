//! Browser end-to-end tests of the web UI: each test starts real `ods` servers and
//! runs a Playwright script (`tests/browser/*.py`, headless Debian Chromium) against
//! them, with the URL and credentials in the environment; the script prints `OK ...`
//! per check and `DONE` at the end, and the test asserts its exit status and output.
//!
//! They run on every database engine (each takes a few seconds, and the sessions,
//! the settings and the packages pages read and write the database).
//! Screenshots of each tab go to `<target dir>/ui-screenshots/<test>/` (open the PNGs
//! there). Without python3 + Playwright or /usr/bin/chromium the tests are skipped
//! with a message, except under `ODS_REQUIRE_ALL_DBS=1` (CI), where that is a
//! failure; `.ci/run` installs them.
mod common;
mod fake_jamf;
#[path = "browser/run.rs"]
mod run;

use std::path::PathBuf;

use common::{ADMIN, Opts, Server};
use run::{ready, run_script, shots_dir};

#[tokio::test]
async fn first_login_forces_a_new_password_then_logout() {
    if !ready() {
        return;
    }
    let s = Server::start_with(Opts {
        default_admin: true,
        ..Opts::default()
    })
    .await;
    let out = run_script("first_login.py", &s, "admin", "a-new-admin-pass-1", &[]);
    assert!(out.contains("OK before the change every page leads to the password form"));
    assert!(out.contains("OK after logout the pages need a login"));
    // The API agrees: the new password works, the default does not.
    let r = s
        .http
        .get(s.at("/api/admin/about"))
        .basic_auth("admin", Some("a-new-admin-pass-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_admin_edits_settings_uploads_changes_a_stage_and_deletes() {
    if !ready() {
        return;
    }
    let s = Server::start().await;
    let about = s.get_json("/api/admin/about").await;
    let key = about["key"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("NoMAD-browser.pkg");
    let data = common::bytes(3_400_000, 7);
    std::fs::write(&file, &data).unwrap();
    let docs = shots_dir("docs").join("packages.png");
    std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
    let out = run_script(
        "admin_packages.py",
        &s,
        ADMIN.0,
        ADMIN.1,
        &[
            ("ODS_KEY", key),
            ("ODS_UPLOAD", file.display().to_string()),
            ("ODS_DOCS_SHOT", docs.display().to_string()),
        ],
    );
    for check in [
        "OK Reveal shows the key the API reports",
        "OK the edited settings are shown",
        "OK the progress bar reached 100%",
        "OK the new row is Public without a reload",
        "OK stage changed to Prod after confirmation",
        "OK a token-less POST is refused (403)",
        "OK a cross-origin POST is refused (403) with the reason in words",
        "OK the package is deleted after confirmation",
    ] {
        assert!(out.contains(check), "missing {check:?}");
    }
    // The API sees what the browser did.
    let about = s.get_json("/api/admin/about").await;
    assert_eq!(about["name"], "Branch Office");
    assert_eq!(about["url"], "https://ods.example.org:8443");
    assert_eq!(about["stage"], "Test");
    assert_eq!(about["firewalled_mode"], true);
    assert_eq!(about["download_auth"], "basic");
    let list = s.get_json("/api/admin/packages").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "deleted: {list}"
    );
    // `UPDATE_SNAPSHOT=1` keeps this run's Packages screenshot as the README's.
    if std::env::var("UPDATE_SNAPSHOT").as_deref() == Ok("1")
        && common::engine() == common::Engine::Sqlite
    {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/packages.png");
        std::fs::create_dir_all(repo.parent().unwrap()).unwrap();
        std::fs::copy(&docs, &repo).unwrap();
    }
}

#[tokio::test]
async fn a_viewer_sees_no_admin_actions_and_is_refused_them() {
    if !ready() {
        return;
    }
    let s = Server::start().await;
    s.add_user("vera", "viewer-pass-1", "viewer").await;
    assert_eq!(
        s.upload("seen.pkg", common::bytes(5000, 1), "Prod")
            .await
            .status(),
        201
    );
    let out = run_script(
        "viewer.py",
        &s,
        "vera",
        "viewer-pass-1",
        &[("ODS_PACKAGE", "seen.pkg".to_string())],
    );
    assert!(out.contains("OK the server refuses a viewer's delete, settings change and key (403)"));
    // Nothing changed.
    let list = s.get_json("/api/admin/packages").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_ne!(s.get_json("/api/admin/about").await["name"], "x");
}

#[tokio::test]
async fn an_upload_can_be_cancelled() {
    if !ready() {
        return;
    }
    let s = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cancelled.pkg");
    std::fs::write(&file, common::bytes(16 << 20, 9)).unwrap();
    let out = run_script(
        "upload_cancel.py",
        &s,
        ADMIN.0,
        ADMIN.1,
        &[("ODS_UPLOAD", file.display().to_string())],
    );
    assert!(out.contains("OK Cancel stops the upload and says so"));
    let list = s.get_json("/api/admin/packages").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    // The server drops the half-received file.
    s.eventually(
        10,
        "the staging file of the cut-off upload is removed",
        || async { s.staging_files().is_empty() },
    )
    .await;
}

#[tokio::test]
async fn notifications_tab_manages_webhooks_and_email() {
    if !ready() {
        return;
    }
    let s = Server::start_with(Opts {
        env: vec![("ODS_WEBHOOK_RETRY_BASE_MS".into(), "60000".into())],
        ..Opts::default()
    })
    .await;
    let out = run_script("notifications.py", &s, ADMIN.0, ADMIN.1, &[]);
    assert!(out.contains("OK the test delivery and its failed attempt are listed"));
    // The API agrees with what the page did.
    let hooks = s.get_json("/api/admin/webhooks").await;
    assert_eq!(hooks["items"][0]["url"], "http://127.0.0.1:9/hook");
    let mail = s.get_json("/api/admin/email").await;
    assert_eq!(mail["password_set"], true);
    assert_eq!(mail["from"], "ODS <ods@example.com>");
    let subs = s.get_json("/api/admin/email/subscriptions").await;
    assert!(subs["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamf_tab_adds_an_instance_shows_records_drift_and_reconciles() {
    if !ready() {
        return;
    }
    let fake = fake_jamf::FakeJamf::start(std::time::Duration::from_secs(600)).await;
    fake.add(serde_json::json!({"packageName": "ghost", "fileName": "ghost.pkg", "hashType": "MD5", "hashValue": "00"}));
    let s = Server::start_with(Opts {
        env: vec![("ODS_JAMF_SCAN_SECS".into(), "1".into())],
        ..Opts::default()
    })
    .await;
    assert_eq!(
        s.upload("ui.pkg", common::bytes(20_000, 1), "Prod")
            .await
            .status(),
        201
    );
    let script = {
        let (s, fake) = (&s, fake.clone());
        let extra = [
            ("ODS_JAMF_URL", fake.url.clone()),
            ("ODS_JAMF_USER", fake_jamf::USER.0.to_string()),
            ("ODS_JAMF_PASS", fake_jamf::USER.1.to_string()),
        ];
        // The script blocks this thread; the fake answers from the other worker.
        tokio::task::block_in_place(|| run_script("jamf.py", s, ADMIN.0, ADMIN.1, &extra))
    };
    assert!(script.contains("OK the package record shows synced"));
    let rec = fake.record_by_file("ui.pkg").expect("the record was made");
    assert_eq!(rec["hashType"], "SHA_512");
    // The secret typed into the form is not shown or logged.
    assert!(!s.log().contains(fake_jamf::USER.1));
}
