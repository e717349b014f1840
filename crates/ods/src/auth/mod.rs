//! Credentials, apart from any request: Argon2id password hashing and the
//! rules for new passwords, the failed-login limiter (counted in the database), the short-lived cache of verified
//! Basic credentials, and the account created on first start. The `users` service puts
//! these together; `http::auth` reads credentials from a request.

pub mod basic;
pub mod jwt;
pub mod limiter;
pub mod password;

/// The account created on first start, as in the seed.
pub const DEFAULT_ADMIN: (&str, &str) = ("admin", "ods1234!");
