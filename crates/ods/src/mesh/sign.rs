//! Peer request signing (DESIGN.md §4.2). Every peer request carries
//! `X-ODS-Iss` (sender) and `X-ODS-Signature: t=<unix>,n=<nonce>,s=<hex hmac>` where the
//! HMAC-SHA256, keyed with the pair secret (or, for registration only, the receiver's
//! registration key), covers sender, receiver, method, path and query, the SHA-256 of
//! the body, the time and the nonce. Stale, replayed, misaddressed or forged requests
//! are refused with 401.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use moka::sync::Cache;
use sha2::{Digest, Sha256};

pub const ISS_HEADER: &str = "x-ods-iss";
pub const SIG_HEADER: &str = "x-ods-signature";
/// How far a request's time may be from ours.
pub const MAX_SKEW_SECS: i64 = 60;

fn message(
    sender: &str,
    receiver: &str,
    method: &str,
    path: &str,
    body: &[u8],
    t: i64,
    nonce: &str,
) -> Vec<u8> {
    format!(
        "ODS-PEER-1\n{sender}\n{receiver}\n{}\n{path}\n{}\n{t}\n{nonce}",
        method.to_ascii_uppercase(),
        hex::encode(Sha256::digest(body))
    )
    .into_bytes()
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// The signature header value for a request.
pub fn sign(
    secret: &[u8],
    sender: &str,
    receiver: &str,
    method: &str,
    path: &str,
    body: &[u8],
    t: i64,
) -> String {
    let nonce = crate::secrets::random_id();
    let mut m = mac(secret);
    m.update(&message(sender, receiver, method, path, body, t, &nonce));
    format!(
        "t={t},n={nonce},s={}",
        hex::encode(m.finalize().into_bytes())
    )
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Expired,
    BadSignature,
    Replayed,
}

impl Refusal {
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::Malformed => "the peer signature header is missing or malformed",
            Refusal::Expired => "the peer request is too old or from the future (check the clocks)",
            Refusal::BadSignature => "the peer signature does not verify",
            Refusal::Replayed => "the peer request was already used once",
        }
    }
}

/// Nonces seen recently; a repeat within the validity window is a replay. Entries
/// expire after the window and the cache is unbounded: evicting a live nonce early
/// would let its request be replayed.
pub struct NonceCache {
    seen: Cache<String, ()>,
}

impl Default for NonceCache {
    fn default() -> Self {
        NonceCache {
            seen: Cache::builder()
                .time_to_live(Duration::from_secs(2 * MAX_SKEW_SECS as u64 + 5))
                .build(),
        }
    }
}

impl NonceCache {
    fn first_use(&self, nonce: &str) -> bool {
        self.seen.entry(nonce.to_string()).or_insert(()).is_fresh()
    }
}

/// The nonce of a signature header and the Unix second until which a request with
/// it could be accepted (its time plus the allowed skew).
pub fn nonce_window(header: &str) -> Option<(&str, i64)> {
    let mut t = None;
    let mut n = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("n", v)) => n = Some(v),
            _ => {}
        }
    }
    Some((n?, t?.checked_add(MAX_SKEW_SECS + 1)?))
}

/// Checks a signature header for a request addressed to `receiver`.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    secret: &[u8],
    header: &str,
    sender: &str,
    receiver: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
    nonces: &NonceCache,
) -> Result<(), Refusal> {
    let mut t = None;
    let mut n = None;
    let mut s = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("n", v)) => n = Some(v),
            Some(("s", v)) => s = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(n), Some(s)) = (t, n, s) else {
        return Err(Refusal::Malformed);
    };
    if n.len() < 16 || n.len() > 64 {
        return Err(Refusal::Malformed);
    }
    if (now - t).abs() > MAX_SKEW_SECS {
        return Err(Refusal::Expired);
    }
    let mut m = mac(secret);
    m.update(&message(sender, receiver, method, path, body, t, n));
    m.verify_slice(&s).map_err(|_| Refusal::BadSignature)?;
    if !nonces.first_use(n) {
        return Err(Refusal::Replayed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_refusals() {
        let nonces = NonceCache::default();
        let h = sign(b"k", "a", "b", "GET", "/api/ods/catalog?since=0", b"", 1000);
        let ok = |h: &str, recv: &str, path: &str, now: i64| {
            verify(b"k", h, "a", recv, "GET", path, b"", now, &nonces)
        };
        assert_eq!(ok(&h, "b", "/api/ods/catalog?since=0", 1010), Ok(()));
        assert_eq!(
            ok(&h, "b", "/api/ods/catalog?since=0", 1010),
            Err(Refusal::Replayed)
        );
        let h2 = sign(b"k", "a", "b", "GET", "/x", b"", 1000);
        assert_eq!(
            ok(&h2, "c", "/x", 1000),
            Err(Refusal::BadSignature),
            "wrong audience"
        );
        assert_eq!(
            ok(&h2, "b", "/y", 1000),
            Err(Refusal::BadSignature),
            "other path"
        );
        assert_eq!(ok(&h2, "b", "/x", 1200), Err(Refusal::Expired));
        let h3 = sign(b"other", "a", "b", "GET", "/x", b"", 1000);
        assert_eq!(
            ok(&h3, "b", "/x", 1000),
            Err(Refusal::BadSignature),
            "wrong key"
        );
        assert_eq!(ok("garbage", "b", "/x", 1000), Err(Refusal::Malformed));
    }
}
