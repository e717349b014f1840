//! The web UI's security properties, checked over plain HTTP with reqwest against a
//! real server: cookie flags (Secure when https came through a trusted proxy), the
//! security headers, CSRF refusals (no token, a wrong token, another origin, no
//! origin at all), the login limiter, idle and absolute session expiry, logout, and
//! sessions ended by an admin's password reset or deletion of the user.
mod common;

use std::time::Duration;

use common::{ADMIN, Opts, Server, csrf_of, set_cookie};
use reqwest::header;
use reqwest::{Method, StatusCode};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn opts(env: &[(&str, &str)]) -> Opts {
    Opts {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Opts::default()
    }
}

/// The `name=value` of cookie `name` among the response's Set-Cookie headers, and
/// the whole header.
/// A browser: its cookies (`ods_pre`, then `ods_session`) and the page's CSRF token.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn open(s: &Server) -> Browser {
        let http = client();
        let r = http.get(s.at("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let (cookie, _) = set_cookie(r.headers(), "ods_pre").expect("a pre-session cookie");
        let csrf = csrf_of(&r.text().await.unwrap());
        Browser {
            http,
            base: s.url.clone(),
            cookie,
            csrf,
        }
    }

    fn req(&self, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
    }

    /// A form POST from our own page (Origin set), with `csrf` if given.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.req(Method::POST, path)
            .header(header::ORIGIN, &self.base)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn login(&mut self, user: &str, pass: &str) -> reqwest::Response {
        let csrf = self.csrf.clone();
        let r = self
            .post(
                "/login",
                &[("csrf", &csrf), ("username", user), ("password", pass)],
            )
            .await;
        if let Some((c, _)) = set_cookie(r.headers(), "ods_session") {
            self.cookie = c;
            let page = self.req(Method::GET, "/packages").send().await.unwrap();
            if page.status() == 200 {
                self.csrf = csrf_of(&page.text().await.unwrap());
            }
        }
        r
    }

    async fn status(&self, path: &str) -> (StatusCode, String) {
        let r = self.req(Method::GET, path).send().await.unwrap();
        let to = r
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (r.status(), to)
    }
}

