//! Peer catalog messages: any bytes decode to a `CatalogPage` or an error, and a
//! decoded page re-encodes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = serde_json::from_slice::<ods::peers::CatalogPage>(data) {
        serde_json::to_vec(&page).expect("a decoded page re-encodes");
    }
});
