//! Finding 5 of issue 9: the default password is enforced. The first-start
//! `admin` / `ods1234!` (and a user whose password an admin reset) may read and change
//! its own user and nothing else; `ODS_INITIAL_ADMIN_PASSWORD` sets a chosen one that
//! need not change. An admin's reset revokes the user's API tokens.
mod admin_support;
mod common;

use admin_support::*;
use common::{DEFAULT_ADMIN, Opts, Server};
use reqwest::Method;
use serde_json::json;

fn default_cred() -> Cred {
    Cred::basic(DEFAULT_ADMIN.0, DEFAULT_ADMIN.1)
}

#[tokio::test]
async fn the_default_admin_may_only_change_its_password() {
    let s = Server::start_with(Opts {
        default_admin: true,
        ..Opts::default()
    })
    .await;
    assert!(
        s.stdout_lines
            .iter()
            .any(|l| l.contains("admin / ods1234!")),
        "{:?}",
        s.stdout_lines
    );
    let c = default_cred();
    let me = expect_json(
        req(&s, &c, Method::GET, "/api/admin/users/admin")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me["must_change_password"], true);

    // Everything else is refused, reads and writes alike, and changes nothing.
    for (m, path) in [
        (Method::GET, "/api/admin/about"),
        (Method::GET, "/api/admin/packages"),
        (Method::GET, "/api/admin/users"),
        (Method::GET, "/api/admin/users/someone"),
        (Method::POST, "/api/admin/tokens"),
        (Method::DELETE, "/api/admin/packages/1"),
    ] {
        let r = req(&s, &c, m.clone(), path)
            .json(&json!({"name": "t"}))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "password_change_required").await;
    }
    let r = req(&s, &c, Method::POST, "/api/admin/users")
        .json(&json!({"username": "eve", "password": "eve-pass-1", "role": "admin"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "password_change_required").await;
    let r = s.upload("x.pkg", b"abc".to_vec(), "Dev").await;
    assert_eq!(
        r.status(),
        401,
        "the test helper uploads as ADMIN, which is not this password"
    );
    let part = reqwest::multipart::Part::bytes(b"abc".to_vec()).file_name("x.pkg");
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("stage", "Dev");
    let r = req(&s, &c, Method::POST, "/api/admin/upload")
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "password_change_required").await;
    // A PATCH of its own user must set a password and nothing else.
    let r = req(&s, &c, Method::PATCH, "/api/admin/users/admin")
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "password_change_required").await;
    let r = req(&s, &c, Method::PATCH, "/api/admin/users/admin")
        .json(&json!({"password": "ods1234!"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "weak_password").await;

    let r = req(&s, &c, Method::PATCH, "/api/admin/users/admin")
        .json(&json!({"password": "a-real-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["must_change_password"], false);
    let now = Cred::basic("admin", "a-real-password");
    let r = req(&s, &now, Method::GET, "/api/admin/about")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expect_unauthorized(
        req(&s, &c, Method::GET, "/api/admin/about")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let users = expect_json(
        req(&s, &now, Method::GET, "/api/admin/users")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        users["items"].as_array().unwrap().len(),
        1,
        "eve was not created"
    );
}

#[tokio::test]
async fn an_initial_password_need_not_change_and_a_reset_revokes_tokens() {
    let s = Server::start().await;
    assert!(
        s.stdout_lines.iter().all(|l| !l.contains("ods1234!")),
        "{:?}",
        s.stdout_lines
    );
    let admin = Cred::admin();
    let me = expect_json(
        req(&s, &admin, Method::GET, "/api/admin/users/admin")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me["must_change_password"], false);
    expect_unauthorized(
        req(&s, &default_cred(), Method::GET, "/api/admin/about")
            .send()
            .await
            .unwrap(),
    )
    .await;

    let r = req(&s, &admin, Method::POST, "/api/admin/users")
        .json(&json!({"username": "ulli", "password": "ulli-pass-1", "role": "uploader"}))
        .send()
        .await
        .unwrap();
    expect_json(r, 201).await;
    let r = req(&s, &admin, Method::POST, "/api/admin/tokens")
        .json(&json!({"name": "ci", "username": "ulli"}))
        .send()
        .await
        .unwrap();
    let token = expect_json(r, 201).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let bearer = Cred::Bearer(token);
    let r = req(&s, &bearer, Method::GET, "/api/admin/packages")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = req(&s, &admin, Method::PATCH, "/api/admin/users/ulli")
        .json(&json!({"password": "ulli-reset-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["must_change_password"], true);
    expect_unauthorized(
        req(&s, &bearer, Method::GET, "/api/admin/packages")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let reset = Cred::basic("ulli", "ulli-reset-1");
    let r = req(&s, &reset, Method::GET, "/api/admin/packages")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "password_change_required").await;
    let r = req(&s, &reset, Method::GET, "/api/admin/users/ulli")
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["must_change_password"], true);
}

#[test]
fn the_default_password_is_refused_as_the_initial_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::ods_bin())
        .args(["check-config", "--data-dir"])
        .arg(dir.path())
        .env("ODS_INITIAL_ADMIN_PASSWORD", "ods1234!")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ODS_INITIAL_ADMIN_PASSWORD"), "{err}");
}
