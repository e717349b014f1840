//! Domain vocabulary shared by every layer: stages, package states, user roles, a
//! server's identity, and the human-readable formats of the seed API (`3.3 MB`,
//! `8:33:26`, ISO 8601 times). Depends on nothing else in the crate.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::ToSchema;

/// Deploy stage of a package or a server; maturity grows Dev < Test < Prod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum Stage {
    Dev,
    Test,
    Prod,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Dev, Stage::Test, Stage::Prod];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dev => "Dev",
            Stage::Test => "Test",
            Stage::Prod => "Prod",
        }
    }

    /// Accepts the seed's spellings, case-insensitively.
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// A server of stage `self` holds a package of stage `pkg` when the package is at
    /// least as mature as the server (DESIGN.md §3).
    pub fn holds(self, pkg: Stage) -> bool {
        pkg >= self
    }
}

/// Lifecycle of a package on one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Status {
    Downloading,
    Public,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Downloading => "Downloading",
            Status::Public => "Public",
            Status::Failed => "Failed",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Downloading, Status::Public, Status::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl TryFrom<String> for Stage {
    type Error = String;
    fn try_from(s: String) -> Result<Stage, String> {
        Stage::parse(&s).ok_or_else(|| format!("bad stage {s:?}"))
    }
}

impl TryFrom<String> for Status {
    type Error = String;
    fn try_from(s: String) -> Result<Status, String> {
        Status::parse(&s).ok_or_else(|| format!("bad status {s:?}"))
    }
}

/// What a user may do. `admin` everything, `uploader` packages, `viewer` read only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Uploader,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Uploader => "uploader",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Uploader, Role::Admin]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> Result<Role, String> {
        Role::parse(&s).ok_or_else(|| format!("bad role {s:?}"))
    }
}

/// What a server says about itself to its peers (registration, catalog pages), and
/// what this server keeps about each peer. On the wire the flag is `firewalled_mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Identity {
    pub iss: String,
    pub name: String,
    pub url: Option<String>,
    pub stage: String,
    #[serde(rename = "firewalled_mode")]
    pub firewalled: bool,
}

/// Size as the seed shows it: binary multiples, one decimal (`3.3 MB`, `22.1 KB`).
pub fn human_size(bytes: u64) -> String {
    let mut value = bytes as f64;
    for unit in ["B", "KB", "MB", "GB", "TB", "PB"] {
        if value < 1024.0 {
            return format!("{value:.1} {unit}");
        }
        value /= 1024.0;
    }
    format!("{value:.1} EB")
}

/// Duration as the seed shows uptime (Python's `timedelta`): `8:33:26`, `1 day, 0:00:05`.
pub fn human_duration(total_secs: u64) -> String {
    let days = total_secs / 86_400;
    let rest = total_secs % 86_400;
    let hms = format!("{}:{:02}:{:02}", rest / 3600, (rest % 3600) / 60, rest % 60);
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        n => format!("{n} days, {hms}"),
    }
}

/// ISO 8601 in UTC without fractional seconds or offset: `2017-11-11T03:15:54`.
pub fn iso_seconds(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_default()
}

pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Why a filename is refused, or `None` when it is safe to store and serve.
pub fn filename_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the filename is empty")
    } else if name.len() > 255 {
        Some("the filename is longer than 255 bytes")
    } else if name == "." || name == ".." || name.contains("..") {
        Some("the filename may not contain '..'")
    } else if name.contains('/') || name.contains('\\') {
        Some("the filename may not contain path separators")
    } else if name.trim() != name {
        // Some databases compare names ignoring trailing spaces: "a.pkg" and "a.pkg "
        // would be one name there and two elsewhere.
        Some("the filename may not start or end with spaces")
    } else if name.chars().any(|c| c.is_control()) {
        Some("the filename may not contain control characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_seed() {
        assert_eq!(human_size(3_438_044), "3.3 MB");
        assert_eq!(human_size(60_352_081_920), "56.2 GB");
        assert_eq!(human_size(54_346), "53.1 KB");
        assert_eq!(human_size(936_255_488), "892.9 MB");
        assert_eq!(human_size(1_567_678_464), "1.5 GB");
        assert_eq!(human_size(12), "12.0 B");
    }

    #[test]
    fn durations_match_python_timedelta() {
        assert_eq!(human_duration(30_806), "8:33:26");
        assert_eq!(human_duration(5), "0:00:05");
        assert_eq!(human_duration(86_405), "1 day, 0:00:05");
        assert_eq!(human_duration(2 * 86_400 + 3661), "2 days, 1:01:01");
    }

    #[test]
    fn iso_without_micros() {
        assert_eq!(iso_seconds(1_510_370_154), "2017-11-11T03:15:54");
    }

    #[test]
    fn hostile_filenames_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "a.pkg ",
            " a.pkg",
            "a/b",
            "a\\b",
            "a\0b",
            "a\nb",
            "x..y",
            &"a".repeat(256),
        ] {
            assert!(filename_problem(bad).is_some(), "{bad:?} accepted");
        }
        for good in [
            "NoMAD.pkg",
            "Zoom 5.1 (x86).dmg",
            "Größe.zip",
            ".hidden.pkg",
        ] {
            assert_eq!(filename_problem(good), None, "{good:?} refused");
        }
    }

    #[test]
    fn stages_hold_by_maturity() {
        assert!(Stage::Prod.holds(Stage::Prod));
        assert!(!Stage::Prod.holds(Stage::Test));
        assert!(Stage::Dev.holds(Stage::Prod));
        assert_eq!(Stage::parse("prod"), Some(Stage::Prod));
        assert_eq!(Stage::parse("Staging"), None);
    }
}
