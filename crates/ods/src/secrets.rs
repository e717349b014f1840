//! Cryptographic helpers owned by ODS: random identifiers, sealing sensitive columns
//! with `DATABASE_KEY` (XChaCha20-Poly1305, random nonce per value), and token digests.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// 32 lowercase hex characters: package uuids and server ISS ids.
pub fn random_id() -> String {
    hex::encode(random_bytes::<16>())
}

/// SHA-256 hex of a high-entropy token: what the database keeps instead of the token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Encrypts and decrypts sensitive column values at rest.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

const PREFIX: &str = "v1:";

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// `v1:` + base64url(nonce || ciphertext).
    pub fn seal(&self, plain: &str) -> String {
        let nonce_bytes = random_bytes::<24>();
        let nonce = XNonce::from(nonce_bytes);
        let ct = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&ct);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .ok_or_else(|| anyhow::anyhow!("sealed value has an unknown format"))?;
        let bytes = URL_SAFE_NO_PAD.decode(raw)?;
        if bytes.len() < 24 {
            anyhow::bail!("sealed value is truncated");
        }
        let (nonce, ct) = bytes.split_at(24);
        let nonce = XNonce::try_from(nonce).map_err(|_| anyhow::anyhow!("bad nonce"))?;
        let plain = self.cipher.decrypt(&nonce, ct).map_err(|_| {
            anyhow::anyhow!("cannot decrypt a sealed value: DATABASE_KEY differs from the one it was written with")
        })?;
        Ok(String::from_utf8(plain)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_wrong_key() {
        let s = Sealer::new(&[7u8; 32]);
        let a = s.seal("secret");
        let b = s.seal("secret");
        assert_ne!(a, b, "nonce must be random per value");
        assert!(!a.contains("secret"));
        assert_eq!(s.open(&a).unwrap(), "secret");
        assert!(Sealer::new(&[8u8; 32]).open(&a).is_err());
    }
}
