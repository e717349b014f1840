//! Argon2id password hashing and the rules a new password must meet.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::ApiError;

pub fn hash(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes in a blocking thread: Argon2 is deliberately slow.
pub async fn verify_async(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &stored))
        .await
        .unwrap_or(false)
}

pub async fn hash_async(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash(&password)).await?
}

pub fn check_new(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 8 {
        return Err(ApiError::bad_request(
            "weak_password",
            "a password needs at least 8 characters",
        ));
    }
    if password.chars().count() > 1024 {
        return Err(ApiError::bad_request(
            "bad_password",
            "a password may have at most 1024 characters",
        ));
    }
    if password == super::DEFAULT_ADMIN.1 {
        return Err(ApiError::bad_request(
            "weak_password",
            "choose a password other than the default one",
        ));
    }
    Ok(())
}
