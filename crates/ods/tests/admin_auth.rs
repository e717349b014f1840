//! Who may call the admin API, against real `ods serve` processes: users and roles,
//! API tokens (shown once, stored hashed, revocable), the authorization matrix of every
//! admin endpoint x every kind of caller, and the failed-login limiter.
mod admin_support;
mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use admin_support::*;
use common::Server;
use reqwest::{Method, Response};
use serde_json::{Value, json};

async fn call(
    s: &Server,
    cred: &Cred,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut rb = req(s, cred, method, path);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.unwrap()
}

async fn create_user(s: &Server, name: &str, pass: &str, role: &str) -> Value {
    let r = call(
        s,
        &Cred::admin(),
        Method::POST,
        "/api/admin/users",
        Some(json!({"username": name, "password": pass, "role": role})),
    )
    .await;
    expect_json(r, 201).await
}

async fn create_token(s: &Server, cred: &Cred, body: Value) -> Value {
    let r = call(s, cred, Method::POST, "/api/admin/tokens", Some(body)).await;
    expect_json(r, 201).await
}

async fn status(s: &Server, cred: &Cred, method: Method, path: &str) -> u16 {
    call(s, cred, method, path, None).await.status().as_u16()
}

#[tokio::test]
async fn users_roles_passwords_and_tokens() {
    let s = Server::start().await;
    let admin = Cred::admin();

    // Create one user of each role.
    let t0 = now_unix();
    let vera = create_user(&s, "vera", "vera-pass-1", "viewer").await;
    let ulli = create_user(&s, "ulli", "ulli-pass-1", "uploader").await;
    let ada = create_user(&s, "ada", "ada-pass-1", "admin").await;
    for (u, name, role) in [
        (&vera, "vera", "viewer"),
        (&ulli, "ulli", "uploader"),
        (&ada, "ada", "admin"),
    ] {
        assert_eq!(u["username"], name);
        assert_eq!(u["role"], role);
        assert_eq!(u["must_change_password"], false);
        assert!(u["id"].as_i64().is_some());
        assert!(parse_iso(u["created"].as_str().unwrap()) >= t0 - 1);
        assert!(u.get("password_hash").is_none() && u.get("password").is_none());
    }
    let list = s.get_json("/api/admin/users").await;
    let names: BTreeSet<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["username"].as_str().unwrap().to_string(),
                u["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("admin", "admin"),
        ("ada", "admin"),
        ("ulli", "uploader"),
        ("vera", "viewer"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(names, want);
    assert!(!list.to_string().contains("argon2"), "no hashes listed");

    // Each can log in with its password.
    let vera_c = Cred::basic("vera", "vera-pass-1");
    let ulli_c = Cred::basic("ulli", "ulli-pass-1");
    let ada_c = Cred::basic("ada", "ada-pass-1");
    for c in [&vera_c, &ulli_c, &ada_c] {
        assert_eq!(status(&s, c, Method::GET, "/api/admin/about").await, 200);
    }

    // Refused creations.
    let new_user = |body: Value| call(&s, &admin, Method::POST, "/api/admin/users", Some(body));
    let r =
        new_user(json!({"username": "vera", "password": "another-pass", "role": "viewer"})).await;
    expect_error(r, 409, "username_exists").await;
    for (body, code) in [
        (
            json!({"username": "bob", "password": "short", "role": "viewer"}),
            "weak_password",
        ),
        (
            json!({"username": "bob", "password": "ods1234!", "role": "viewer"}),
            "weak_password",
        ),
        (
            json!({"username": "bob", "password": "long-enough", "role": "root"}),
            "invalid_role",
        ),
        (
            json!({"username": "b o b", "password": "long-enough", "role": "viewer"}),
            "invalid_username",
        ),
        (
            json!({"username": "", "password": "long-enough", "role": "viewer"}),
            "invalid_username",
        ),
        (
            json!({"username": "bob", "password": "long-enough"}),
            "invalid_field",
        ),
    ] {
        expect_error(new_user(body).await, 400, code).await;
    }
    assert_eq!(
        status(&s, &admin, Method::GET, "/api/admin/users/bob").await,
        404
    );

    // A viewer cannot upload; promoted to uploader it can; demoted again it cannot.
    let up = |c: Cred, name: &'static str| {
        let s = &s;
        async move {
            upload_to(s, &c, "/api/admin/upload", name, vec![7; 100], "Dev")
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(up(vera_c.clone(), "v1.pkg").await, 403);
    let r = call(
        &s,
        &admin,
        Method::PATCH,
        "/api/admin/users/vera",
        Some(json!({"role": "uploader"})),
    )
    .await;
    assert_eq!(expect_json(r, 200).await["role"], "uploader");
    assert_eq!(up(vera_c.clone(), "v2.pkg").await, 201);
    let r = call(
        &s,
        &admin,
        Method::PATCH,
        "/api/admin/users/vera",
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(expect_json(r, 200).await["role"], "viewer");
    assert_eq!(up(vera_c.clone(), "v3.pkg").await, 403);
    let r = call(
        &s,
        &admin,
        Method::PATCH,
        "/api/admin/users/vera",
        Some(json!({"role": "superuser"})),
    )
    .await;
    expect_error(r, 400, "invalid_role").await;

    // An admin sets another user's password: the new one works, the old one does
    // not, and the user must choose their own at next login.
    assert_eq!(
        status(&s, &ulli_c, Method::GET, "/api/admin/packages").await,
        200
    );
    let r = call(
        &s,
        &admin,
        Method::PATCH,
        "/api/admin/users/ulli",
        Some(json!({"password": "ulli-pass-2"})),
    )
    .await;
    assert_eq!(expect_json(r, 200).await["must_change_password"], true);
    expect_unauthorized(call(&s, &ulli_c, Method::GET, "/api/admin/packages", None).await).await;
    let ulli_c = Cred::basic("ulli", "ulli-pass-2");
    // Until ulli chooses their own password, the reset one does nothing else.
    let r = call(&s, &ulli_c, Method::GET, "/api/admin/packages", None).await;
    expect_error(r, 403, "password_change_required").await;
    let r = call(
        &s,
        &ulli_c,
        Method::PATCH,
        "/api/admin/users/ulli",
        Some(json!({"password": "ulli-pass-3", "current_password": "ulli-pass-2"})),
    )
    .await;
    assert_eq!(expect_json(r, 200).await["must_change_password"], false);
    let ulli_c = Cred::basic("ulli", "ulli-pass-3");
    assert_eq!(
        status(&s, &ulli_c, Method::GET, "/api/admin/packages").await,
        200
    );
    let r = call(
        &s,
        &admin,
        Method::PATCH,
        "/api/admin/users/ulli",
        Some(json!({"password": "weak"})),
    )
    .await;
    expect_error(r, 400, "weak_password").await;

    // A non-admin changes their own password only by giving the current one, and
    // cannot change their own role or anyone else.
    let own = |body: Value| {
        call(
            &s,
            &vera_c,
            Method::PATCH,
            "/api/admin/users/vera",
            Some(body),
        )
    };
    let r = own(json!({"password": "vera-pass-2"})).await;
    expect_error(r, 400, "wrong_password").await;
    let r = own(json!({"password": "vera-pass-2", "current_password": "nope-nope"})).await;
    expect_error(r, 400, "wrong_password").await;
    let r = own(json!({"role": "admin"})).await;
    expect_error(r, 403, "forbidden").await;
    let r = call(
        &s,
        &vera_c,
        Method::PATCH,
        "/api/admin/users/ulli",
        Some(json!({"password": "hijacked-1"})),
    )
    .await;
    expect_error(r, 403, "forbidden").await;
    let r = own(json!({"password": "vera-pass-2", "current_password": "vera-pass-1"})).await;
    let v = expect_json(r, 200).await;
    assert_eq!(v["role"], "viewer");
    assert_eq!(v["must_change_password"], false);
    expect_unauthorized(call(&s, &vera_c, Method::GET, "/api/admin/about", None).await).await;
    let vera_c = Cred::basic("vera", "vera-pass-2");
    let me = expect_json(
        call(&s, &vera_c, Method::GET, "/api/admin/users/vera", None).await,
        200,
    )
    .await;
    assert_eq!(me["username"], "vera");
    let r = call(&s, &vera_c, Method::GET, "/api/admin/users/ulli", None).await;
    expect_error(r, 403, "forbidden").await;

    // Tokens: shown once, Bearer works, listed without the secret, stored hashed.
    let t = create_token(&s, &admin, json!({"name": "ci"})).await;
    let token = t["token"].as_str().unwrap().to_string();
    let token_id = t["id"].as_i64().unwrap();
    assert!(token.len() >= 40, "{token}");
    assert_eq!(t["name"], "ci");
    assert_eq!(t["username"], "admin");
    assert_eq!(t["last_used"], Value::Null);
    let bearer = Cred::Bearer(token.clone());
    let a = expect_json(
        call(&s, &bearer, Method::GET, "/api/admin/about", None).await,
        200,
    )
    .await;
    assert!(a["key"].is_string(), "an admin token sees the key: {a}");
    let listed = s.get_json("/api/admin/tokens").await;
    let item = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == token_id)
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(item["name"], "ci");
    assert!(item.get("token").is_none(), "{item}");
    assert!(
        !listed.to_string().contains(&token),
        "the token is never shown again"
    );
    assert!(item["last_used"].is_string(), "use is recorded: {item}");
    let digest = common::sha256_hex(token.as_bytes());
    let dump = database_dump(&s);
    assert!(
        contains(&dump, &digest),
        "the dump should hold the token's digest (is it the right database?)"
    );
    assert!(
        !contains(&dump, &token),
        "the database holds the token itself"
    );
    assert!(!contains(&dump, "vera-pass-2"), "a password in clear");

    // A token has its owner's role; users list only their own tokens.
    let vt = create_token(&s, &vera_c, json!({"name": "vera's"})).await;
    assert_eq!(vt["username"], "vera");
    let vera_bearer = Cred::Bearer(vt["token"].as_str().unwrap().to_string());
    assert_eq!(
        status(&s, &vera_bearer, Method::GET, "/api/admin/packages").await,
        200
    );
    let r = call(
        &s,
        &vera_bearer,
        Method::POST,
        "/api/admin/users",
        Some(json!({"username": "x1", "password": "long-enough", "role": "admin"})),
    )
    .await;
    expect_error(r, 403, "forbidden").await;
    let mine = expect_json(
        call(&s, &vera_bearer, Method::GET, "/api/admin/tokens", None).await,
        200,
    )
    .await;
    let mine = mine["items"].as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["username"], "vera");
    let r = call(&s, &vera_c, Method::GET, "/api/admin/tokens?all=true", None).await;
    expect_error(r, 403, "forbidden").await;
    let all = s.get_json("/api/admin/tokens?all=true").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    // Admins make tokens for others; others may not.
    let ut = create_token(&s, &admin, json!({"name": "for ulli", "username": "ulli"})).await;
    assert_eq!(ut["username"], "ulli");
    let r = call(
        &s,
        &vera_c,
        Method::POST,
        "/api/admin/tokens",
        Some(json!({"name": "x", "username": "ulli"})),
    )
    .await;
    expect_error(r, 403, "forbidden").await;
    let r = call(
        &s,
        &admin,
        Method::POST,
        "/api/admin/tokens",
        Some(json!({"name": "x", "username": "ghost"})),
    )
    .await;
    expect_error(r, 404, "not_found").await;
    let r = call(
        &s,
        &admin,
        Method::POST,
        "/api/admin/tokens",
        Some(json!({"name": " "})),
    )
    .await;
    expect_error(r, 400, "invalid_name").await;
    // Someone else's token cannot be revoked by a non-admin.
    let r = call(
        &s,
        &vera_c,
        Method::DELETE,
        &format!("/api/admin/tokens/{token_id}"),
        None,
    )
    .await;
    expect_error(r, 403, "forbidden").await;

    // Revoked: 401 from then on.
    let r = call(
        &s,
        &admin,
        Method::DELETE,
        &format!("/api/admin/tokens/{token_id}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    expect_unauthorized(call(&s, &bearer, Method::GET, "/api/admin/about", None).await).await;
    let r = call(
        &s,
        &admin,
        Method::DELETE,
        &format!("/api/admin/tokens/{token_id}"),
        None,
    )
    .await;
    expect_error(r, 404, "not_found").await;
    expect_unauthorized(
        call(
            &s,
            &Cred::Bearer("ods_not-a-real-token".into()),
            Method::GET,
            "/api/admin/about",
            None,
        )
        .await,
    )
    .await;

    // Deleting a user ends their logins and their tokens.
    let r = call(&s, &admin, Method::DELETE, "/api/admin/users/vera", None).await;
    assert_eq!(r.status(), 204);
    expect_unauthorized(call(&s, &vera_c, Method::GET, "/api/admin/about", None).await).await;
    expect_unauthorized(call(&s, &vera_bearer, Method::GET, "/api/admin/about", None).await).await;
    let r = call(&s, &admin, Method::GET, "/api/admin/users/vera", None).await;
    expect_error(r, 404, "not_found").await;
    let r = call(&s, &admin, Method::DELETE, "/api/admin/users/vera", None).await;
    expect_error(r, 404, "not_found").await;

    // The last admin cannot go, neither deleted nor demoted.
    assert_eq!(
        status(&s, &ada_c, Method::DELETE, "/api/admin/users/ada").await,
        204,
        "an admin may delete themselves while another admin remains"
    );
    let r = call(&s, &admin, Method::DELETE, "/api/admin/users/admin", None).await;
    expect_error(r, 409, "last_admin").await;
    let r = call(
        &s,
        &admin,
        Method::PATCH,
        "/api/admin/users/admin",
        Some(json!({"role": "viewer"})),
    )
    .await;
    expect_error(r, 409, "last_admin").await;
    let me = s.get_json("/api/admin/users/admin").await;
    assert_eq!(me["role"], "admin");
    assert_eq!(
        status(&s, &admin, Method::GET, "/api/admin/users").await,
        200
    );
    // With a second admin, demoting the first works.
    create_user(&s, "ada2", "ada2-pass-1", "admin").await;
    let r = call(
        &s,
        &Cred::basic("ada2", "ada2-pass-1"),
        Method::PATCH,
        "/api/admin/users/admin",
        Some(json!({"role": "uploader"})),
    )
    .await;
    assert_eq!(expect_json(r, 200).await["role"], "uploader");
    let r = call(&s, &admin, Method::GET, "/api/admin/users", None).await;
    expect_error(r, 403, "forbidden").await;
}

/// Who an endpoint admits. `Anyone` is self-service: any signed-in user, acting on
/// their own account (their tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Anyone,
    Viewer,
    Uploader,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Viewer,
    Uploader,
    Admin,
}

impl Need {
    fn admits(self, r: Role) -> bool {
        match self {
            Need::Anyone | Need::Viewer => true,
            Need::Uploader => r >= Role::Uploader,
            Need::Admin => r == Role::Admin,
        }
    }
}

/// What a path placeholder stands for, made fresh where the call consumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    None,
    /// The fixture package, by filename.
    Pkg,
    /// A package uploaded for this call, by id (for DELETE).
    FreshPkg,
    /// A package uploaded for this call, by filename (for DELETE).
    FreshPkgName,
    /// The fixture user `target` (not the caller).
    OtherUser,
    /// A user created for this call (for DELETE).
    FreshUser,
    /// A token of the user `target`, created for this call.
    OtherToken,
    /// The housekeeping job.
    Job,
    /// An id that does not exist (a registered server, a webhook, a subscription).
    NoPeer,
    /// A Jamf Pro instance made for this call (pointing at a closed local port).
    Jamf,
}

#[derive(Debug, Clone)]
enum Payload {
    None,
    Json(Value),
    /// A JSON body made fresh per call (unique names).
    NewUser,
    Upload,
}

struct Row {
    method: Method,
    /// The route as registered in `crates/ods/src/http/api/mod.rs`.
    route: &'static str,
    query: &'static str,
    need: Need,
    target: Target,
    payload: Payload,
    /// Statuses an admitted caller gets; empty: any but 401/403.
    ok: &'static [u16],
}

fn row(
    method: Method,
    route: &'static str,
    need: Need,
    target: Target,
    payload: Payload,
    ok: &'static [u16],
) -> Row {
    Row {
        method,
        route,
        query: "",
        need,
        target,
        payload,
        ok,
    }
}

fn matrix() -> Vec<Row> {
    use Need::*;
    use Payload as P;
    use Target as T;
    let pkg = "/packages/{id_or_name}";
    let mut rows = vec![
        row(Method::GET, "/about", Viewer, T::None, P::None, &[200]),
        row(
            Method::POST,
            "/about",
            Admin,
            T::None,
            P::Json(json!({"name": "Matrix ODS"})),
            &[201],
        ),
        row(
            Method::POST,
            "/about/update",
            Admin,
            T::None,
            P::Json(json!({"stage": "Prod"})),
            &[201],
        ),
        row(Method::GET, "/system", Viewer, T::None, P::None, &[200]),
        row(Method::GET, "/packages", Viewer, T::None, P::None, &[200]),
        row(
            Method::POST,
            "/packages",
            Uploader,
            T::None,
            P::Upload,
            &[201],
        ),
        row(
            Method::POST,
            "/upload",
            Uploader,
            T::None,
            P::Upload,
            &[201],
        ),
        row(Method::GET, pkg, Viewer, T::Pkg, P::None, &[200]),
        row(Method::DELETE, pkg, Uploader, T::FreshPkg, P::None, &[204]),
        row(
            Method::PATCH,
            pkg,
            Uploader,
            T::Pkg,
            P::Json(json!({"stage": "Test"})),
            &[200],
        ),
        row(
            Method::POST,
            "/packages/{id_or_name}/digests",
            Uploader,
            T::Pkg,
            P::None,
            &[200, 202],
        ),
        // The unambiguous forms (issue 9, finding 4).
        row(
            Method::GET,
            "/packages/id/{id}",
            Viewer,
            T::FreshPkg,
            P::None,
            &[200],
        ),
        row(
            Method::DELETE,
            "/packages/id/{id}",
            Uploader,
            T::FreshPkg,
            P::None,
            &[204],
        ),
        row(
            Method::PATCH,
            "/packages/id/{id}",
            Uploader,
            T::FreshPkg,
            P::Json(json!({"stage": "Test"})),
            &[200],
        ),
        row(
            Method::POST,
            "/packages/id/{id}/digests",
            Uploader,
            T::FreshPkg,
            P::None,
            &[200, 202],
        ),
        row(
            Method::GET,
            "/packages/name/{filename}",
            Viewer,
            T::Pkg,
            P::None,
            &[200],
        ),
        row(
            Method::DELETE,
            "/packages/name/{filename}",
            Uploader,
            T::FreshPkgName,
            P::None,
            &[204],
        ),
        row(
            Method::PATCH,
            "/packages/name/{filename}",
            Uploader,
            T::Pkg,
            P::Json(json!({"stage": "Test"})),
            &[200],
        ),
        row(
            Method::POST,
            "/packages/name/{filename}/digests",
            Uploader,
            T::Pkg,
            P::None,
            &[200, 202],
        ),
        // The registration protocol belongs to the sync work; whatever it answers
        // an admin, it is not an authorization refusal.
        row(
            Method::POST,
            "/register",
            Admin,
            T::None,
            P::Json(json!({
                "url": "http://127.0.0.1:9",
                "iss_id": "e7becdda9a9046f6a78f69ef591e9835",
                "key": "r3Yt354eDTY0JkaiObpsM4krfkDzdZD9NNYwDr9aSk0="
            })),
            &[],
        ),
        row(
            Method::GET,
            "/registered_ods",
            Viewer,
            T::None,
            P::None,
            &[200],
        ),
        row(
            Method::DELETE,
            "/registered_ods/{id}",
            Admin,
            T::NoPeer,
            P::None,
            &[404],
        ),
        row(
            Method::PATCH,
            "/registered_ods/{id}",
            Admin,
            T::NoPeer,
            P::Json(json!({"rate_limit": null})),
            &[404],
        ),
        row(Method::GET, "/sync", Viewer, T::None, P::None, &[200]),
        row(Method::GET, "/events", Viewer, T::None, P::None, &[200]),
        row(Method::GET, "/users", Admin, T::None, P::None, &[200]),
        row(Method::POST, "/users", Admin, T::None, P::NewUser, &[201]),
        row(
            Method::GET,
            "/users/{username}",
            Admin,
            T::OtherUser,
            P::None,
            &[200],
        ),
        row(
            Method::PATCH,
            "/users/{username}",
            Admin,
            T::OtherUser,
            P::Json(json!({"role": "viewer"})),
            &[200],
        ),
        row(
            Method::DELETE,
            "/users/{username}",
            Admin,
            T::FreshUser,
            P::None,
            &[204],
        ),
        row(Method::GET, "/tokens", Anyone, T::None, P::None, &[200]),
        row(
            Method::POST,
            "/tokens",
            Anyone,
            T::None,
            P::Json(json!({"name": "matrix"})),
            &[201],
        ),
        row(
            Method::DELETE,
            "/tokens/{id}",
            Admin,
            T::OtherToken,
            P::None,
            &[204],
        ),
        row(Method::GET, "/jobs", Viewer, T::None, P::None, &[200]),
        row(Method::GET, "/jobs/{id}", Viewer, T::Job, P::None, &[200]),
        row(
            Method::POST,
            "/jobs/{id}/retry",
            Admin,
            T::Job,
            P::None,
            &[200, 409],
        ),
        // Notifications (issue 8): admins only; ids that do not exist answer 404.
        row(Method::GET, "/webhooks", Admin, T::None, P::None, &[200]),
        row(
            Method::POST,
            "/webhooks",
            Admin,
            T::None,
            P::Json(json!({"url": "http://127.0.0.1:9/hook", "events": ["package.public"]})),
            &[201],
        ),
        row(
            Method::GET,
            "/webhooks/{id}",
            Admin,
            T::NoPeer,
            P::None,
            &[404],
        ),
        row(
            Method::PATCH,
            "/webhooks/{id}",
            Admin,
            T::NoPeer,
            P::Json(json!({"enabled": false})),
            &[404],
        ),
        row(
            Method::DELETE,
            "/webhooks/{id}",
            Admin,
            T::NoPeer,
            P::None,
            &[404],
        ),
        row(
            Method::POST,
            "/webhooks/{id}/test",
            Admin,
            T::NoPeer,
            P::None,
            &[404],
        ),
        row(
            Method::GET,
            "/webhooks/{id}/deliveries",
            Admin,
            T::NoPeer,
            P::None,
            &[404],
        ),
        row(Method::GET, "/email", Admin, T::None, P::None, &[200]),
        row(
            Method::PUT,
            "/email",
            Admin,
            T::None,
            P::Json(
                json!({"host": "127.0.0.1", "port": 9, "security": "none", "from": "ods@example.com"}),
            ),
            &[200],
        ),
        row(
            Method::GET,
            "/email/subscriptions",
            Admin,
            T::None,
            P::None,
            &[200],
        ),
        row(
            Method::POST,
            "/email/subscriptions",
            Admin,
            T::None,
            P::Json(json!({"recipients": ["m@example.com"], "events": ["*"]})),
            &[201],
        ),
        row(
            Method::DELETE,
            "/email/subscriptions/{id}",
            Admin,
            T::NoPeer,
            P::None,
            &[404],
        ),
        row(
            Method::POST,
            "/email/test",
            Admin,
            T::None,
            P::Json(json!({"to": "m@example.com"})),
            &[202, 409],
        ),
    ];
    rows.extend([
        row(Method::GET, "/jamf", Viewer, T::None, P::None, &[200]),
        row(
            Method::POST,
            "/jamf",
            Admin,
            T::None,
            P::Json(jamf_instance()),
            &[201],
        ),
        row(Method::GET, "/jamf/{id}", Viewer, T::Jamf, P::None, &[200]),
        row(
            Method::PATCH,
            "/jamf/{id}",
            Admin,
            T::Jamf,
            P::Json(json!({"name": "renamed"})),
            &[200],
        ),
        row(
            Method::DELETE,
            "/jamf/{id}",
            Admin,
            T::Jamf,
            P::None,
            &[204],
        ),
        row(
            Method::POST,
            "/jamf/{id}/reconcile",
            Admin,
            T::Jamf,
            P::None,
            &[202],
        ),
        row(
            Method::GET,
            "/jamf/{id}/drift",
            Viewer,
            T::Jamf,
            P::None,
            &[200],
        ),
        row(
            Method::GET,
            "/jamf/{id}/records",
            Viewer,
            T::Jamf,
            P::None,
            &[200],
        ),
    ]);
    // Variants of a route that need more than the route itself.
    let mut all_tokens = row(Method::GET, "/tokens", Admin, T::None, P::None, &[200]);
    all_tokens.query = "?all=true";
    rows.push(all_tokens);
    rows
}

/// A Jamf Pro instance nothing answers for (port 9 is closed on loopback).
fn jamf_instance() -> Value {
    json!({"url": "http://127.0.0.1:9", "auth": {"type": "basic", "username": "u", "password": "p"}, "stage": "Prod"})
}

/// Every `(METHOD, path)` the admin router registers: `api::endpoints()` is the list
/// the router is built from, so an endpoint added there without a matrix row fails
/// this test.
fn registered_routes() -> BTreeSet<(String, String)> {
    ods::http::api::endpoints()
        .iter()
        .map(|e| (e.method.as_str().to_string(), e.path.to_string()))
        .collect()
}

struct Fixture {
    seq: usize,
    job_id: i64,
}

impl Fixture {
    fn next(&mut self) -> usize {
        self.seq += 1;
        self.seq
    }

    /// The concrete path and body of one call of `r`.
    async fn prepare(&mut self, s: &Server, r: &Row) -> (String, Payload, String) {
        let n = self.next();
        let admin = Cred::admin();
        let (param, check) = match r.target {
            Target::None => (String::new(), String::new()),
            Target::Pkg => ("matrix.pkg".to_string(), String::new()),
            Target::FreshPkg => {
                let resp = upload_to(
                    s,
                    &admin,
                    "/api/admin/upload",
                    &format!("fresh-{n}.pkg"),
                    common::bytes(1000, n as u64),
                    "Dev",
                )
                .await;
                let id = expect_json(resp, 201).await["id"].as_i64().unwrap();
                (id.to_string(), format!("/api/admin/packages/{id}"))
            }
            Target::FreshPkgName => {
                let name = format!("fresh-named-{n}.pkg");
                let resp = upload_to(
                    s,
                    &admin,
                    "/api/admin/upload",
                    &name,
                    common::bytes(1000, n as u64),
                    "Dev",
                )
                .await;
                expect_json(resp, 201).await;
                (name.clone(), format!("/api/admin/packages/name/{name}"))
            }
            Target::OtherUser => ("target".to_string(), String::new()),
            Target::FreshUser => {
                let name = format!("fresh{n}");
                create_user(s, &name, "fresh-pass-1", "viewer").await;
                (name.clone(), format!("/api/admin/users/{name}"))
            }
            Target::OtherToken => {
                let t =
                    create_token(s, &admin, json!({"name": "victim", "username": "target"})).await;
                let id = t["id"].as_i64().unwrap();
                (id.to_string(), format!("token:{id}"))
            }
            Target::Job => (self.job_id.to_string(), String::new()),
            Target::NoPeer => ("424242".to_string(), String::new()),
            Target::Jamf => {
                let r = admin
                    .apply(s.http.post(s.at("/api/admin/jamf")))
                    .json(&jamf_instance())
                    .send()
                    .await
                    .unwrap();
                let id = expect_json(r, 201).await["id"].as_i64().unwrap();
                (id.to_string(), format!("/api/admin/jamf/{id}"))
            }
        };
        let mut path = format!("/api/admin{}{}", r.route, r.query);
        for ph in ["{id_or_name}", "{filename}", "{username}", "{id}"] {
            path = path.replace(ph, &param);
        }
        let payload = match &r.payload {
            Payload::NewUser => Payload::Json(json!({
                "username": format!("new{n}"),
                "password": "new-user-pass",
                "role": "viewer"
            })),
            p => p.clone(),
        };
        (path, payload, check)
    }
}

async fn send(
    s: &Server,
    client: &reqwest::Client,
    cred: &Cred,
    r: &Row,
    path: &str,
    payload: &Payload,
    n: usize,
) -> Response {
    let rb = cred.apply(client.request(r.method.clone(), s.at(path)));
    let rb = match payload {
        Payload::None => rb,
        Payload::Json(v) => rb.json(v),
        Payload::NewUser => unreachable!("prepared"),
        Payload::Upload => {
            let part = reqwest::multipart::Part::bytes(common::bytes(500, 1000 + n as u64))
                .file_name(format!("up-{n}.pkg"));
            rb.multipart(
                reqwest::multipart::Form::new()
                    .part("file", part)
                    .text("stage", "Dev"),
            )
        }
    };
    rb.send().await.unwrap()
}

/// After a refused call, what it would have removed is still there.
async fn assert_untouched(s: &Server, check: &str) {
    if check.is_empty() {
        return;
    }
    if let Some(id) = check.strip_prefix("token:") {
        let id: i64 = id.parse().unwrap();
        let all = s.get_json("/api/admin/tokens?all=true").await;
        assert!(
            all["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == id),
            "token {id} was removed by a refused call"
        );
    } else {
        let r = req(s, &Cred::admin(), Method::GET, check)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{check} was removed by a refused call");
    }
}

#[tokio::test]
async fn auth_matrix_covers_every_admin_endpoint() {
    let s = Server::start().await;
    let rows = matrix();

    // The table holds every registered route, and nothing the router lacks.
    let table: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.route.to_string()))
        .collect();
    let registered = registered_routes();
    assert!(registered.len() >= 25, "{registered:?}");
    assert_eq!(
        table, registered,
        "the auth matrix and crates/ods/src/http/api/mod.rs disagree"
    );
    // And per path, every other method is 405: no method hides from the table.
    let paths: BTreeSet<&str> = rows.iter().map(|r| r.route).collect();
    for path in &paths {
        let concrete = format!("/api/admin{path}")
            .replace("{id_or_name}", "1")
            .replace("{filename}", "matrix.pkg")
            .replace("{username}", "admin")
            .replace("{id}", "1");
        for m in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if table.contains(&(m.as_str().to_string(), path.to_string())) {
                continue;
            }
            let r = req(&s, &Cred::None, m.clone(), &concrete)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 405, "{m} {concrete}");
        }
    }

    // Fixtures: one user per role with a password and a token, a package, a user
    // and a job to act on.
    let mut basic = Vec::new();
    let mut bearer = Vec::new();
    for (name, role) in [
        ("vic", Role::Viewer),
        ("uma", Role::Uploader),
        ("ada", Role::Admin),
    ] {
        let pass = format!("{name}-password");
        let role_s = match role {
            Role::Viewer => "viewer",
            Role::Uploader => "uploader",
            Role::Admin => "admin",
        };
        create_user(&s, name, &pass, role_s).await;
        let cred = Cred::basic(name, &pass);
        let t = create_token(&s, &cred, json!({"name": "matrix"})).await;
        basic.push((role, cred));
        bearer.push((role, Cred::Bearer(t["token"].as_str().unwrap().to_string())));
    }
    create_user(&s, "target", "target-pass", "viewer").await;
    let r = upload_to(
        &s,
        &Cred::admin(),
        "/api/admin/upload",
        "matrix.pkg",
        common::bytes(2000, 9),
        "Prod",
    )
    .await;
    assert_eq!(r.status(), 201);
    let jobs = s.get_json("/api/admin/jobs?kind=sweep").await;
    let job_id = jobs["items"][0]["id"].as_i64().expect("a sweep job");
    let mut fx = Fixture { seq: 0, job_id };

    let callers: Vec<(Role, &str, Cred)> = basic
        .iter()
        .map(|(r, c)| (*r, "basic", c.clone()))
        .chain(bearer.iter().map(|(r, c)| (*r, "bearer", c.clone())))
        .collect();
    assert_eq!(callers.len(), 6);

    let mut wrong_ip = 0u8;
    let mut cells = 0;
    for r in &rows {
        let what = format!("{} {}{}", r.method, r.route, r.query);

        // No credentials: 401 with a challenge and a JSON error.
        let (path, payload, check) = fx.prepare(&s, r).await;
        let n = fx.next();
        let resp = send(&s, &s.http, &Cred::None, r, &path, &payload, n).await;
        expect_unauthorized(resp).await;
        assert_untouched(&s, &check).await;
        cells += 1;

        // A wrong password: 401 likewise. Each from its own address and spread over
        // the accounts, so this test does not trip the failed-login limiter.
        wrong_ip += 1;
        let client = client_from(Ipv4Addr::new(127, 0, 1, wrong_ip));
        let user = ["vic", "uma", "ada"][wrong_ip as usize % 3];
        let resp = send(
            &s,
            &client,
            &Cred::basic(user, "not-the-password"),
            r,
            &path,
            &payload,
            n,
        )
        .await;
        expect_unauthorized(resp).await;
        assert_untouched(&s, &check).await;
        cells += 1;

        for &(role, kind, ref cred) in &callers {
            let (path, payload, check) = fx.prepare(&s, r).await;
            let n = fx.next();
            let resp = send(&s, &s.http, cred, r, &path, &payload, n).await;
            let st = resp.status().as_u16();
            let label = format!("{what} as {role:?} ({kind}) -> {st}");
            if r.need.admits(role) {
                assert!(st != 401 && st != 403, "{label}: refused");
                if !r.ok.is_empty() {
                    assert!(
                        r.ok.contains(&st),
                        "{label}: expected {:?}: {}",
                        r.ok,
                        resp.text().await.unwrap()
                    );
                } else if st >= 400 {
                    let v: Value = resp.json().await.unwrap();
                    assert_error_shape(&v, v["error"]["code"].as_str().unwrap_or("?"));
                }
                if r.method == Method::GET && r.route == "/about" && st == 200 {
                    let v: Value = call(&s, cred, Method::GET, &path, None)
                        .await
                        .json()
                        .await
                        .unwrap();
                    if role == Role::Admin {
                        assert_eq!(v["key"].as_str().map(str::len), Some(44), "{label}: {v}");
                    } else {
                        assert_eq!(v["key"], Value::Null, "{label}: the key is admin-only");
                    }
                }
            } else {
                let v = expect_error(resp, 403, "forbidden").await;
                // The refusal says which role it takes.
                let needed = match r.need {
                    Need::Uploader => "uploader",
                    _ => "admin",
                };
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains(needed), "{label}: {msg}");
                assert_untouched(&s, &check).await;
            }
            cells += 1;
        }
    }
    assert_eq!(cells, rows.len() * (2 + callers.len()));

    // The refused calls changed nothing the admitted ones did not.
    let target = s.get_json("/api/admin/users/target").await;
    assert_eq!(target["role"], "viewer");
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    let s = Server::start().await;
    let admin = Cred::admin();
    let token = create_token(&s, &admin, json!({"name": "before"})).await["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Nine failures from one address do not lock the right password out.
    let other = client_from(Ipv4Addr::new(127, 0, 0, 3));
    let wrong = Cred::basic("admin", "wrong-password");
    let get = |client: &reqwest::Client, cred: &Cred| {
        cred.apply(client.get(s.at("/api/admin/about"))).send()
    };
    for _ in 0..9 {
        expect_unauthorized(get(&other, &wrong).await.unwrap()).await;
    }
    assert_eq!(get(&other, &admin).await.unwrap().status(), 200);

    // Ten failures from another address do: even the right password and a valid
    // token get 429 with Retry-After, from that address.
    let here = client_from(Ipv4Addr::new(127, 0, 0, 4));
    for i in 0..10 {
        let r = get(&here, &wrong).await.unwrap();
        assert_eq!(r.status(), 401, "attempt {}", i + 1);
    }
    for cred in [&admin, &wrong, &Cred::Bearer(token.clone())] {
        let r = get(&here, cred).await.unwrap();
        let retry = r
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        assert!(
            retry.is_some_and(|secs| (1..=300).contains(&secs)),
            "Retry-After {retry:?}"
        );
        expect_error(r, 429, "too_many_attempts").await;
    }
    // Other addresses are not locked out.
    assert_eq!(get(&s.http, &admin).await.unwrap().status(), 200);
    assert_eq!(
        get(&s.http, &Cred::Bearer(token)).await.unwrap().status(),
        200
    );
}
