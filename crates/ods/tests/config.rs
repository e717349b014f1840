//! Configuration as the operator meets it: each layer (default < ODS_CONF file <
//! environment < flag) overrides the one below it key by key, `check-config` before the
//! first start reports the keys `ods serve` will generate as such (and creates nothing),
//! and the failed-login limits are configuration that a live server obeys.
mod admin_support;
mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::Duration;

use admin_support::*;
use common::{Opts, Server};

/// `ods` with an empty environment: nothing of the caller's configuration leaks in.
fn ods(args: &[&str]) -> Command {
    let mut c = Command::new(common::ods_bin());
    c.args(args).env_clear();
    c
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `check-config` line of `key`, e.g. `login_window_secs = 300 (default)`.
fn line<'a>(stdout: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key} = ");
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {key}: {stdout}"))
}

#[test]
fn each_layer_overrides_the_one_below_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let conf = dir.path().join("ods.toml");
    std::fs::write(
        &conf,
        "login_window_secs = 11\nODS_LOGIN_MAX_FAILURES_PER_ADDRESS = 4\nShare_Context = \"FromFile\"\n\
         ods_job_poll_ms = 7\nsecret_key = \"file-secret-not-to-be-printed\"\n",
    )
    .unwrap();
    let run = |flags: &[&str]| {
        let mut args = vec!["check-config", "--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(flags);
        let out = ods(&args)
            .env("ODS_CONF", &conf)
            .env("ODS_LOGIN_MAX_FAILURES_PER_ADDRESS", "5")
            .env("ODS_SHARE_CONTEXT", "FromEnv")
            .env("ODS_JOB_POLL_MS", "") // empty counts as unset
            .env("DATABASE_KEY", "env-secret-not-to-be-printed-0123456789")
            .output()
            .unwrap();
        let all = text(&out);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out, all, stdout)
    };

    // A bad DATABASE_KEY from the environment is reported, secrets are not printed.
    let (out, all, _) = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("DATABASE_KEY must be 32 bytes"), "{all}");
    assert!(!all.contains("not-to-be-printed"), "{all}");

    let key = "ab".repeat(32);
    let run = |flags: &[&str]| {
        let mut args = vec!["check-config", "--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(flags);
        let out = ods(&args)
            .env("ODS_CONF", &conf)
            .env("ODS_LOGIN_MAX_FAILURES_PER_ADDRESS", "5")
            .env("ODS_SHARE_CONTEXT", "FromEnv")
            .env("ODS_JOB_POLL_MS", "")
            .env("DATABASE_KEY", &key)
            .output()
            .unwrap();
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        assert!(
            !all.contains("not-to-be-printed") && !all.contains(&key),
            "{all}"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stdout = run(&[]);
    assert_eq!(
        line(&stdout, "login_max_failures_per_account"),
        "login_max_failures_per_account = 30 (default)"
    );
    assert_eq!(
        line(&stdout, "login_window_secs"),
        "login_window_secs = 11 (ODS_CONF)"
    );
    assert_eq!(line(&stdout, "job_poll_ms"), "job_poll_ms = 7 (ODS_CONF)");
    assert_eq!(
        line(&stdout, "login_max_failures_per_address"),
        "login_max_failures_per_address = 5 (env ODS_LOGIN_MAX_FAILURES_PER_ADDRESS)"
    );
    assert_eq!(
        line(&stdout, "share_context"),
        "share_context = FromEnv (env ODS_SHARE_CONTEXT)"
    );
    assert_eq!(
        line(&stdout, "secret_key"),
        "secret_key = [hidden] (ODS_CONF)"
    );
    assert_eq!(
        line(&stdout, "database_key"),
        "database_key = [hidden] (env DATABASE_KEY)"
    );
    assert!(
        !stdout.contains("SECRET_KEY is not set"),
        "the file gave it: {stdout}"
    );

    let stdout = run(&["--share-context", "FromFlag", "--login-window-secs=12"]);
    assert_eq!(
        line(&stdout, "share_context"),
        "share_context = FromFlag (flag --share-context)"
    );
    assert_eq!(
        line(&stdout, "login_window_secs"),
        "login_window_secs = 12 (flag --login-window-secs)"
    );
    assert_eq!(
        line(&stdout, "login_max_failures_per_address"),
        "login_max_failures_per_address = 5 (env ODS_LOGIN_MAX_FAILURES_PER_ADDRESS)"
    );

    // --help names every key's variable but shows no secret's value.
    let out = ods(&["serve", "--help"])
        .env("SECRET_KEY", "help-secret-not-to-be-printed")
        .env("DATABASE_URL", "postgres://u:help-password@h/db")
        .env("ODS_LISTEN", "127.0.0.1:7")
        .output()
        .unwrap();
    let help = text(&out);
    assert!(out.status.success(), "{help}");
    for var in [
        "ODS_CONF",
        "ODS_LISTEN=127.0.0.1:7",
        "SECRET_KEY",
        "DATABASE_KEY",
        "ODS_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        "MYSQL_PASSWORD",
    ] {
        assert!(help.contains(var), "{var} in {help}");
    }
    assert!(
        !help.contains("not-to-be-printed") && !help.contains("help-password"),
        "{help}"
    );

    // A bad value in the file is named with its key, beside every other problem.
    std::fs::write(
        &conf,
        "login_max_failures_per_address = \"many\"\nlisten = \"nowhere\"\n",
    )
    .unwrap();
    let out = ods(&["check-config", "--data-dir", data.to_str().unwrap()])
        .env("ODS_CONF", &conf)
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("2 problem"), "{all}");
    assert!(
        all.contains("login_max_failures_per_address") && all.contains("many"),
        "{all}"
    );
    assert!(all.contains("\"nowhere\" is not ADDRESS:PORT"), "{all}");
}

#[test]
fn check_config_before_the_first_start_says_what_will_be_generated() {
    let db = common::TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let with_db = |sub: &str| {
        let mut c = ods(&[sub, "--data-dir", data.to_str().unwrap()]);
        if let Some(url) = &db.url {
            c.args(["--database-url", url]);
        }
        c.output().unwrap()
    };
    let out = with_db("check-config");
    let all = text(&out);
    assert!(
        out.status.success(),
        "keys to be generated are no problem: {all}"
    );
    assert!(all.contains("configuration OK"), "{all}");
    for (var, file) in [
        ("SECRET_KEY", "secret.key"),
        ("DATABASE_KEY", "database.key"),
    ] {
        let want = format!(
            "first start: {var} is not set: ods serve generates it into {}",
            data.join(file).display()
        );
        assert!(all.contains(&want), "{want:?} in {all}");
    }
    if db.url.is_none() {
        assert!(
            all.contains("the SQLite database") && all.contains("does not exist yet"),
            "{all}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "check-config created something"
    );

    // After the first start (migrate makes the keys and the database), nothing is pending.
    let out = with_db("migrate");
    assert!(out.status.success(), "{}", text(&out));
    let out = with_db("check-config");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("first start"), "{all}");
    assert!(all.contains("secret_key: not set"), "{all}");
}

#[tokio::test]
async fn login_limits_are_configuration_a_live_server_obeys() {
    let env = |k: &str, v: &str| (k.to_string(), v.to_string());
    let s = Server::start_with(Opts {
        env: vec![
            env("ODS_LOGIN_MAX_FAILURES_PER_ADDRESS", "2"),
            env("ODS_LOGIN_WINDOW_SECS", "2"),
            env("ODS_LOGIN_MAX_FAILURES_PER_ACCOUNT", "3"),
        ],
        ..Opts::default()
    })
    .await;
    let admin = Cred::admin();
    let wrong = Cred::basic("admin", "wrong-password");
    let get = |client: &reqwest::Client, cred: &Cred| {
        cred.apply(client.get(s.at("/api/admin/about"))).send()
    };

    // Two failures from one address lock it (the default is ten), for the window.
    let here = client_from(Ipv4Addr::new(127, 0, 0, 5));
    assert_eq!(get(&here, &admin).await.unwrap().status(), 200);
    for _ in 0..2 {
        expect_unauthorized(get(&here, &wrong).await.unwrap()).await;
    }
    let r = get(&here, &admin).await.unwrap();
    let retry = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry.is_some_and(|secs| (1..=2).contains(&secs)),
        "Retry-After {retry:?}"
    );
    expect_error(r, 429, "too_many_attempts").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        get(&here, &admin).await.unwrap().status(),
        200,
        "the window passed"
    );

    // Three failures against the account from three addresses lock it for strangers,
    // but not for the address that logged in as it.
    for i in 6..9 {
        let elsewhere = client_from(Ipv4Addr::new(127, 0, 0, i));
        expect_unauthorized(get(&elsewhere, &wrong).await.unwrap()).await;
    }
    let stranger = client_from(Ipv4Addr::new(127, 0, 0, 9));
    expect_error(
        get(&stranger, &admin).await.unwrap(),
        429,
        "too_many_attempts",
    )
    .await;
    assert_eq!(get(&here, &admin).await.unwrap().status(), 200);
}
