//! The data directory is private to the server: the directory and what it holds
//! directly (the SQLite database and its WAL, the generated keys, the blob and staging
//! folders) are made owner-only (0700/0600) at every start, so a directory created
//! under a permissive umask, or by an older ODS, is tightened too. Files deeper down
//! (blobs) are reached only through these folders.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Tightens `data_dir` and, when the database is a SQLite file elsewhere, that file and
/// its `-wal`/`-shm` companions.
pub fn make_private(data_dir: &Path, database_url: &str) -> io::Result<()> {
    if data_dir.is_dir() {
        set_mode(data_dir, DIR_MODE)?;
        for entry in fs::read_dir(data_dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                set_mode(&entry.path(), DIR_MODE)?;
            } else if kind.is_file() {
                set_mode(&entry.path(), FILE_MODE)?;
            }
        }
    }
    if let Some(db) = sqlite_path(database_url) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            let p = PathBuf::from(p);
            if p.is_file() {
                set_mode(&p, FILE_MODE)?;
            }
        }
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    let current = fs::metadata(p)?.permissions().mode() & 0o777;
    if current == mode {
        return Ok(());
    }
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot make {} private (mode {mode:o}): {e}", p.display()),
        )
    })
}

/// The file of a `sqlite://PATH?options` URL (not `:memory:`).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/ods/ods.sqlite3?mode=rwc"),
            Some(PathBuf::from("/var/lib/ods/ods.sqlite3"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
