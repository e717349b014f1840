//! Multipart part headers and filenames: the raw Content-Disposition reader and the
//! filename rule (NFC, invisible characters) never panic, and what they accept is
//! stable under a second pass.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (cd, parsed) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(Some(name)) = ods::filenames::multipart_filename(Some(cd), Some(parsed))
        && let Ok(nfc) = ods::filenames::accept(&name)
    {
        assert_eq!(ods::filenames::accept(&nfc).as_deref(), Ok(nfc.as_str()));
        assert!(ods::filenames::lookup_forms(&nfc) == vec![nfc.clone()]);
    }
});
