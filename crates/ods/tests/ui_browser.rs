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

use std::path::PathBuf;
use std::process::Command;

use common::{ADMIN, Opts, Server};

fn browser_available() -> bool {
    let py = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output()
        .is_ok_and(|o| o.status.success());
    py && std::path::Path::new("/usr/bin/chromium").exists()
}

/// Whether to run; panics under `ODS_REQUIRE_ALL_DBS=1` when the tools are missing.
fn ready() -> bool {
    if browser_available() {
        return true;
    }
    assert!(
        std::env::var("ODS_REQUIRE_ALL_DBS").as_deref() != Ok("1"),
        "python3 with Playwright and /usr/bin/chromium are needed (apt-get install chromium; pip install playwright)"
    );
    eprintln!("SKIPPED: python3 with Playwright or /usr/bin/chromium is missing");
    false
}

/// `<target dir>/ui-screenshots/<name>`.
pub fn shots_dir(name: &str) -> PathBuf {
    let bin = common::ods_bin();
    let target = bin
        .parent()
        .and_then(|p| p.parent())
        .expect("the ods binary sits in <target>/<profile>/");
    target.join("ui-screenshots").join(name)
}

/// Runs `tests/browser/<script>` against `s` as `user`/`password`, with `extra` env;
/// asserts it exits 0 and printed `DONE`; returns its output.
fn run_script(
    script: &str,
    s: &Server,
    user: &str,
    password: &str,
    extra: &[(&str, String)],
) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let shots = shots_dir(script.trim_end_matches(".py"));
    let mut cmd = Command::new("python3");
    cmd.arg(dir.join(script))
        .current_dir(&dir)
        .env("ODS_URL", &s.url)
        .env("ODS_USER", user)
        .env("ODS_PASSWORD", password)
        .env("ODS_SHOTS", &shots)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("\nDONE"),
        "{script} failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        s.log()
    );
    stdout
}

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
    let _ = ADMIN;
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
