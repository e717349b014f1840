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
pub fn make_private(data_dir: &Path, sqlite_file: Option<PathBuf>) -> io::Result<()> {
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
    if let Some(db) = sqlite_file {
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
