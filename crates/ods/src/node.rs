//! What identifies one ODS process among the nodes of a site: its id
//! (`NAME-PID-RANDOM`, also its job worker id and the owner tag of its staging files),
//! how a process of this node name that is gone is told on this host, and the check
//! value that shows whether two nodes hold the same `SECRET_KEY`. Pure functions; the
//! heartbeats themselves live in `db::nodes`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A new node id for this process: unique even for containers sharing a name and pid.
pub fn new_id(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        &crate::secrets::random_id()[..8]
    )
}

/// Whether the node `id` ran under our node name (so on this host) in a process that
/// is gone. Call before this process claims anything: an id with our own pid is then
/// a predecessor's (pids are reused, in containers especially). Another name's
/// processes are judged by their heartbeat instead.
pub fn gone_here(id: &str, own_name: &str) -> bool {
    let mut parts = id.rsplitn(3, '-');
    let (_random, pid, name) = (parts.next(), parts.next(), parts.next());
    let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    name == Some(own_name) && (pid == std::process::id() || !pid_alive(pid))
}

/// Whether process `pid` still runs on this machine (true where that cannot be told).
pub fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true // elsewhere rely on heartbeats and age alone
    }
}

/// A value that is equal for two nodes exactly when their `SECRET_KEY`s are (an HMAC,
/// so the table holding it does not reveal the key).
pub fn secret_check(secret_key: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret_key).expect("any key length");
    mac.update(b"ods node secret check");
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_processes_are_told_apart() {
        let me = std::process::id();
        assert!(
            gone_here(&format!("n1-{me}-0badcafe"), "n1"),
            "a predecessor with our pid"
        );
        assert!(
            gone_here("n1-4294967294-0badcafe", "n1"),
            "a pid that does not run"
        );
        assert!(!gone_here("n1-1-0badcafe", "n1"), "pid 1 runs");
        assert!(
            !gone_here("n2-4294967294-0badcafe", "n1"),
            "another node's process is not ours to judge"
        );
        assert!(!gone_here("garbage", "n1"));
        assert!(
            gone_here("a-b-4294967294-0badcafe", "a-b"),
            "names may hold dashes"
        );
    }

    #[test]
    fn secret_checks_tell_keys_apart() {
        assert_eq!(
            secret_check(b"0123456789abcdef"),
            secret_check(b"0123456789abcdef")
        );
        assert_ne!(
            secret_check(b"0123456789abcdef"),
            secret_check(b"0123456789abcdeg")
        );
        assert_eq!(secret_check(b"x").len(), 64);
    }
}
