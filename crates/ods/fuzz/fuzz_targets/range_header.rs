//! The Range header planner: any header, any length, never panics, and the ranges it
//! plans lie inside the file, disjoint and not adjacent (so a response is never
//! larger than the file: no amplification).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ods::http::ranges::{Plan, plan};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap()) % (1 << 40);
    let Ok(header) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    if let Plan::Parts(parts) = plan(Some(header), len) {
        assert!(!parts.is_empty());
        // Parts keep the order asked for unless some were merged (RFC 9110 §14.6), so
        // check disjointness on a sorted copy.
        let mut sorted = parts.clone();
        sorted.sort_by_key(|r| *r.start());
        let mut total = 0u64;
        let mut prev_end: Option<u64> = None;
        for r in &sorted {
            assert!(r.start() <= r.end() && *r.end() < len, "{header:?} {len} {parts:?}");
            if let Some(p) = prev_end {
                assert!(*r.start() > p + 1, "overlapping or adjacent: {header:?} {parts:?}");
            }
            prev_end = Some(*r.end());
            total += r.end() - r.start() + 1;
        }
        assert!(total <= len);
    }
});
