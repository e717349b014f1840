//! Jamf Pro's signed download tokens (JAMF.md §1, `download_auth` jwt): an RS256 JWT
//! in `?token=`, with `iss` and `sub` as configured (`JSS` and `AppManifest` by
//! default) and an `exp`, checked against the configured public key with a small clock
//! skew. Verified tokens are remembered (by SHA-256, until their `exp`) so a download
//! does not pay for an RSA verification each time.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::sync::Cache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    leeway: i64,
    /// Token digest -> its `exp` (Unix seconds).
    verified: Cache<[u8; 32], i64>,
}

#[derive(Deserialize)]
struct Claims {
    exp: i64,
}

impl JwtVerifier {
    /// From a PEM RSA public key; `None` when it does not parse.
    pub fn new(pem: &[u8], issuer: &str, subject: &str, leeway_secs: u64) -> Option<JwtVerifier> {
        let key = DecodingKey::from_rsa_pem(pem).ok()?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.sub = Some(subject.to_string());
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = leeway_secs;
        validation.validate_aud = false;
        Some(JwtVerifier {
            key,
            validation,
            leeway: leeway_secs as i64,
            verified: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        })
    }

    /// Whether `token` is a valid download token now (`now` in Unix seconds).
    pub fn check(&self, token: &str, now: i64) -> Result<(), String> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(exp) = self.verified.get(&digest) {
            return if now <= exp + self.leeway {
                Ok(())
            } else {
                self.verified.invalidate(&digest);
                Err("the token has expired".into())
            };
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| format!("the token is not valid: {e}"))?;
        self.verified.insert(digest, data.claims.exp);
        Ok(())
    }
}
