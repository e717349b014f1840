//! The Debian package, for real: builds it with `scripts/deb` from the test's own
//! binary (dev profile, so CI needs no release build), installs it with `dpkg -i` on
//! this machine (CI runs as root on a throwaway machine), checks what the maintainer
//! scripts made, verifies the unit with `systemd-analyze verify`, runs `ods
//! check-config` and `ods serve` as the unit would (its User, ExecStart and
//! Environment) and sees the server answer HTTP, then purges the package and checks
//! that the purge removed the user, the data and the config. It does not depend on the
//! database engine, so it runs in the SQLite round only (dpkg is one per machine).
mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNIT: &str = "/lib/systemd/system/ods.service";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(p: &str) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn uid_of(user: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", user]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
}

/// Purges the package however the test ends.
struct Installed;
impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "ods"]).output();
    }
}

/// The values of `key=` lines of the unit's [Service] section.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

/// The unit's command as the service user, with only the unit's environment (and
/// `extra`, which the test adds).
fn as_service(unit: &str, args: &[&str], extra: &[(&str, &str)]) -> Command {
    let user = unit_values(unit, "User")
        .pop()
        .expect("the unit names its User");
    let exec = unit_values(unit, "ExecStart").pop().expect("ExecStart");
    let mut words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(
        words.remove(0),
        "/usr/bin/ods",
        "ExecStart runs the packaged binary"
    );
    let mut c = Command::new("runuser");
    c.args(["-u", &user, "--", "env", "-i", "PATH=/usr/bin:/bin"]);
    for e in unit_values(unit, "Environment") {
        c.arg(e);
    }
    for (k, v) in extra {
        c.arg(format!("{k}={v}"));
    }
    c.arg("/usr/bin/ods");
    if args.is_empty() {
        c.args(&words);
    } else {
        c.args(args);
    }
    let dir = unit_values(unit, "WorkingDirectory").pop();
    c.current_dir(dir.unwrap_or_else(|| "/".into()));
    c
}

#[tokio::test]
async fn deb_installs_serves_as_its_user_and_purges() {
    if common::engine() != common::Engine::Sqlite {
        eprintln!("deb: runs in the SQLite round only (it uses no database server)");
        return;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "tests/deb.rs installs a package: run it as root (CI does)"
    );
    assert!(
        !Path::new("/var/lib/ods").exists() && uid_of("ods").is_none(),
        "an ods package or user is already on this machine: purge it first"
    );
    // The test binary's target directory: .../debug/ods.
    let bin = common::ods_bin();
    let target: PathBuf = bin.parent().unwrap().parent().unwrap().into();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = run(Command::new(root.join("scripts/deb"))
        .args(["--profile", "dev", "--no-build"])
        .env("CARGO_TARGET_DIR", &target));
    let deb = out.lines().last().unwrap().trim().to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).is_file(), "{out}");

    let _guard = Installed;
    run(Command::new("dpkg").args(["-i", &deb]));
    // What postinst made.
    let uid = uid_of("ods").expect("postinst created the ods user");
    assert_ne!(uid, 0);
    let data = std::fs::metadata("/var/lib/ods").unwrap();
    assert_eq!((data.uid(), mode("/var/lib/ods")), (uid, 0o700));
    let conf = std::fs::metadata("/etc/ods/ods.toml").unwrap();
    assert_eq!((conf.uid(), mode("/etc/ods/ods.toml")), (0, 0o640));
    for f in [
        "/usr/share/man/man1/ods.1.gz",
        "/usr/share/man/man1/ods-serve.1.gz",
        "/usr/share/man/man1/ods-user-set-password.1.gz",
        "/usr/share/bash-completion/completions/ods",
        "/usr/share/zsh/vendor-completions/_ods",
        "/usr/share/fish/vendor_completions.d/ods.fish",
    ] {
        assert!(std::fs::metadata(f).unwrap().len() > 100, "{f}");
    }
    let shipped = std::fs::read_to_string("/etc/ods/ods.toml").unwrap();
    assert_eq!(
        shipped,
        ods::config::sample::render(ods::config::sample::DEBIAN)
    );

    // The unit: sandboxed, and valid as systemd reads it.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for d in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/ods",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "Environment=ODS_CONF=/etc/ods/ods.toml",
        "User=ods",
    ] {
        assert!(unit.lines().any(|l| l == d), "the unit sets {d}");
    }
    let verify = Command::new("systemd-analyze")
        .args(["verify", UNIT])
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // check-config as the service user, with the unit's environment.
    let out = run(&mut as_service(&unit, &["check-config"], &[]));
    assert!(
        out.contains("configuration OK") && out.contains("data /var/lib/ods"),
        "{out}"
    );
    assert!(out.contains("data_dir = /var/lib/ods (ODS_CONF)"), "{out}");

    // serve: the unit's ExecStart; the test only moves it off the default port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = as_service(&unit, &[], &[("ODS_LISTEN", &listen)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = serve.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.starts_with("ODS listening on") => break,
            Ok(_) => {}
            Err(_) => {
                assert!(serve.try_wait().unwrap().is_none(), "ods serve exited");
                assert!(Instant::now() < deadline, "ods serve did not start");
            }
        }
    }
    let http = common::client_for(&common::Opts::default());
    let r = http
        .get(format!("http://{listen}/api/admin/about"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "answers, and asks for credentials");
    let r = http
        .get(format!("http://{listen}/api/admin/about"))
        .basic_auth(common::DEFAULT_ADMIN.0, Some(common::DEFAULT_ADMIN.1))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error(),
        "the default admin must change its password first"
    );
    // It wrote its database and keys, as the service user, privately.
    for f in [
        "/var/lib/ods/ods.sqlite3",
        "/var/lib/ods/secret.key",
        "/var/lib/ods/database.key",
    ] {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(
            (m.uid(), m.permissions().mode() & 0o777),
            (uid, 0o600),
            "{f}"
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();

    // purge: user, data and config go.
    run(Command::new("dpkg").args(["--purge", "ods"]));
    assert!(uid_of("ods").is_none(), "purge removed the user");
    assert!(
        !Path::new("/var/lib/ods").exists(),
        "purge removed the data"
    );
    assert!(!Path::new("/etc/ods").exists(), "purge removed the config");
    assert!(!Path::new("/usr/bin/ods").exists());
}
