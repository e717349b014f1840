//! Incoming transfers run in a job lane of their own with `ODS_MAX_TRANSFERS` slots:
//! that many run at once and no more, and while every slot is busy with a slow
//! transfer the catalog still syncs (pulls run in the main lane, never behind a
//! transfer). Real `ods` processes on loopback; B's link to A is rate-limited so its
//! transfers stay in progress long enough to count them.
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::mesh::{self, package};
use common::{Opts, Server, bytes, register, sha256_hex};

const TOKEN: &str = "transfer-slots-metrics-token-0123";
const SLOTS: u64 = 6;

async fn server(name: &str, env: &[(&str, &str)]) -> Server {
    let mut opts = Opts::default();
    opts.env.push(("ODS_SYNC_INTERVAL".into(), "2".into()));
    opts.env.push(("ODS_METRICS_TOKEN".into(), TOKEN.into()));
    for (k, v) in env {
        opts.env.push((k.to_string(), v.to_string()));
    }
    let s = Server::start_with(opts).await;
    mesh::name(&s, name, "Prod").await;
    s
}

/// The value of the `ods_transfers_in_progress` gauge on `s`'s `/metrics`.
async fn gauge(s: &Server) -> f64 {
    let text = s.metrics(TOKEN).await;
    text.lines()
        .find_map(|l| l.strip_prefix("ods_transfers_in_progress "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn max_transfers_run_at_once_and_never_hold_up_the_catalog() {
    let a = server("A", &[]).await;
    let b = server("B", &[("ODS_MAX_TRANSFERS", "6")]).await;
    register(&b, &a).await;
    // B fetches from A at 2 MiB/s in all, so eight packages of three chunks take
    // several seconds, shared by every transfer at once.
    mesh::rate_limit_first_peer(&b, 2 * 1024 * 1024).await;
    let big: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("big-{i}.pkg"), bytes(2 * 1024 * 1024 + 1, 40 + i)))
        .collect();
    for (name, data) in &big {
        assert_eq!(a.upload(name, data.clone(), "Prod").await.status(), 201);
    }

    // Watch B until everything is Public: the most transfers seen at once, by the
    // admin API and by the gauge, and whether a package uploaded on A while every
    // slot is busy shows up on B before a slot frees.
    let late = bytes(10_000, 77);
    let mut most = 0;
    let mut most_gauge = 0.0f64;
    let mut late_uploaded = false;
    let mut late_seen_while_busy = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = b.get_json("/api/admin/sync").await;
        assert_eq!(stats["max_transfers"], SLOTS);
        let running = stats["transfers_in_progress"].as_u64().unwrap();
        assert!(running <= SLOTS, "{running} transfers at once");
        most = most.max(running);
        most_gauge = most_gauge.max(gauge(&b).await);
        if running == SLOTS && !late_uploaded {
            assert_eq!(
                a.upload("late.pkg", late.clone(), "Prod").await.status(),
                201
            );
            late_uploaded = true;
        }
        // One read of B's list per round: every package's status by filename.
        let list = b.get_json("/api/admin/packages?limit=200").await;
        let status: HashMap<&str, &str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["filename"].as_str().unwrap(),
                    p["status"].as_str().unwrap(),
                )
            })
            .collect();
        if late_uploaded && late_seen_while_busy.is_none() && status.contains_key("late.pkg") {
            let running = b.get_json("/api/admin/sync").await["transfers_in_progress"]
                .as_u64()
                .unwrap();
            late_seen_while_busy = Some(running == SLOTS);
        }
        // Done when every package is Public (late.pkg too, once uploaded; if the
        // slots never all filled it never is, and the asserts below say so).
        let public = |name: &str| status.get(name) == Some(&"Public");
        let all =
            big.iter().all(|(name, _)| public(name)) && (!late_uploaded || public("late.pkg"));
        if all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all Public on B in 120 s (most at once {most})\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        most, SLOTS,
        "ODS_MAX_TRANSFERS=6, but at most {most} ran at once"
    );
    assert_eq!(most_gauge, SLOTS as f64, "the gauge's most at once");
    assert_eq!(
        late_seen_while_busy,
        Some(true),
        "late.pkg's record reached B only once a transfer slot was free"
    );
    for (name, data) in big.iter().chain([&("late.pkg".to_string(), late)]) {
        let p = package(&b, name).await.unwrap();
        assert_eq!(p["sha256"], sha256_hex(data), "{name}");
        let (status, body) = b.share(name).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(&body[..], &data[..], "{name}");
    }
    let stats = b.get_json("/api/admin/sync").await;
    assert_eq!(stats["transfers_in_progress"], 0);
    assert_eq!(gauge(&b).await, 0.0);
}
