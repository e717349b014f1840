//! The `ods` command line beside a running server: `check-config` reports every
//! problem at once without printing secrets, `migrate` is idempotent,
//! `user set-password` takes effect over HTTP at once, and `man --out-dir` writes a
//! manual page for every subcommand, each naming its own flags.
mod admin_support;
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use admin_support::*;
use common::Server;
use reqwest::Method;

/// `ods` with none of the configuration variables of the calling environment.
fn bare(args: &[&str]) -> Command {
    let mut c = Command::new(common::ods_bin());
    c.args(args);
    for k in [
        "DATABASE_URL",
        "ODS_CONF",
        "ODS_DATA_DIR",
        "ODS_LISTEN",
        "SECRET_KEY",
        "DATABASE_KEY",
        "UPLOAD_STAGING_DIRECTORY",
        "DEBUG",
        "MYSQL_SERVER",
        "MYSQL_DATABASE",
        "MYSQL_USER",
        "MYSQL_PASSWORD",
        "ODS_SHARE_CONTEXT",
        "ODS_ALLOW_INSECURE_PEERS",
        "ODS_JOB_POLL_MS",
    ] {
        c.env_remove(k);
    }
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

fn with_stdin(mut c: Command, input: &str) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn check_config_reports_every_problem_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/data");
    let secrets = [
        "hunter2-not-a-key-SECRET",
        "session-secret-VALUE-123456",
        "db-PASSWORD-789",
    ];
    let out = bare(&[
        "check-config",
        "--listen",
        "not-an-address",
        "--data-dir",
        missing.to_str().unwrap(),
    ])
    .env("DATABASE_KEY", secrets[0])
    .env("SECRET_KEY", secrets[1])
    .env(
        "DATABASE_URL",
        format!("oracle://ods:{}@db.example/ods", secrets[2]),
    )
    .output()
    .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    assert_eq!(problems.len(), 4, "{all}");
    assert!(stderr.contains("4 problem"), "{all}");
    let has = |needles: &[&str]| {
        problems
            .iter()
            .any(|p| needles.iter().all(|n| p.contains(n)))
    };
    assert!(has(&["not-an-address"]), "the listen address: {all}");
    assert!(has(&["DATABASE_KEY"]), "the database key: {all}");
    assert!(
        has(&[missing.to_str().unwrap(), "does not exist"]),
        "the data directory: {all}"
    );
    assert!(
        has(&["DATABASE_URL", "ods:***@"]),
        "the database URL: {all}"
    );
    for secret in secrets {
        assert!(!all.contains(secret), "{secret:?} printed: {all}");
    }
    assert!(!missing.exists(), "check-config creates nothing");

    // The same secrets given in the ODS_CONF file are not printed either.
    let conf = dir.path().join("ods.toml");
    std::fs::write(
        &conf,
        format!(
            "listen = \"nowhere\"\nDATABASE_KEY = \"{}\"\nSECRET_KEY = \"{}\"\n",
            secrets[0], secrets[1]
        ),
    )
    .unwrap();
    let out = bare(&["check-config", "--data-dir", missing.to_str().unwrap()])
        .env("ODS_CONF", &conf)
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("nowhere") && all.contains("DATABASE_KEY"),
        "{all}"
    );
    for secret in secrets {
        assert!(!all.contains(secret), "{secret:?} printed: {all}");
    }
}

