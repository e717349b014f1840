//! Unit tests of the configuration: layering, every problem reported at once, secrets
//! hidden, and the key files generated once.
use super::*;
use clap::{Args, Command, FromArgMatches};

/// Settings from these flags and this ODS_CONF text, ignoring the environment.
fn parse(args: &[&str], file: &str) -> Settings {
    let conf = ConfFile::parse(file);
    assert_eq!(conf.problems, Vec::<String>::new());
    let cmd = conf.apply(Settings::augment_args(Command::new("ods")).mut_args(|a| a.env(None)));
    let m = cmd.try_get_matches_from(std::iter::once("ods").chain(args.iter().copied()));
    Settings::from_arg_matches(&m.unwrap()).unwrap()
}

fn settings(args: &[&str]) -> Settings {
    parse(args, "")
}

#[test]
fn secrets_hidden_in_debug() {
    let dir = tempfile::tempdir().unwrap();
    let flags = settings(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--database-url",
        "postgres://u:hunter2@h/db",
        "--secret-key",
        "s3cr3t-s3cr3t-s3cr3t",
        "--mysql-password",
        "s3cr3t-too",
    ]);
    assert!(!format!("{flags:?}").contains("s3cr3t"), "{flags:?}");
    let c = Config::resolve(flags, KeyFiles::Create).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("s3cr3t"), "{dbg}");
    assert_eq!(c.database_url_redacted(), "postgres://u:***@h/db");
}

#[test]
fn every_problem_is_reported() {
    let flags = settings(&[
        "--listen",
        "nonsense",
        "--data-dir",
        "/nonexistent/ods",
        "--database-url",
        "oracle://x",
        "--database-key",
        "short",
        "--share-context",
        "a/b",
    ]);
    let problems = Config::resolve(flags, KeyFiles::ReadOnly).unwrap_err();
    assert!(problems.len() >= 5, "{problems:#?}");
}

#[test]
fn keys_generated_once_with_private_mode() {
    let dir = tempfile::tempdir().unwrap();
    let flags = || settings(&["--data-dir", dir.path().to_str().unwrap()]);
    let a = Config::resolve(flags(), KeyFiles::Create).unwrap();
    let b = Config::resolve(flags(), KeyFiles::Create).unwrap();
    assert_eq!(a.database_key.0, b.database_key.0);
    assert_eq!(a.secret_key.0, b.secret_key.0);
    assert!(a.pending.is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("database.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn keys_to_be_generated_are_pending_not_problems() {
    let dir = tempfile::tempdir().unwrap();
    let flags = || settings(&["--data-dir", dir.path().to_str().unwrap()]);
    let c = Config::resolve(flags(), KeyFiles::ReadOnly).unwrap();
    assert_eq!(c.pending.len(), 2, "{:?}", c.pending);
    assert!(
        c.pending[0].starts_with("SECRET_KEY is not set"),
        "{:?}",
        c.pending
    );
    assert!(
        c.pending[1].starts_with("DATABASE_KEY is not set"),
        "{:?}",
        c.pending
    );
    assert!(
        !dir.path().join("secret.key").exists(),
        "nothing is created"
    );
    // Once generated, they are read, not pending.
    let made = Config::resolve(flags(), KeyFiles::Create).unwrap();
    let read = Config::resolve(flags(), KeyFiles::ReadOnly).unwrap();
    assert!(read.pending.is_empty(), "{:?}", read.pending);
    assert_eq!(read.database_key.0, made.database_key.0);
    // A key file that is there but bad is a problem.
    std::fs::write(dir.path().join("database.key"), "garbage").unwrap();
    let problems = Config::resolve(flags(), KeyFiles::ReadOnly).unwrap_err();
    assert!(problems[0].contains("32-byte key"), "{problems:?}");
}

#[test]
fn toml_keys_any_case_and_mysql_vars() {
    let dir = tempfile::tempdir().unwrap();
    let l = parse(
        &["--data-dir", dir.path().to_str().unwrap()],
        "MYSQL_SERVER = \"db:3306\"\nmysql_user = \"ods\"\nMYSQL_PASSWORD = \"p@ss\"\nDEBUG = true\nods_sync_interval = 7\nLogin_Max_Failures_Per_Address = 3",
    );
    assert_eq!(l.mysql_server.as_deref(), Some("db:3306"));
    let c = Config::resolve(l, KeyFiles::Create).unwrap();
    assert_eq!(c.database_url.0, "mysql://ods:p%40ss@db:3306/ods");
    assert!(c.debug);
    assert_eq!(c.sync_interval_secs, 7);
    assert_eq!(c.login_max_failures_per_address, 3);
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let file = "listen = \"127.0.0.1:1\"\nODS_LOGIN_WINDOW_SECS = 5\ndebug = true";
    let s = parse(&["--listen", "127.0.0.1:2", "--debug=false"], file);
    assert_eq!(s.listen, "127.0.0.1:2");
    assert!(!s.debug);
    assert_eq!(s.login_window_secs, 5, "from the file");
    assert_eq!(s.login_max_failures_per_address, 10, "the default");
    assert!(parse(&["--debug"], "").debug, "a bare boolean flag is true");
}

#[test]
fn bad_files_are_reported_key_by_key_without_secrets() {
    let conf = ConfFile::parse(
        "no_such_key = 1\nODS_JOB_POLL_MS = \"soon\"\nlogin_max_failures = 0\nsecret_key = [1]\nlisten = \"127.0.0.1:9\"",
    );
    assert_eq!(conf.problems.len(), 4, "{:#?}", conf.problems);
    assert!(
        conf.problems.iter().any(|p| p.contains("no_such_key")),
        "{:?}",
        conf.problems
    );
    assert!(
        conf.problems
            .iter()
            .any(|p| p.contains("ODS_JOB_POLL_MS") && p.contains("soon"))
    );
    assert_eq!(
        conf.values,
        vec![("listen".to_string(), "127.0.0.1:9".to_string())]
    );
    let conf = ConfFile::parse("not toml at all ===");
    assert_eq!(conf.problems.len(), 1);
}
