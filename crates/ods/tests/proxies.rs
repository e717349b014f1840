//! Clients behind a reverse proxy, against a real `ods serve`: only a peer inside
//! `trusted_proxies` may name the client (X-Forwarded-For walked from the right, or
//! RFC 7239 `Forwarded`), so failed logins through the proxy lock out only the client
//! that made them, and the same headers from any other peer are ignored.
mod admin_support;
mod common;

use std::net::Ipv4Addr;

use admin_support::*;
use common::{Opts, Server};

const PROXY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

async fn about(
    s: &Server,
    client: &reqwest::Client,
    cred: &Cred,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut rb = cred.apply(client.get(s.at("/api/admin/about")));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

#[tokio::test]
async fn failed_logins_through_a_trusted_proxy_lock_out_only_that_client() {
    let s = Server::start_with(Opts {
        env: vec![("ODS_TRUSTED_PROXIES".into(), "127.0.0.2/32".into())],
        ..Opts::default()
    })
    .await;
    let (admin, wrong) = (Cred::admin(), Cred::basic("admin", "wrong-password"));
    let proxy = client_from(PROXY);

    // Ten failures "through the proxy" from one forwarded client.
    let mallory = [("x-forwarded-for", "203.0.113.7")];
    for i in 0..10 {
        let r = about(&s, &proxy, &wrong, &mallory).await;
        assert_eq!(r.status(), 401, "attempt {}", i + 1);
    }
    // That client is locked out, even with the right password...
    expect_error(
        about(&s, &proxy, &admin, &mallory).await,
        429,
        "too_many_attempts",
    )
    .await;
    // ...also when it forges an entry on the left (the walk starts at the right)...
    expect_error(
        about(
            &s,
            &proxy,
            &admin,
            &[("x-forwarded-for", "198.51.100.1, 203.0.113.7")],
        )
        .await,
        429,
        "too_many_attempts",
    )
    .await;
    // ...and when the proxy names it with RFC 7239 Forwarded.
    expect_error(
        about(
            &s,
            &proxy,
            &admin,
            &[("forwarded", "for=203.0.113.7;proto=https")],
        )
        .await,
        429,
        "too_many_attempts",
    )
    .await;
    // Every other client of the same proxy, and the proxy itself, still logs in.
    for headers in [
        &[("x-forwarded-for", "203.0.113.8")][..],
        &[("x-forwarded-for", "203.0.113.7, 203.0.113.9")][..],
        &[("forwarded", r#"for="[2001:db8::8]:4711""#)][..],
        &[][..],
    ] {
        let r = about(&s, &proxy, &admin, headers).await;
        assert_eq!(r.status(), 200, "through the proxy with {headers:?}");
    }
    // So do direct clients.
    assert_eq!(about(&s, &s.http, &admin, &[]).await.status(), 200);
    // The log names the forwarded client, not the proxy.
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains("failed login") && l.contains("203.0.113.7")),
        "the failed logins are logged with the forwarded address:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("failed login") && l.contains("127.0.0.2")),
        "no failed login is logged against the proxy:\n{log}"
    );
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let s = Server::start_with(Opts {
        env: vec![("ODS_TRUSTED_PROXIES".into(), "127.0.0.2/32".into())],
        ..Opts::default()
    })
    .await;
    let (admin, wrong) = (Cred::admin(), Cred::basic("admin", "wrong-password"));
    let stranger = client_from(STRANGER);

    // A peer that is not a trusted proxy varies the headers on each attempt: they are
    // not believed, so all ten failures count against its own address.
    for i in 0..10 {
        let forged = format!("203.0.113.{}", 20 + i);
        let r = about(
            &s,
            &stranger,
            &wrong,
            &[
                ("x-forwarded-for", forged.as_str()),
                ("forwarded", &format!("for={forged}")),
            ],
        )
        .await;
        assert_eq!(r.status(), 401, "attempt {}", i + 1);
    }
    for headers in [
        &[("x-forwarded-for", "203.0.113.99")][..],
        &[("forwarded", "for=203.0.113.99")][..],
        &[][..],
    ] {
        expect_error(
            about(&s, &stranger, &admin, headers).await,
            429,
            "too_many_attempts",
        )
        .await;
    }
    // The address it pretended to be is not locked: through the real proxy it logs in.
    let proxy = client_from(PROXY);
    let r = about(&s, &proxy, &admin, &[("x-forwarded-for", "203.0.113.25")]).await;
    assert_eq!(r.status(), 200);
    assert!(
        s.log()
            .lines()
            .any(|l| l.contains("failed login") && l.contains("127.0.0.3")),
        "the failures are logged against the socket peer:\n{}",
        s.log()
    );
}

#[tokio::test]
async fn without_trusted_proxies_nobody_is_believed() {
    // The default: an empty list. Even loopback's headers are ignored.
    let s = Server::start().await;
    let (admin, wrong) = (Cred::admin(), Cred::basic("admin", "wrong-password"));
    let proxy = client_from(PROXY);
    for i in 0..10 {
        let forged = format!("203.0.113.{}", 40 + i);
        let r = about(&s, &proxy, &wrong, &[("x-forwarded-for", forged.as_str())]).await;
        assert_eq!(r.status(), 401, "attempt {}", i + 1);
    }
    expect_error(
        about(&s, &proxy, &admin, &[("x-forwarded-for", "203.0.113.200")]).await,
        429,
        "too_many_attempts",
    )
    .await;
    assert_eq!(about(&s, &s.http, &admin, &[]).await.status(), 200);
}
