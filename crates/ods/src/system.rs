//! Real figures from the machine for `GET /api/admin/system` and the Admin tab.

use std::path::Path;

use serde_json::{Value, json};
use sysinfo::{Networks, System};

use crate::model::{human_duration, human_size};

pub fn snapshot(data_dir: &Path) -> Value {
    let (mem_total, mem_available) = match System::new() {
        Ok(mut sys) => {
            sys.refresh_memory();
            (sys.total_memory(), sys.available_memory())
        }
        Err(e) => {
            tracing::warn!(%e, "reading memory figures");
            (0, 0)
        }
    };
    let mem_used = mem_total.saturating_sub(mem_available);

    let (disk_total, disk_used, disk_free) = disk_figures(data_dir);

    let (sent, received) = match Networks::new_with_refreshed_list() {
        Ok(nets) => nets.iter().fold((0u64, 0u64), |(s, r), (_, n)| {
            (s + n.total_transmitted(), r + n.total_received())
        }),
        Err(e) => {
            tracing::warn!(%e, "reading network figures");
            (0, 0)
        }
    };
    let uptime = System::uptime().unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    json!({
        "cpu_count": cpus,
        "disk_free": disk_free,
        "disk_free_hr": human_size(disk_free),
        "disk_total": disk_total,
        "disk_total_hr": human_size(disk_total),
        "disk_used": disk_used,
        "disk_used_hr": human_size(disk_used),
        "mem_available": mem_available,
        "mem_available_hr": human_size(mem_available),
        "mem_total": mem_total,
        "mem_total_hr": human_size(mem_total),
        "mem_used": mem_used,
        "mem_used_hr": human_size(mem_used),
        "network_bytes_received": received,
        "network_bytes_received_hr": human_size(received),
        "network_bytes_sent": sent,
        "network_bytes_sent_hr": human_size(sent),
        "uptime": uptime,
        "uptime_hr": human_duration(uptime),
    })
}

/// Total, used and free bytes of the filesystem holding `dir`, as `df` and the seed's
/// psutil report them: used = total - free blocks, free = blocks available to users.
#[cfg(unix)]
fn disk_figures(dir: &Path) -> (u64, u64, u64) {
    let st = match rustix::fs::statvfs(dir) {
        Ok(st) => st,
        Err(e) => {
            tracing::warn!(error = %std::io::Error::from(e), "reading disk figures");
            return (0, 0, 0);
        }
    };
    let frsize = st.f_frsize;
    let total = st.f_blocks * frsize;
    let used = st.f_blocks.saturating_sub(st.f_bfree) * frsize;
    let free = st.f_bavail * frsize;
    (total, used, free)
}

#[cfg(not(unix))]
fn disk_figures(_dir: &Path) -> (u64, u64, u64) {
    (0, 0, 0)
}