#[tokio::test]
async fn migrate_check_config_and_set_password_beside_a_live_server() {
    let s = Server::start().await;
    let admin = Cred::admin();
    let r = upload_to(
        &s,
        &admin,
        "/api/admin/upload",
        "kept.pkg",
        vec![5; 4096],
        "Prod",
    )
    .await;
    assert_eq!(r.status(), 201);

    // check-config on a good configuration: OK, and the keys are not printed.
    let out = s.command(&["check-config"]).output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("configuration OK"), "{all}");
    for key in ["database.key", "secret.key"] {
        let k = std::fs::read_to_string(s.data_dir.join(key)).unwrap();
        assert!(k.trim().len() >= 32);
        assert!(!all.contains(k.trim()), "{key} printed: {all}");
    }

    // migrate on the live database: nothing to do, twice; the server carries on.
    for _ in 0..2 {
        let out = s.command(&["migrate"]).output().unwrap();
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        assert!(all.contains("database is up to date"), "{all}");
    }
    let list = s.get_json("/api/admin/packages").await;
    assert_eq!(list["items"][0]["filename"], "kept.pkg");

    // migrate on a fresh database: applies everything once, then nothing.
    let db = common::TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fresh = || {
        let mut c = bare(&["migrate", "--data-dir", data.to_str().unwrap()]);
        if let Some(url) = &db.url {
            c.args(["--database-url", url]);
        }
        c.output().unwrap()
    };
    let first = fresh();
    assert!(first.status.success(), "{}", text(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.starts_with("applied migrations [") && !stdout.contains("[]"),
        "{}",
        text(&first)
    );
    let second = fresh();
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("database is up to date"),
        "{}",
        text(&second)
    );

    // user set-password: the old password stops working at once (even though it was
    // just used), the new one works.
    let get_about = |cred: Cred| {
        let s = &s;
        async move {
            req(s, &cred, Method::GET, "/api/admin/about")
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(get_about(admin.clone()).await.status(), 200);
    let out = with_stdin(
        s.command(&["user", "set-password", "admin"]),
        "Brand-new-pass-1\n",
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("password of admin changed"), "{all}");
    assert!(!all.contains("Brand-new-pass-1"), "{all}");
    let new = Cred::basic("admin", "Brand-new-pass-1");
    assert_eq!(get_about(new.clone()).await.status(), 200);
    expect_unauthorized(get_about(admin.clone()).await).await;

    // A weak password is refused and changes nothing.
    let out = with_stdin(s.command(&["user", "set-password", "admin"]), "short\n");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("8 characters"), "{}", text(&out));
    assert_eq!(get_about(new.clone()).await.status(), 200);

    // A missing user is created as an admin.
    let out = with_stdin(
        s.command(&["user", "set-password", "ops"]),
        "ops-password-1\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("admin user ops created"));
    let r = req(
        &s,
        &Cred::basic("ops", "ops-password-1"),
        Method::GET,
        "/api/admin/users",
    )
    .send()
    .await
    .unwrap();
    let users = expect_json(r, 200).await;
    assert!(
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "ops" && u["role"] == "admin"),
        "{users}"
    );
}

#[test]
fn man_writes_a_page_for_every_subcommand_with_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = bare(&["man", "--out-dir", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Every page, and what each must mention (roff escapes '-' as '\-').
    let settings = ["--listen", "--data-dir", "--database-url", "--db-pool-size"];
    let want: &[(&str, &[&str])] = &[
        ("ods.1", &["serve", "worker", "check-config", "storage"]),
        ("ods-serve.1", &settings),
        ("ods-worker.1", &settings),
        ("ods-migrate.1", &settings),
        ("ods-check-config.1", &settings),
        ("ods-user.1", &["set-password"]),
        ("ods-user-set-password.1", &["<NAME>", "--database-url"]),
        ("ods-backup.1", &["<DIR>", "--data-dir"]),
        ("ods-restore.1", &["<DIR>", "--data-dir"]),
        ("ods-completions.1", &["bash", "zsh", "fish"]),
        ("ods-man.1", &["--out-dir"]),
        ("ods-storage.1", &["migrate"]),
        ("ods-storage-migrate.1", &["--to", "--storage"]),
    ];
    let mut written: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut expected: Vec<String> = want.iter().map(|(f, _)| f.to_string()).collect();
    expected.sort();
    assert_eq!(written, expected, "one page per command, no more");
    for (file, words) in want {
        let page = std::fs::read_to_string(out_dir.join(file))
            .unwrap()
            .replace("\\-", "-");
        let name = file.trim_end_matches(".1");
        assert!(
            page.starts_with(".ie ") || page.contains(".TH"),
            "{file} is not roff: {page}"
        );
        assert!(page.contains(&format!(".TH {name} 1")), "{file}: {page}");
        for w in *words {
            assert!(page.contains(w), "{file} does not mention {w}: {page}");
        }
    }

    // Without --out-dir the top-level page goes to standard output, as before.
    let out = bare(&["man"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH ods 1"), "{page}");

    // A directory that cannot be made is an error naming it.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let bad = blocker.join("man1");
    let out = bare(&["man", "--out-dir", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(bad.to_str().unwrap()),
        "{}",
        text(&out)
    );
}
