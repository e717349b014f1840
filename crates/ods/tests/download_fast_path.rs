//! What the download path keeps in memory, against real `ods serve` processes: two
//! processes share one PostgreSQL or MariaDB database (as the nodes of one site do). A change made through
//! one is served by it at once and by the other within its one-second cache of package
//! rows, and a body always matches the ETag it is sent with. Basic download auth
//! trusts verified credentials briefly: a password change ends the old password at
//! once on the process that made it, and within that second on the other.
mod common;

use std::process::{Child, Stdio};

use common::{Server, sha256_hex};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A second `ods serve` on `s`'s data directory and database; killed on drop.
struct Sibling {
    child: Child,
    url: String,
}

impl Sibling {
    fn start(s: &Server) -> Sibling {
        let mut child = s
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = {
            use std::io::BufRead;
            let out = std::io::BufReader::new(child.stdout.take().unwrap());
            out.lines()
                .map_while(Result::ok)
                .find_map(|l| {
                    l.strip_prefix("ODS listening on ")
                        .map(|u| u.trim().to_string())
                })
                .expect("the second process listens")
        };
        Sibling { child, url }
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two processes on one SQLite database are refused (see tests/multinode.rs, which
/// asserts it): these tests run in the PostgreSQL and MariaDB rounds.
fn sqlite_round() -> bool {
    let sqlite = common::engine() == common::Engine::Sqlite;
    if sqlite {
        println!("two processes on one database need PostgreSQL or MariaDB: not run on SQLite");
    }
    sqlite
}

/// GET `url`; (status, ETag, body).
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    creds: Option<(&str, &str)>,
) -> (StatusCode, Option<String>, Vec<u8>) {
    let mut req = http.get(url);
    if let Some((u, p)) = creds {
        req = req.basic_auth(u, Some(p));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let tag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    (status, tag, r.bytes().await.unwrap().to_vec())
}

/// A 200's body is the file its ETag names.
fn assert_consistent(what: &str, tag: &Option<String>, body: &[u8]) {
    assert_eq!(
        tag.as_deref(),
        Some(format!("\"{}\"", sha256_hex(body)).as_str()),
        "{what}: the body is not the file its ETag names"
    );
}

#[tokio::test]
async fn a_package_changed_on_one_process_is_served_changed_by_both() {
    if sqlite_round() {
        return;
    }
    let s = Server::start().await;
    let old = common::bytes(64 * 1024, 1);
    let new = common::bytes(64 * 1024 + 5, 2);
    assert_eq!(
        s.upload("site.pkg", old.clone(), "Prod").await.status(),
        201
    );
    let b = Sibling::start(&s);
    let on_a = s.at("/share/site.pkg");
    let on_b = format!("{}/share/site.pkg", b.url);
    // Both serve (and so cache) the old file.
    for url in [&on_a, &on_b] {
        for _ in 0..3 {
            let (st, tag, body) = fetch(&s.http, url, None).await;
            assert_eq!(st, StatusCode::OK, "{url}");
            assert!(body == old, "{url}: the old file");
            assert_consistent(url, &tag, &body);
        }
    }

    // Replaced through A: A serves the new file at once.
    let r = s
        .admin(Method::DELETE, "/api/admin/packages/site.pkg")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (st, _, _) = fetch(&s.http, &on_a, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "deleted: A knows at once");
    assert_eq!(
        s.upload("site.pkg", new.clone(), "Prod").await.status(),
        201
    );
    let (st, tag, body) = fetch(&s.http, &on_a, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(body == new, "A serves the new file at once");
    assert_consistent("A", &tag, &body);

    // B within its cache time; whatever it answers meanwhile is a whole, consistent
    // file (the old blob stays until the collector's idle time has passed).
    let started = std::time::Instant::now();
    loop {
        let (st, tag, body) = fetch(&s.http, &on_b, None).await;
        if st == StatusCode::OK {
            assert_consistent("B", &tag, &body);
            if body == new {
                break;
            }
        } else {
            assert_eq!(
                st,
                StatusCode::NOT_FOUND,
                "B: the old file, 404 or the new one"
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "B still serves the old file after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // And a package that is no longer Public stops being served by B as well.
    let n = s
        .sql("UPDATE packages SET status = 'Failed' WHERE filename = 'site.pkg'")
        .await;
    assert_eq!(n, 1);
    s.eventually(
        5,
        "B to stop serving a package that is not Public",
        || async { fetch(&s.http, &on_b, None).await.0 == StatusCode::NOT_FOUND },
    )
    .await;
}

#[tokio::test]
async fn basic_download_auth_ends_a_changed_password_on_both_processes() {
    if sqlite_round() {
        return;
    }
    let s = Server::start().await;
    let data = common::bytes(10_000, 3);
    assert_eq!(
        s.upload("auth.pkg", data.clone(), "Prod").await.status(),
        201
    );
    let r = s
        .admin(Method::POST, "/api/admin/about")
        .json(&json!({ "download_auth": "basic" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    s.add_user("reader", "first-Passw0rd", "viewer").await;
    let b = Sibling::start(&s);
    let on_a = s.at("/share/auth.pkg");
    let on_b = format!("{}/share/auth.pkg", b.url);
    let old = Some(("reader", "first-Passw0rd"));
    let renewed = Some(("reader", "second-Passw0rd"));
    for url in [&on_a, &on_b] {
        // (B reads download_auth within a second of its start)
        s.eventually(5, "basic auth on both processes", || async {
            fetch(&s.http, url, None).await.0 == StatusCode::UNAUTHORIZED
        })
        .await;
        // Repeated: the later ones are answered from the verified-credential cache.
        for _ in 0..3 {
            let (st, _, body) = fetch(&s.http, url, old).await;
            assert_eq!(st, StatusCode::OK, "{url}");
            assert!(body == data);
        }
        let (st, _, _) = fetch(&s.http, url, Some(("reader", "wrong"))).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{url}: a wrong password");
    }

    let r = s
        .admin(Method::PATCH, "/api/admin/users/reader")
        .json(&json!({ "password": "second-Passw0rd" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // A reset by an admin must be changed by its user before it is any use; the
    // old password is what matters here.
    let (st, _, _) = fetch(&s.http, &on_a, old).await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "A ends the old password at once"
    );
    s.eventually(5, "B to end the old password", || async {
        fetch(&s.http, &on_b, old).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    // It stays ended (no cached answer comes back).
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    for url in [&on_a, &on_b] {
        let (st, _, _) = fetch(&s.http, url, old).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{url}");
        let (st, _, _) = fetch(&s.http, url, renewed).await;
        assert_ne!(
            st,
            StatusCode::OK,
            "{url}: a reset password must be changed first"
        );
    }
}
