//! Finding 6 of issue 9: filenames are stored in NFC (the NFC and NFD spellings of
//! `Café.pkg` are one package) and invisible or bidi control characters are refused
//! with a clear 400 that stores nothing.
mod admin_support;
mod common;

use admin_support::*;
use common::Server;

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn nfc_and_nfd_are_one_package_and_invisible_characters_are_refused() {
    let s = Server::start().await;
    let nfc = "Caf\u{e9}.pkg";
    let nfd = "Cafe\u{301}.pkg";
    let r = s.upload(nfd, b"first".to_vec(), "Dev").await;
    let first = expect_json(r, 201).await;
    assert_eq!(first["filename"], nfc, "stored in NFC");
    let r = s.upload(nfc, b"second".to_vec(), "Dev").await;
    expect_error(r, 409, "filename_exists").await;
    let r = s.upload(nfd, b"third".to_vec(), "Dev").await;
    expect_error(r, 409, "filename_exists").await;
    // Either spelling finds it.
    for name in [nfc, nfd] {
        let p = s
            .get_json(&format!("/api/admin/packages/name/{}", enc(name)))
            .await;
        assert_eq!(p["id"], first["id"]);
        let p = s
            .get_json(&format!("/api/admin/packages/{}", enc(name)))
            .await;
        assert_eq!(p["id"], first["id"]);
    }

    for c in [
        '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{200B}',
        '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{2028}', '\u{2029}',
    ] {
        let name = format!("invoice{c}gpj.pkg");
        let r = s.upload(&name, b"x".to_vec(), "Dev").await;
        let e = expect_error(r, 400, "invalid_filename").await;
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(&format!("U+{:04X}", c as u32)), "{msg}");
    }
    let items = s.get_json("/api/admin/packages").await["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    assert!(s.staging_files().is_empty(), "{:?}", s.staging_files());
}
