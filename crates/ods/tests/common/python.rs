//! Python helpers the tests start (tests/support/*.py): the check that python3 has the
//! modules a test needs, the process itself (it prints its port on its first line and is
//! killed with its owner), and the JSON-lines log such helpers write.
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Whether `python3 -c "import {module}"` works.
pub fn has_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `ok`, after saying why a test is skipped when it is not; a missing tool fails the
/// test instead under ODS_REQUIRE_ALL_DBS=1.
pub fn ready_or_skip(ok: bool, needed: &str, missing: &str) -> bool {
    if !ok {
        assert!(
            std::env::var("ODS_REQUIRE_ALL_DBS").as_deref() != Ok("1"),
            "{needed}"
        );
        eprintln!("skipped: {missing}");
    }
    ok
}

/// A running tests/support script; killed when dropped.
pub struct Helper {
    child: Child,
    pub port: u16,
}

impl Helper {
    /// Starts tests/support/`script` with `args` and reads the port it prints.
    pub fn start<S: AsRef<OsStr>>(script: &str, args: &[S]) -> Helper {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/support")
            .join(script);
        let mut child = Command::new("python3")
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {script}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script} prints its port, not {line:?}"));
        Helper { child, port }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every complete JSON line in `path` (none if it does not exist yet). The helper may be
/// appending while a test polls, so a last line without its newline is not read yet.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}
