//! Who is calling: users and roles, Argon2id passwords, API tokens, the request
//! extractor that authenticates admin API calls, and the failed-login limiter.

pub mod limiter;
pub mod password;
pub mod principal;

pub use principal::Principal;

use serde::Serialize;

/// What a user may do. `admin` everything, `uploader` packages, `viewer` read only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Uploader,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Uploader => "uploader",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Uploader, Role::Admin]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// The account created on first start, as in the seed.
pub const DEFAULT_ADMIN: (&str, &str) = ("admin", "ods1234!");
