//! Hybrid logical clock: versions that order changes across servers even when their
//! clocks disagree a little. A version is `ms.counter.iss` with fixed widths (13
//! digits, 6 digits, 32 hex), so plain string comparison orders them; the origin ISS
//! breaks ties. Versions from peers are checked: malformed ones, or ones further ahead
//! of our clock than `MAX_AHEAD_MS`, are refused so one bad clock cannot poison the
//! network.
//!
//! The nodes of one site share its ISS, each with its own clock, so two nodes can
//! mint the same version in one millisecond. That cannot make two sites disagree:
//! - every change of an existing record (stage, delete, a conflict's loser; in
//!   `catalog`) runs in a transaction that first takes `catalog::lock` (a row lock
//!   on PostgreSQL and MariaDB, the one writer connection on SQLite), reads the record
//!   there and stamps it `after(its version)`. One record's versions therefore rise
//!   strictly, whichever node makes the change, and last-writer-wins per uuid never
//!   sees a tie: equal versions only ever belong to different records;
//! - different records are compared in one place, a filename conflict
//!   (`catalog::later_upload`, by `created_version`): there the uuid breaks a tie, so
//!   every server picks the same winner whichever record it hears first, and a new
//!   upload is stamped after every record that carried its filename (read under the
//!   lock), so it is later than the package it replaces even when the node that
//!   stamped that one has a clock running ahead.

use std::sync::Mutex;

/// How far ahead of this server's clock a peer's version may be.
pub const MAX_AHEAD_MS: i64 = 5 * 60 * 1000;
const COUNTER_MAX: u32 = 999_999;

pub struct Hlc {
    iss: String,
    state: Mutex<(i64, u32)>,
}

/// `(ms, counter, iss)` of a well-formed version.
pub fn parse(version: &str) -> Option<(i64, u32, &str)> {
    let mut parts = version.splitn(3, '.');
    let (ms, counter, iss) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let hex = |s: &str| {
        s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !digits(ms, 13) || !digits(counter, 6) || !hex(iss) {
        return None;
    }
    Some((ms.parse().ok()?, counter.parse().ok()?, iss))
}

/// Whether a peer's version may be accepted now.
pub fn acceptable(version: &str) -> bool {
    parse(version).is_some_and(|(ms, _, _)| ms <= crate::model::now_millis() + MAX_AHEAD_MS)
}

impl Hlc {
    pub fn new(iss: &str) -> Hlc {
        Hlc {
            iss: iss.to_string(),
            state: Mutex::new((0, 0)),
        }
    }

    /// A version newer than every version this server has made or seen.
    pub fn now(&self) -> String {
        let wall = crate::model::now_millis();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if wall > s.0 {
            *s = (wall, 0);
        } else if s.1 >= COUNTER_MAX {
            *s = (s.0 + 1, 0);
        } else {
            s.1 += 1;
        }
        format!("{:013}.{:06}.{}", s.0, s.1, self.iss)
    }

    /// Moves the clock past a well-formed version (received, or found at start).
    pub fn observe(&self, version: &str) {
        let Some((ms, c, _)) = parse(version) else {
            return;
        };
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if (ms, c) > *s {
            *s = (ms, c);
        }
    }

    /// A version strictly newer than `version` (and than everything seen): what a local
    /// change of a record stamped `version` gets, whatever the clocks say.
    pub fn after(&self, version: &str) -> String {
        self.observe(version);
        self.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ms: i64, c: u32, iss: &str) -> String {
        format!("{ms:013}.{c:06}.{iss}")
    }

    #[test]
    fn versions_are_monotonic_and_ordered_as_strings() {
        let a = Hlc::new(&"a".repeat(32));
        let v1 = a.now();
        let v2 = a.now();
        assert!(v2 > v1);
        let ahead = v(crate::model::now_millis() + 60_000, 7, &"b".repeat(32));
        a.observe(&ahead);
        let v3 = a.now();
        assert!(v3 > ahead, "{v3} <= {ahead}");
    }

    #[test]
    fn a_local_change_beats_the_record_it_changes() {
        let a = Hlc::new(&"1".repeat(32));
        let theirs = v(crate::model::now_millis() + 100_000, 42, &"f".repeat(32));
        assert!(a.after(&theirs) > theirs);
    }

    #[test]
    fn counter_rolls_into_milliseconds_instead_of_widening() {
        let a = Hlc::new(&"1".repeat(32));
        let near_max = v(
            crate::model::now_millis() + 200_000,
            COUNTER_MAX,
            &"2".repeat(32),
        );
        a.observe(&near_max);
        let next = a.now();
        assert!(next > near_max, "{next} <= {near_max}");
        assert_eq!(next.len(), near_max.len());
    }

    #[test]
    fn malformed_or_far_future_versions_are_refused() {
        assert!(acceptable(&v(
            crate::model::now_millis(),
            0,
            &"a".repeat(32)
        )));
        assert!(!acceptable(&v(9_999_999_999_999, 999_999, &"a".repeat(32))));
        assert!(!acceptable("1.2.x"));
        assert!(!acceptable(&format!(
            "{}.0000001.{}",
            "1".repeat(13),
            "a".repeat(32)
        )));
        let a = Hlc::new(&"1".repeat(32));
        a.observe("garbage");
        assert!(parse(&a.now()).is_some());
    }
}
