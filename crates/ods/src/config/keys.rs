//! The two keys the server cannot run without, `SECRET_KEY` (signs sessions and
//! tokens) and `DATABASE_KEY` (encrypts secrets at rest): taken from the settings, or
//! kept in the data directory, where a missing one is generated once (mode 0600).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use super::Secret;

/// What the caller wants done with missing keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KeyFiles {
    /// Generate missing keys and keep them in the data directory.
    Create,
    /// Only read what exists (`check-config`); a missing key is noted in
    /// `Config::pending` as one `ods serve` will generate, not made.
    ReadOnly,
}

/// The session-signing `SECRET_KEY` and the at-rest `DATABASE_KEY`: from the settings
/// when given there, else from their files in the data directory (generated there once
/// under `KeyFiles::Create`).
pub(super) fn resolve(
    secret: Option<Secret<String>>,
    database: Option<Secret<String>>,
    data_dir: &Path,
    keys: KeyFiles,
    problems: &mut Vec<String>,
    pending: &mut Vec<String>,
) -> (Option<Vec<u8>>, Option<[u8; 32]>) {
    let secret_key = match secret {
        Some(s) if s.0.len() >= 16 => Some(s.0.into_bytes()),
        Some(_) => {
            problems.push("SECRET_KEY is shorter than 16 characters".into());
            None
        }
        None => stored_key(
            data_dir,
            "SECRET_KEY",
            "secret.key",
            keys,
            problems,
            pending,
        )
        .map(|k| k.into_bytes()),
    };
    let database_key = match database {
        Some(s) => decode_key32(&s.0).or_else(|| {
            problems
                .push("DATABASE_KEY must be 32 bytes written as 64 hex digits or base64".into());
            None
        }),
        None => stored_key(
            data_dir,
            "DATABASE_KEY",
            "database.key",
            keys,
            problems,
            pending,
        )
        .and_then(|k| {
            decode_key32(&k).or_else(|| {
                problems.push(format!(
                    "{} does not hold a 32-byte key",
                    data_dir.join("database.key").display()
                ));
                None
            })
        }),
    };
    (secret_key, database_key)
}

fn decode_key32(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(t).ok()?
    } else {
        STANDARD.decode(t).or_else(|_| URL_SAFE.decode(t)).ok()?
    };
    bytes.try_into().ok()
}

/// The key `name` kept in the data directory as `file`; one that `ods serve` will
/// generate goes to `pending` under `KeyFiles::ReadOnly`.
fn stored_key(
    data_dir: &Path,
    name: &str,
    file: &str,
    keys: KeyFiles,
    problems: &mut Vec<String>,
    pending: &mut Vec<String>,
) -> Option<String> {
    let k = key_file(data_dir, file, keys, problems);
    if k.is_none() && keys == KeyFiles::ReadOnly && !data_dir.join(file).exists() {
        pending.push(format!(
            "{name} is not set: ods serve generates it into {}",
            data_dir.join(file).display()
        ));
    }
    k
}

/// Reads a key kept in the data directory, creating it (0600) when asked to; `None`
/// (and no problem) when it is missing and `keys` is `ReadOnly`.
fn key_file(dir: &Path, name: &str, keys: KeyFiles, problems: &mut Vec<String>) -> Option<String> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => return Some(s.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            problems.push(format!("{}: cannot read it: {e}", path.display()));
            return None;
        }
        Err(_) => {}
    }
    if keys == KeyFiles::ReadOnly {
        return None;
    }
    let key = URL_SAFE.encode(crate::secrets::random_bytes::<32>());
    match write_private(&path, &key) {
        Ok(()) => Some(key),
        Err(e) => {
            problems.push(format!("{}: cannot create it: {e}", path.display()));
            None
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
