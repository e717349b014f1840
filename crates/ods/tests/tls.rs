//! Built-in TLS against a real `ods serve`: a CA and server certificates are made in
//! the test with the `openssl` CLI; a client that trusts the CA gets in (HTTP/1.1 and
//! h2 by ALPN), one that does not is refused; replacing the files and sending SIGHUP
//! puts the new certificate in service without a restart, and a bad new one keeps the
//! old one.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Opts, Server, openssl};

/// A CA `name`.pem/.key, and a certificate for 127.0.0.1 it signed, `name`-srv.pem/.key.
fn make_ca_and_cert(dir: &Path, name: &str) {
    let (ca, ca_key) = (format!("{name}.pem"), format!("{name}.key"));
    let (srv, srv_key) = (format!("{name}-srv.pem"), format!("{name}-srv.key"));
    let csr = format!("{name}-srv.csr");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            &format!("/CN=ODS test {name}"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &srv_key,
            "-out",
            &csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &srv,
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

fn trusting(ca: Option<&Path>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10));
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).unwrap();
        b = b.tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]);
    }
    b.build().unwrap()
}

async fn about(client: &reqwest::Client, s: &Server) -> reqwest::Result<reqwest::Response> {
    client
        .get(s.at("/api/admin/about"))
        .basic_auth(common::ADMIN.0, Some(common::ADMIN.1))
        .send()
        .await
}