#[tokio::test]
async fn cookies_are_httponly_samesite_and_secure_over_https_via_a_trusted_proxy() {
    let s = Server::start_with(opts(&[("ODS_TRUSTED_PROXIES", "127.0.0.1/32")])).await;
    let mut b = Browser::open(&s).await;
    let r = b.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/packages");
    let (_, full) = set_cookie(r.headers(), "ods_session").unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(full.contains(flag), "{full}");
    }
    assert!(!full.contains("Secure"), "plain http: {full}");
    assert_eq!(b.status("/packages").await.0, 200);

    // The same login through a trusted proxy that terminated https.
    let http = client();
    let host = s.url.strip_prefix("http://").unwrap().to_string();
    let https = format!("https://{host}");
    let r = http
        .get(s.at("/"))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let (pre, pre_full) = set_cookie(r.headers(), "ods_pre").unwrap();
    assert!(pre_full.contains("Secure"), "{pre_full}");
    let csrf = csrf_of(&r.text().await.unwrap());
    let r = http
        .post(s.at("/login"))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-For", "203.0.113.9")
        .header(header::ORIGIN, &https)
        .header(header::COOKIE, &pre)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", ADMIN.0),
            ("password", ADMIN.1),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let (_, full) = set_cookie(r.headers(), "ods_session").unwrap();
    assert!(
        full.contains("Secure") && full.contains("HttpOnly"),
        "{full}"
    );
    // Over that https origin, the plain-http origin is another origin.
    let r = http
        .post(s.at("/logout"))
        .header("X-Forwarded-Proto", "https")
        .header(header::ORIGIN, &s.url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn pages_and_assets_carry_the_security_and_cache_headers() {
    let s = Server::start().await;
    let mut b = Browser::open(&s).await;
    b.login(ADMIN.0, ADMIN.1).await;
    for path in ["/", "/packages", "/admin", "/admin/system"] {
        let r = b.req(Method::GET, path).send().await.unwrap();
        let h = r.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin");
        assert_eq!(h[header::CACHE_CONTROL], "no-store", "{path}");
    }
    // Pages have no inline script or style for the CSP to refuse.
    let html = b
        .req(Method::GET, "/packages")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "inline code"
    );
    // Embedded assets: long cache, ETag, 304.
    let r = b.req(Method::GET, "/static/ods.js").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert!(
        r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let etag = r.headers()[header::ETAG].clone();
    let r = b
        .req(Method::GET, "/static/ods.js")
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = b
        .req(Method::GET, "/static/vendor/htmx-LICENSE.txt")
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Zero-Clause BSD"));
}

#[tokio::test]
async fn state_changes_need_the_token_and_our_origin() {
    let s = Server::start().await;
    let mut b = Browser::open(&s).await;
    // A login without the form's token is refused before the password is looked at.
    let r = b
        .post("/login", &[("username", ADMIN.0), ("password", ADMIN.1)])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(r.headers(), "ods_session").is_none());
    b.login(ADMIN.0, ADMIN.1).await;
    let csrf = b.csrf.clone();
    let settings = |token: &'static str| {
        let mut f = vec![
            ("name", "Changed"),
            ("url", ""),
            ("stage", "Dev"),
            ("firewalled", "Disabled"),
            ("download_auth", "none"),
        ];
        if !token.is_empty() {
            f.push(("csrf", token));
        }
        f
    };
    // No token, a wrong token.
    let r = b.post("/admin/settings", &settings("")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().await.unwrap();
    assert!(
        body.contains(r#"role="alert""#) && body.contains("refused"),
        "{body}"
    );
    assert!(!body.contains("{\"error\""), "no raw JSON: {body}");
    let wrong = "0".repeat(64);
    let mut f = settings("");
    f.push(("csrf", &wrong));
    assert_eq!(
        b.post("/admin/settings", &f).await.status(),
        StatusCode::FORBIDDEN
    );
    // The right token from another origin, or with no Origin or Referer at all.
    let mut f = settings("");
    f.push(("csrf", &csrf));
    let r = b
        .req(Method::POST, "/admin/settings")
        .header(header::ORIGIN, "http://evil.example")
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b
        .req(Method::POST, "/admin/settings")
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A token sent as the header works for scripts; a token of another session does not.
    let mut other = Browser::open(&s).await;
    other.login(ADMIN.0, ADMIN.1).await;
    let r = b
        .req(Method::POST, "/admin/settings")
        .header(header::REFERER, format!("{}/admin", s.url))
        .header("X-CSRF-Token", &other.csrf)
        .form(&settings(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_ne!(
        s.get_json("/api/admin/about").await["name"],
        "Changed",
        "nothing refused changed anything"
    );
    // The right token and a same-origin Referer: saved.
    let r = b
        .req(Method::POST, "/admin/settings")
        .header(header::REFERER, format!("{}/admin", s.url))
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.get_json("/api/admin/about").await["name"], "Changed");
    // A field the API refuses shows its reason in words, and changes nothing.
    let mut bad = f.clone();
    bad[2] = ("stage", "Staging");
    let r = b.post("/admin/settings", &bad).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.unwrap();
    assert!(body.contains("must be Dev, Test or Prod"), "{body}");
}

#[tokio::test]
async fn failed_logins_go_through_the_limiter() {
    let s = Server::start_with(opts(&[("ODS_LOGIN_MAX_FAILURES_PER_ADDRESS", "3")])).await;
    let mut b = Browser::open(&s).await;
    for _ in 0..3 {
        let r = b.login(ADMIN.0, "wrong-password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Wrong username or password")
        );
    }
    let r = b.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(r.headers(), "ods_session").is_none());
    assert!(r.text().await.unwrap().contains("Too many failed logins"));
    // The same limiter as the API's.
    let r = s
        .admin(Method::GET, "/api/admin/about")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_age_limit() {
    let s = Server::start_with(opts(&[
        ("ODS_SESSION_IDLE_SECS", "3"),
        ("ODS_SESSION_MAX_SECS", "6"),
    ]))
    .await;
    // Idle: unused for longer than 3 s.
    let mut b = Browser::open(&s).await;
    b.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(b.status("/packages").await.0, 200);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        b.status("/packages").await,
        (StatusCode::SEE_OTHER, "/".into())
    );
    // Age: used every second, it still ends 6 s after the login.
    let mut b = Browser::open(&s).await;
    b.login(ADMIN.0, ADMIN.1).await;
    let start = std::time::Instant::now();
    let mut lasted = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(12) {
        if b.status("/packages").await.0 != 200 {
            lasted = start.elapsed();
            break;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(
        lasted >= Duration::from_secs(4) && lasted <= Duration::from_secs(8),
        "the used session ended after {lasted:?}"
    );
}

#[tokio::test]
async fn logout_reset_and_deletion_end_sessions_on_the_server() {
    let s = Server::start().await;
    s.add_user("vera", "viewer-pass-1", "viewer").await;
    // Logout: the old cookie is worth nothing afterwards, even if a browser kept it.
    let mut b = Browser::open(&s).await;
    b.login("vera", "viewer-pass-1").await;
    assert_eq!(b.status("/packages").await.0, 200);
    let csrf = b.csrf.clone();
    let r = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, cleared) = set_cookie(r.headers(), "ods_session").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        b.status("/packages").await,
        (StatusCode::SEE_OTHER, "/".into())
    );
    // An admin's password reset ends the user's sessions, and the user must then
    // choose a new password before anything else.
    let mut b = Browser::open(&s).await;
    b.login("vera", "viewer-pass-1").await;
    assert_eq!(b.status("/packages").await.0, 200);
    let r = s
        .admin(Method::PATCH, "/api/admin/users/vera")
        .json(&serde_json::json!({"password": "reset-by-admin-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        b.status("/packages").await,
        (StatusCode::SEE_OTHER, "/".into())
    );
    let mut b = Browser::open(&s).await;
    let r = b.login("vera", "reset-by-admin-1").await;
    assert_eq!(r.headers()[header::LOCATION], "/account/password");
    assert_eq!(
        b.status("/packages").await,
        (StatusCode::SEE_OTHER, "/account/password".into())
    );
    // Deleting the user ends their sessions.
    let r = s
        .admin(Method::DELETE, "/api/admin/users/vera")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        b.status("/account/password").await,
        (StatusCode::SEE_OTHER, "/".into())
    );
}

#[tokio::test]
async fn the_package_list_api_searches_sorts_and_pages_in_the_database() {
    let s = Server::start().await;
    for (name, size) in [("Alpha.pkg", 300), ("beta.pkg", 100), ("Gamma_1.pkg", 200)] {
        assert_eq!(
            s.upload(name, common::bytes(size, size as u64), "Prod")
                .await
                .status(),
            201
        );
    }
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["filename"].as_str().unwrap().to_string())
            .collect()
    };
    // The default answer is the seed's: every package, by id, no `total`.
    let all = s.get_json("/api/admin/packages").await;
    assert_eq!(names(&all), ["Alpha.pkg", "beta.pkg", "Gamma_1.pkg"]);
    assert!(all.get("total").is_none());
    let v = s.get_json("/api/admin/packages?q=A.PKG").await;
    assert_eq!(names(&v), ["Alpha.pkg", "beta.pkg"]);
    assert_eq!(v["total"], 2);
    // `_` is a character, not a wildcard.
    let v = s.get_json("/api/admin/packages?q=a_").await;
    assert_eq!(names(&v), ["Gamma_1.pkg"]);
    let v = s.get_json("/api/admin/packages?sort=size&order=desc").await;
    assert_eq!(names(&v), ["Alpha.pkg", "Gamma_1.pkg", "beta.pkg"]);
    let v = s
        .get_json("/api/admin/packages?sort=size&offset=1&limit=1")
        .await;
    assert_eq!(names(&v), ["Gamma_1.pkg"]);
    assert_eq!(v["total"], 3);
    for bad in [
        "limit=0",
        "limit=1001",
        "offset=-1",
        "sort=colour",
        "order=up",
    ] {
        let r = s
            .admin(Method::GET, &format!("/api/admin/packages?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn the_live_rows_show_states_and_answer_204_while_nothing_changed() {
    let s = Server::start().await;
    let mut b = Browser::open(&s).await;
    b.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(
        s.upload("live.pkg", common::bytes(3 << 20, 3), "Prod")
            .await
            .status(),
        201
    );
    let rows = |since: String| {
        let req = b
            .req(
                Method::GET,
                &format!("/packages/rows?q=&sort=&order=&page=1&since={since}"),
            )
            .header("HX-Request", "true");
        async move { req.send().await.unwrap() }
    };
    let digest_of = |html: &str| {
        let at = html.find(r#""since": ""#).expect("the digest") + 10;
        html[at..at + 16].to_string()
    };
    let r = rows(String::new()).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("state-Public"), "{html}");
    let digest = digest_of(&html);
    // Unchanged: 204, nothing for the page to swap.
    assert_eq!(rows(digest.clone()).await.status(), StatusCode::NO_CONTENT);
    // A package syncing in shows Downloading with its percent, then Failed with why.
    s.sql("UPDATE packages SET status = 'Downloading' WHERE filename = 'live.pkg'")
        .await;
    let html = rows(digest.clone()).await.text().await.unwrap();
    assert!(html.contains("Downloading 0%"), "{html}");
    s.sql("UPDATE packages SET status = 'Failed', status_reason = 'no peer has it any more' WHERE filename = 'live.pkg'")
        .await;
    let html = rows(digest_of(&html)).await.text().await.unwrap();
    assert!(
        html.contains("state-Failed") && html.contains("no peer has it any more"),
        "{html}"
    );
    // A browser asking for a page that does not exist gets a page; API clients JSON.
    let r = b
        .req(Method::GET, "/no-such-page")
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("There is no such page"));
    let r = s
        .http
        .get(s.at("/api/admin/nothing"))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("\"not_found\""));
    let r = b.req(Method::GET, "/account").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Change your password"));
}
