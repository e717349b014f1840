//! What a download answers to a `Range` header (RFC 9110 §14.2): the whole file, a
//! set of byte ranges, or 416. Overlapping and adjacent ranges are coalesced, so a
//! request can never make the server send more than the file and a bounded amount of
//! multipart framing; an over-long list, and any Range on an empty file, get the whole
//! representation (a server may ignore Range), which caches such as nginx's slice
//! module handle.

use std::ops::RangeInclusive;

/// More ranges than this (after coalescing) and the header is ignored: each part costs
/// ~100 bytes of framing, so thousands of one-byte ranges would amplify the response.
pub const MAX_RANGES: usize = 32;

#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole file.
    Whole,
    /// 206 with these ranges: sorted, disjoint and not adjacent.
    Parts(Vec<RangeInclusive<u64>>),
    /// 416: no range overlaps the file.
    Unsatisfiable,
}

/// Decides the answer to `range` (the header's value, if any) for a file of `len` bytes.
pub fn plan(range: Option<&str>, len: u64) -> Plan {
    let Some(range) = range else {
        return Plan::Whole;
    };
    // Syntax we do not understand is ignored (RFC 9110 §14.2).
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        return Plan::Whole;
    };
    if len == 0 {
        // Nothing to cut: the empty whole answers every range, so a slice cache that
        // asks for `bytes=0-1048575` gets a cacheable 200 instead of an error body.
        return Plan::Whole;
    }
    let ranges = match parsed.validate(len) {
        Ok(ranges) => ranges,
        Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable) => {
            return Plan::Unsatisfiable;
        }
        // The library refuses sets with many overlaps; ignoring the header is allowed.
        Err(_) => return Plan::Whole,
    };
    let merged = coalesce(ranges);
    match merged.as_slice() {
        [] => Plan::Whole,
        [one] if *one.start() == 0 && *one.end() == len - 1 => Plan::Whole,
        _ if merged.len() > MAX_RANGES => Plan::Whole,
        _ => Plan::Parts(merged),
    }
}

/// Merges ranges that overlap or touch. Parts keep the order they were asked in
/// (RFC 9110 §14.6 says a server should) unless some had to be merged, and then they
/// come sorted.
fn coalesce(ranges: Vec<RangeInclusive<u64>>) -> Vec<RangeInclusive<u64>> {
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| *r.start());
    let mut out: Vec<RangeInclusive<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if *r.start() <= last.end().saturating_add(1) => {
                if r.end() > last.end() {
                    *last = *last.start()..=*r.end();
                }
            }
            _ => out.push(r),
        }
    }
    if out.len() == ranges.len() {
        ranges
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(v: &[(u64, u64)]) -> Plan {
        Plan::Parts(v.iter().map(|&(a, b)| a..=b).collect())
    }

    #[test]
    fn overlapping_ranges_do_not_amplify() {
        assert_eq!(plan(Some("bytes=0-,0-"), 100), Plan::Whole);
        assert_eq!(plan(Some("bytes=0-49,10-20,40-"), 100), Plan::Whole);
        assert_eq!(plan(Some("bytes=0-9,5-19"), 100), parts(&[(0, 19)]));
        // Order is kept when nothing merges; merged sets come sorted.
        assert_eq!(
            plan(Some("bytes=50-59,0-9"), 100),
            parts(&[(50, 59), (0, 9)])
        );
        assert_eq!(
            plan(Some("bytes=50-59,0-9,9-12"), 100),
            parts(&[(0, 12), (50, 59)])
        );
        assert_eq!(plan(Some("bytes=0-9,10-19"), 100), parts(&[(0, 19)]));
        assert_eq!(plan(Some("bytes=-10,85-"), 100), parts(&[(85, 99)]));
    }

    #[test]
    fn many_ranges_are_ignored() {
        let many: Vec<String> = (0..=MAX_RANGES as u64)
            .map(|i| format!("{}-{}", i * 3, i * 3))
            .collect();
        let header = format!("bytes={}", many.join(","));
        assert_eq!(plan(Some(&header), 1000), Plan::Whole);
        let few = format!("bytes={}", many[..MAX_RANGES].join(","));
        assert!(matches!(plan(Some(&few), 1000), Plan::Parts(p) if p.len() == MAX_RANGES));
    }

    #[test]
    fn empty_files_answer_whole() {
        assert_eq!(plan(Some("bytes=0-1048575"), 0), Plan::Whole);
        assert_eq!(plan(Some("bytes=-5"), 0), Plan::Whole);
        assert_eq!(plan(None, 0), Plan::Whole);
    }

    #[test]
    fn unsatisfiable_and_unparsable() {
        assert_eq!(plan(Some("bytes=200-300"), 100), Plan::Unsatisfiable);
        assert_eq!(plan(Some("bytes=200-300,0-1"), 100), parts(&[(0, 1)]));
        assert_eq!(plan(Some("items=0-1"), 100), Plan::Whole);
        assert_eq!(plan(Some("bytes=5-1"), 100), Plan::Whole);
        assert_eq!(plan(Some("bytes=0-0"), 100), parts(&[(0, 0)]));
        assert_eq!(plan(Some("bytes=0-5,1-6,2-7,3-8"), 100), Plan::Whole);
    }
}
