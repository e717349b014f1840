//! Configuration as the operator meets it: each layer (default < ODS_CONF file <
//! environment < flag) overrides the one below it key by key, `check-config` before the
//! first start reports the keys `ods serve` will generate as such (and creates nothing),
//! the failed-login limits are configuration that a live server obeys, and so is the
//! database pool size (0 refused at start; a small pool is all a server uses).
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

/// Connections open to the database at `url`, other than the one asking (PostgreSQL and
/// MariaDB; `None` on SQLite, which has no server to ask).
async fn connections_to(url: &str) -> Option<i64> {
    use sqlx::{Connection, Row};
    let sql = if url.starts_with("postgres") {
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()"
    } else if url.starts_with("mysql") {
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
    } else {
        return None;
    };
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query(sql).fetch_one(&mut conn).await.unwrap().get(0);
    let _ = conn.close().await;
    Some(n)
}

#[tokio::test]
async fn the_database_pool_size_is_configuration_and_zero_is_refused() {
    // Zero is refused at start, by name, with the allowed range, from a flag and from
    // the environment alike; nothing is served.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (flags, env) in [
        (vec!["--db-pool-size", "0"], None),
        (vec![], Some(("ODS_DB_POOL_SIZE", "0"))),
        (vec![], Some(("ODS_DB_POOL_SIZE", "1001"))),
    ] {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir"];
        args.push(data.to_str().unwrap());
        args.extend_from_slice(&flags);
        let mut cmd = ods(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(
            all.contains("--db-pool-size") && all.contains("1..=1000"),
            "{all}"
        );
        assert!(!all.contains("listening"), "{all}");
    }

    // A small pool serves concurrent requests, and on PostgreSQL and MariaDB the server
    // keeps no more connections than it was given.
    let s = Server::start_with(Opts {
        env: vec![("ODS_DB_POOL_SIZE".into(), "2".into())],
        ..Opts::default()
    })
    .await;
    let r = s
        .upload("pool.pkg", common::bytes(300_000, 3), "Prod")
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let answers = futures_util::future::join_all((0..40).map(|i| {
        let path = if i % 2 == 0 {
            "/api/admin/packages".to_string()
        } else {
            "/share/pool.pkg".to_string()
        };
        let req = if i % 2 == 0 {
            s.admin(reqwest::Method::GET, &path)
        } else {
            s.http.get(s.at(&path))
        };
        async move { req.send().await.map(|r| r.status().as_u16()) }
    }))
    .await;
    for a in &answers {
        assert_eq!(a.as_ref().ok(), Some(&200), "{answers:?}\n{}", s.log());
    }
    if let Some(n) = connections_to(&s.database_url()).await {
        assert!((1..=2).contains(&n), "{n} connections with a pool of 2");
    }
    let out = s
        .command(&["check-config"])
        .env("ODS_DB_POOL_SIZE", "2")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(
        line(&String::from_utf8_lossy(&out.stdout), "db_pool_size").contains("= 2"),
        "{all}"
    );
}