fn curl_version(s: &Server, ca: &Path, http2: bool) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "--cacert",
        ])
        .arg(ca)
        .arg(if http2 { "--http2" } else { "--http1.1" })
        .arg(s.at("/share/none.pkg"))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn https_with_a_trusted_ca_and_reload_on_sighup() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca_and_cert(d, "one");
    make_ca_and_cert(d, "two");
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    std::fs::copy(d.join("one-srv.pem"), &cert).unwrap();
    std::fs::copy(d.join("one-srv.key"), &key).unwrap();
    let s = Server::start_with(Opts {
        env: vec![
            ("ODS_TLS_CERT".into(), cert.display().to_string()),
            ("ODS_TLS_KEY".into(), key.display().to_string()),
        ],
        ..Opts::default()
    })
    .await;
    assert!(s.url.starts_with("https://127.0.0.1:"), "banner: {}", s.url);

    let (one, two) = (d.join("one.pem"), d.join("two.pem"));
    let r = about(&trusting(Some(&one)), &s).await.unwrap();
    assert_eq!(r.status(), 200);
    // Which protocol reqwest picks depends on its features (h2 once object_store
    // enabled it); curl asks for each one explicitly.
    assert_eq!(curl_version(&s, &one, true), "2", "h2 by ALPN");
    assert_eq!(curl_version(&s, &one, false), "1.1");
    assert!(
        about(&trusting(Some(&two)), &s).await.is_err(),
        "an untrusted CA is refused"
    );
    assert!(
        about(&trusting(None), &s).await.is_err(),
        "no root trusts a private CA"
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = s.url.replace("https://", "http://");
    assert!(
        trusting(None)
            .get(format!("{plain}/api/admin/about"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
            != 200
    );

    // New files from another CA, then SIGHUP: the new certificate is served.
    std::fs::copy(d.join("two-srv.pem"), &cert).unwrap();
    std::fs::copy(d.join("two-srv.key"), &key).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while about(&trusting(Some(&two)), &s).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        about(&trusting(Some(&one)), &s).await.is_err(),
        "the old one is gone"
    );

    // A broken new pair keeps the one in service, and the log says why.
    std::fs::write(&cert, "not a certificate").unwrap();
    Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("does not load") {
        assert!(Instant::now() < deadline, "no reason logged:\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        about(&trusting(Some(&two)), &s).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_bad_certificate_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "garbage").unwrap();
    let mut s = Server::start().await;
    // Its data directory and database, not beside it (a second process on one SQLite
    // database is refused before the certificate is read).
    s.stop();
    let out = s
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("ODS_TLS_CERT", &cert)
        .env("ODS_TLS_KEY", &cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls_cert"));
    let out = s
        .command(&["check-config"])
        .env("ODS_TLS_CERT", &cert)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls_cert and tls_key go together"));
}

#[tokio::test]
async fn two_servers_register_and_sync_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca_and_cert(d, "ca");
    let ca = d.join("ca.pem");
    let start = || {
        Server::start_with(Opts {
            env: vec![
                (
                    "ODS_TLS_CERT".into(),
                    d.join("ca-srv.pem").display().to_string(),
                ),
                (
                    "ODS_TLS_KEY".into(),
                    d.join("ca-srv.key").display().to_string(),
                ),
                ("ODS_PEER_CA_FILE".into(), ca.display().to_string()),
                ("ODS_SYNC_INTERVAL".into(), "2".into()),
            ],
            ca: Some(ca.clone()),
            ..Opts::default()
        })
    };
    let (a, b) = (start().await, start().await);
    for (s, name) in [(&a, "A"), (&b, "B")] {
        assert!(s.url.starts_with("https://"));
        let r = s
            .admin(reqwest::Method::POST, "/api/admin/about")
            .json(&serde_json::json!({"name": name, "url": s.url, "stage": "Dev"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let about_b = b.get_json("/api/admin/about").await;
    let r = a
        .admin(reqwest::Method::POST, "/api/admin/register")
        .json(&serde_json::json!({"url": b.url, "iss_id": about_b["iss"], "key": about_b["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "register over https: {}",
        r.text().await.unwrap()
    );

    // A server that does not trust the CA cannot register: peers check certificates.
    let c = Server::start_with(Opts {
        env: vec![
            (
                "ODS_TLS_CERT".into(),
                d.join("ca-srv.pem").display().to_string(),
            ),
            (
                "ODS_TLS_KEY".into(),
                d.join("ca-srv.key").display().to_string(),
            ),
        ],
        ca: Some(ca.clone()),
        ..Opts::default()
    })
    .await;
    let r = c
        .admin(reqwest::Method::POST, "/api/admin/register")
        .json(&serde_json::json!({"url": b.url, "iss_id": about_b["iss"], "key": about_b["key"]}))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 201, "registered without trusting the peer's CA");

    let data = common::bytes(2 * 1024 * 1024 + 3, 9);
    assert_eq!(a.upload("tls.pkg", data.clone(), "Dev").await.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = b.http.get(b.at("/share/tls.pkg")).send().await.unwrap();
        if r.status() == 200 {
            assert_eq!(r.bytes().await.unwrap()[..], data[..]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tls.pkg did not reach B over https:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_plain_listener_beside_tls_serves_only_the_jamf_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca_and_cert(d, "ca");
    let s = Server::start_with(Opts {
        env: vec![
            (
                "ODS_TLS_CERT".into(),
                d.join("ca-srv.pem").display().to_string(),
            ),
            (
                "ODS_TLS_KEY".into(),
                d.join("ca-srv.key").display().to_string(),
            ),
            ("ODS_PLAIN_LISTEN".into(), "127.0.0.1:0".into()),
        ],
        ca: Some(d.join("ca.pem")),
        ..Opts::default()
    })
    .await;
    let plain = s
        .stdout_lines
        .iter()
        .find_map(|l| l.strip_prefix("Jamf downloads also on plain "))
        .expect("the banner names the plain listener")
        .trim_end_matches("/CasperShare/Packages/")
        .to_string();
    assert!(plain.starts_with("http://127.0.0.1:"), "{plain}");
    let data = common::bytes(100_000, 2);
    assert_eq!(
        s.upload("jamf.pkg", data.clone(), "Prod").await.status(),
        201
    );
    let c = trusting(None);
    let r = c
        .get(format!("{plain}/CasperShare/Packages/jamf.pkg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap()[..], data[..]);
    for path in ["/share/jamf.pkg", "/api/admin/about", "/api/ods/catalog"] {
        let r = c
            .get(format!("{plain}{path}"))
            .basic_auth(common::ADMIN.0, Some(common::ADMIN.1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} is not on the plain listener");
    }
    // The plain listener needs TLS beside it.
    let out = s
        .command(&["check-config"])
        .env_remove("ODS_TLS_CERT")
        .env_remove("ODS_TLS_KEY")
        .env("ODS_PLAIN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("plain_listen is only for use beside TLS")
    );
}
