//! Runs a Playwright script of `tests/browser/` against real servers (shared by the
//! browser test binaries that include it with `#[path]`): whether the tools are there
//! (a failure under `ODS_REQUIRE_ALL_DBS=1`), where screenshots go, and the run itself.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{self, Server};

fn browser_available() -> bool {
    common::python::has_module("playwright.sync_api")
        && std::path::Path::new("/usr/bin/chromium").exists()
}

/// Whether to run; panics under `ODS_REQUIRE_ALL_DBS=1` when the tools are missing.
pub fn ready() -> bool {
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
pub fn run_script(
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
