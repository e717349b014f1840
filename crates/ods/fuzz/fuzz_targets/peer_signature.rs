//! The peer signature header (`X-ODS-Signature: t=..,n=..,s=..`): parsing and
//! verifying any header never panics, and nothing but a real signature verifies.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let nonces = ods::mesh::sign::NonceCache::default();
    let now = ods::model::now_unix();
    let r = ods::mesh::sign::verify(
        b"fuzz-secret", header, "a", "b", "GET", "/api/ods/catalog", b"", now, &nonces,
    );
    assert!(r.is_err(), "a random header verified: {header:?}");
    let _ = ods::mesh::sign::nonce_window(header);
});
