//! `ods backup` and `ods restore` end to end: two real servers syncing, a backup of one
//! taken while it uploads and serves, that server destroyed (data directory and
//! database), restored from the backup, and shown to come back as itself and rejoin
//! its peer without fetching again what it had. Runs on the engine of `ODS_TEST_DB`
//! (PostgreSQL and MariaDB through pg_dump / mariadb-dump).
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, bytes, register, sha256_hex};
use serde_json::Value;

async fn node(name: &str) -> Server {
    let mut opts = common::Opts::default();
    opts.env.push(("ODS_SYNC_INTERVAL".into(), "2".into()));
    let s = Server::start_with(opts).await;
    common::mesh::name(&s, name, "Prod").await;
    s
}

async fn wait_public(s: &Server, filename: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let list = s.get_json("/api/admin/packages").await;
        if let Some(p) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["filename"] == filename && p["status"] == "Public")
        {
            return p.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{filename} not Public in {secs} s\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn download(s: &Server, filename: &str) -> Vec<u8> {
    let r = s
        .http
        .get(s.at(&format!("/share/{filename}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "download {filename}");
    r.bytes().await.unwrap().to_vec()
}

async fn served(s: &Server) -> u64 {
    s.get_json("/api/admin/sync").await["chunk_bytes_served"]
        .as_u64()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Whether the (stopped) server's database lists `filename` as Public.
async fn restored_public(s: &Server, filename: &str) -> bool {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let url =
        s.db.url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", s.data_dir.join("ods.sqlite3").display()));
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let sql = format!(
        "SELECT COUNT(*) FROM packages WHERE filename = '{filename}' AND status = 'Public'"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let n: i64 = row.try_get(0).unwrap();
    let _ = conn.close().await;
    n > 0
}

/// Runs `ods SUB DIR` with `s`'s configuration; returns (success, stdout, stderr).
fn ods(s: &Server, sub: &str, dir: &Path) -> (bool, String, String) {
    let out = s.command(&[sub]).arg(dir).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn restored_server_rejoins_without_fetching_again() {
    let a = node("A").await;
    let mut b = node("B").await;
    register(&b, &a).await;
    let p1 = bytes(3 * 1024 * 1024 + 5, 1);
    assert_eq!(a.upload("one.pkg", p1.clone(), "Prod").await.status(), 201);
    wait_public(&b, "one.pkg", 60).await;

    // The backup runs while B takes an upload and serves downloads.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b-backup");
    let p2 = bytes(2 * 1024 * 1024 + 9, 2);
    let busy = async {
        let up = b.upload("two.pkg", p2.clone(), "Prod");
        let downloads = async {
            for _ in 0..5 {
                assert_eq!(download(&b, "one.pkg").await, p1);
            }
        };
        let (up, ()) = tokio::join!(up, downloads);
        assert_eq!(up.status(), 201);
    };
    let mut cmd = b.command(&["backup"]);
    cmd.arg(&dir);
    let backup = async {
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ((), (ok, out, err)) = tokio::join!(busy, backup);
    assert!(ok, "ods backup failed: {out}{err}");
    assert!(out.contains("backup of B"), "{out}");

    // What the backup holds, and that it is private.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["ods_version"], env!("CARGO_PKG_VERSION"));
    assert!(manifest["created_at"].as_str().unwrap().ends_with('Z'));
    let engine = match common::engine() {
        common::Engine::Sqlite => "sqlite",
        common::Engine::Postgres => "postgres",
        common::Engine::MySql => "mysql",
    };
    assert_eq!(manifest["database"]["engine"], engine, "{manifest}");
    assert_eq!(manifest["storage"]["copied"], true);
    let held: Vec<String> = manifest["storage"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sha256"].as_str().unwrap().to_string())
        .collect();
    assert!(held.contains(&sha256_hex(&p1)), "{manifest}");
    assert_eq!(mode(&dir), 0o700);
    let db_file = dir.join(manifest["database"]["file"].as_str().unwrap());
    for f in ["manifest.json", "secret.key", "database.key"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&db_file), 0o600);
    assert!(std::fs::metadata(&db_file).unwrap().len() > 0);
    for sha in &held {
        let f = dir.join("blobs").join(&sha[..2]).join(sha);
        assert_eq!(&sha256_hex(&std::fs::read(&f).unwrap()), sha);
    }
    // A second backup into the same directory is refused.
    let (ok, _, err) = ods(&b, "backup", &dir);
    assert!(!ok && err.contains("not empty"), "{err}");

    // A has B's upload; then B is lost: data directory and database.
    wait_public(&a, "two.pkg", 60).await;
    let about = b.get_json("/api/admin/about").await;
    b.kill9();
    std::fs::remove_dir_all(&b.data_dir).unwrap();
    b.db.recreate();
    let served_before = served(&a).await;
    // Something new on A while B is away.
    let p3 = bytes(1024 * 1024 + 3, 3);
    assert_eq!(
        a.upload("three.pkg", p3.clone(), "Prod").await.status(),
        201
    );

    let (ok, out, err) = ods(&b, "restore", &dir);
    assert!(ok, "ods restore failed: {out}{err}");
    assert!(out.contains("restored B"), "{out}");
    assert!(
        !err.contains("warning"),
        "every Public package has its content: {err}"
    );
    assert_eq!(mode(&b.data_dir), 0o700);
    // Restoring over a server is refused and changes nothing.
    let before = std::fs::read_dir(&b.data_dir).unwrap().count();
    let (ok, _, err) = ods(&b, "restore", &dir);
    assert!(!ok && err.contains("not empty"), "{err}");
    let after = std::fs::read_dir(&b.data_dir).unwrap().count();
    assert_eq!(before, after);

    // Whether the upload during the backup made it into the database copy: its blob
    // may be in the backup while its package row came after the snapshot.
    let two_held = restored_public(&b, "two.pkg").await;
    b.restart().await;
    let again = b.get_json("/api/admin/about").await;
    for k in ["name", "iss", "key", "url"] {
        assert_eq!(again[k], about[k], "{k}: the same identity");
    }
    assert_eq!(download(&b, "one.pkg").await, p1);
    wait_public(&b, "three.pkg", 60).await;
    assert_eq!(download(&b, "three.pkg").await, p3);
    if two_held {
        assert_eq!(download(&b, "two.pkg").await, p2);
    } else {
        // Uploaded after the database copy: the peer brings it back.
        wait_public(&b, "two.pkg", 60).await;
    }
    // A few anti-entropy rounds later, B has fetched from A only what it lacked.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let expected = p3.len() as u64 + if two_held { 0 } else { p2.len() as u64 };
    let now = served(&a).await;
    assert_eq!(
        now - served_before,
        expected,
        "A served B only the package it lacked (two.pkg in the backup: {two_held}; \
         served {served_before} before, {now} after)\n{}",
        b.log()
    );
}

#[tokio::test]
async fn restore_refuses_what_it_cannot_do() {
    let mut s = node("S").await;
    let tmp = tempfile::tempdir().unwrap();
    // Not a backup.
    let (ok, _, err) = ods(&s, "restore", tmp.path());
    assert!(!ok && err.contains("manifest.json"), "{err}");
    let dir = tmp.path().join("bk");
    let (ok, out, err) = ods(&s, "backup", &dir);
    assert!(ok, "{out}{err}");
    s.kill9();
    std::fs::remove_dir_all(&s.data_dir).unwrap();
    // An explicit DATABASE_KEY other than the backup's would leave the database's
    // secrets unreadable: refused before anything is written.
    let out = s
        .command(&["restore"])
        .arg(&dir)
        .env("DATABASE_KEY", "00".repeat(32))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("DATABASE_KEY"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&s.data_dir).unwrap().count(), 0);
    // A non-empty database (PostgreSQL/MariaDB) or data directory is refused too.
    if common::engine() != common::Engine::Sqlite {
        let (ok, _, err) = ods(&s, "restore", &dir);
        assert!(!ok && err.contains("table(s)"), "{err}");
        s.db.recreate();
    }
    let (ok, out, err) = ods(&s, "restore", &dir);
    assert!(ok, "{out}{err}");
    s.restart().await;
    assert_eq!(s.get_json("/api/admin/about").await["name"], "S");
}
