//! The admin API against real `ods serve` processes: every example of the seed
//! documentation compared field by field, package stage changes and deletion, the jobs
//! listing and the Jamf digests, and JSON errors for every kind of bad request.
//! Authorization is in `admin_auth.rs`, the command line in `admin_cli.rs`.
mod admin_support;
mod common;

use admin_support::*;
use common::Server;
use reqwest::Method;
use serde_json::{Value, json};

const MIB: usize = 1_048_576;

#[test]
fn seed_formats_reproduce_the_seed_examples() {
    // The helpers below check the server's `_hr` fields; they must first reproduce
    // every figure printed in the seed.
    for (bytes, hr) in [
        (3_438_044, "3.3 MB"),
        (60_352_081_920, "56.2 GB"),
        (67_371_577_344, "62.7 GB"),
        (3_566_796_800, "3.3 GB"),
        (936_255_488, "892.9 MB"),
        (1_567_678_464, "1.5 GB"),
        (444_342_272, "423.8 MB"),
        (54_346, "53.1 KB"),
        (45_694, "44.6 KB"),
    ] {
        assert_eq!(seed_size(bytes), hr);
    }
    assert_eq!(seed_duration(30_806), "8:33:26");
    assert_eq!(seed_duration(86_405), "1 day, 0:00:05");
    assert_eq!(parse_iso("2017-11-11T03:15:54"), 1_510_370_154);
    assert_eq!(parse_iso("2017-11-10T04:45:47"), 1_510_289_147);
}

async fn about(s: &Server) -> Value {
    let r = req(s, &Cred::admin(), Method::GET, "/api/admin/about")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await
}

/// POSTs an about update; returns the response.
async fn post_about(s: &Server, path: &str, body: Value) -> reqwest::Response {
    req(s, &Cred::admin(), Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn expect_seed_201(r: reqwest::Response) {
    let st = r.status().as_u16();
    let ct = content_type(&r);
    let text = r.text().await.unwrap();
    assert_eq!(st, 201, "{text}");
    assert!(ct.starts_with("text/html"), "content-type {ct:?}");
    assert_eq!(text, "");
}

fn stat_fs(path: &std::path::Path) -> (u64, u64) {
    // total and available bytes of the filesystem holding `path`
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%b %a %S"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let n: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (n[0] * n[2], n[1] * n[2])
}

fn proc_value(file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {file}"))
}

#[tokio::test]
async fn about_registry_and_system_match_the_seed() {
    let s = Server::start().await;

    // GET /api/admin/about: the seed's keys and types.
    let a = about(&s).await;
    for k in ["firewalled_mode", "iss", "key", "name", "stage", "url"] {
        assert!(a.get(k).is_some(), "about lacks {k}: {a}");
    }
    assert_eq!(a["firewalled_mode"], false);
    let iss = a["iss"].as_str().unwrap().to_string();
    assert!(is_hex(&iss, 32), "iss {iss:?}");
    let key = a["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 44, "key {key:?}");
    {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(&key)
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(&key))
            .expect("key is base64");
        assert_eq!(raw.len(), 32);
    }
    assert_eq!(a["name"], "ODS");
    assert_eq!(a["stage"], "Prod");
    assert_eq!(a["url"], Value::Null);

    // POST /api/admin/about with the seed's request: 201, empty text/html.
    let seed_body = json!({
        "name": "Example ODS",
        "url": "http://192.168.99.100",
        "firewalled_mode": "Disabled",
        "stage": "Prod"
    });
    expect_seed_201(post_about(&s, "/api/admin/about", seed_body).await).await;
    let a = about(&s).await;
    assert_eq!(a["name"], "Example ODS");
    assert_eq!(a["url"], "http://192.168.99.100");
    assert_eq!(a["firewalled_mode"], false);
    assert_eq!(a["stage"], "Prod");
    assert_eq!(a["iss"], iss.as_str(), "iss never changes");
    assert_eq!(a["key"], key.as_str(), "key never changes");

    // The other spelling, and firewalled_mode as words and as booleans.
    let update = "/api/admin/about/update";
    expect_seed_201(
        post_about(
            &s,
            update,
            json!({"firewalled_mode": "Enabled", "stage": "Test"}),
        )
        .await,
    )
    .await;
    let a = about(&s).await;
    assert_eq!(a["firewalled_mode"], true);
    assert_eq!(a["stage"], "Test");
    assert_eq!(a["name"], "Example ODS", "fields not sent are kept");
    expect_seed_201(post_about(&s, update, json!({"firewalled_mode": false})).await).await;
    assert_eq!(about(&s).await["firewalled_mode"], false);
    expect_seed_201(post_about(&s, "/api/admin/about", json!({"firewalled_mode": true})).await)
        .await;
    assert_eq!(about(&s).await["firewalled_mode"], true);
    expect_seed_201(post_about(&s, update, json!({"firewalled_mode": "Disabled"})).await).await;
    assert_eq!(about(&s).await["firewalled_mode"], false);
    for stage in ["Dev", "Prod"] {
        expect_seed_201(post_about(&s, update, json!({"stage": stage})).await).await;
        assert_eq!(about(&s).await["stage"], stage);
    }

    // Refused updates: 400 with a JSON error, and nothing changes.
    let before = about(&s).await;
    for (path, body, code) in [
        (update, json!({"stage": "Staging"}), "invalid_stage"),
        ("/api/admin/about", json!({"stage": ""}), "invalid_stage"),
        (
            update,
            json!({"firewalled_mode": "Maybe"}),
            "invalid_firewalled_mode",
        ),
        (
            update,
            json!({"iss": "00000000000000000000000000000000"}),
            "read_only_field",
        ),
        (
            "/api/admin/about",
            json!({"key": "r3Yt354eDTY0JkaiObpsM4krfkDzdZD9NNYwDr9aSk0="}),
            "read_only_field",
        ),
        (
            update,
            json!({"name": "Sneaky", "key": "x"}),
            "read_only_field",
        ),
        (
            update,
            json!({"url": "ftp://192.168.99.100"}),
            "invalid_url",
        ),
        (update, json!({"url": "192.168.99.100"}), "invalid_url"),
        (update, json!({"url": "http://"}), "invalid_url"),
        (update, json!({"url": "http://a b"}), "invalid_url"),
        (update, json!({"name": ""}), "invalid_name"),
        (update, json!({"name": "a\u{7}b"}), "invalid_name"),
    ] {
        let r = post_about(&s, path, body.clone()).await;
        expect_error(r, 400, code).await;
    }
    assert_eq!(about(&s).await, before, "a refused update changes nothing");

    // url back to null; an https URL with a trailing slash is kept without it.
    expect_seed_201(post_about(&s, update, json!({"url": null})).await).await;
    assert_eq!(about(&s).await["url"], Value::Null);
    expect_seed_201(post_about(&s, update, json!({"url": "https://ods.example.com/"})).await).await;
    assert_eq!(about(&s).await["url"], "https://ods.example.com");

    // GET /api/admin/registered_ods: the items wrapper, empty on a new server.
    let r = req(&s, &Cred::admin(), Method::GET, "/api/admin/registered_ods")
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!({"items": []}));

    // POST /api/admin/register: missing fields are named in a 400.
    let register = |body: Value| {
        req(&s, &Cred::admin(), Method::POST, "/api/admin/register")
            .json(&body)
            .send()
    };
    let v = expect_error(register(json!({})).await.unwrap(), 400, "missing_field").await;
    let msg = v["error"]["message"].as_str().unwrap();
    for f in ["url", "iss_id", "key"] {
        assert!(msg.contains(f), "{msg}");
    }
    let v = expect_error(
        register(json!({"url": "http://192.168.99.101", "iss_id": "  "}))
            .await
            .unwrap(),
        400,
        "missing_field",
    )
    .await;
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("iss_id") && msg.contains("key") && !msg.contains("url"),
        "{msg}"
    );

    // GET /api/admin/system: every key of the seed's example, with real figures.
    let r = req(&s, &Cred::admin(), Method::GET, "/api/admin/system")
        .send()
        .await
        .unwrap();
    let sys = expect_json(r, 200).await;
    let seed_keys = [
        "cpu_count",
        "disk_free",
        "disk_free_hr",
        "disk_total",
        "disk_total_hr",
        "disk_used",
        "disk_used_hr",
        "mem_available",
        "mem_available_hr",
        "mem_total",
        "mem_total_hr",
        "mem_used",
        "mem_used_hr",
        "network_bytes_received",
        "network_bytes_received_hr",
        "network_bytes_sent",
        "network_bytes_sent_hr",
        "uptime",
        "uptime_hr",
    ];
    for k in seed_keys {
        let v = sys
            .get(k)
            .unwrap_or_else(|| panic!("system lacks {k}: {sys}"));
        if k == "uptime_hr" {
            let n = sys["uptime"].as_u64().unwrap();
            assert_eq!(v.as_str(), Some(seed_duration(n).as_str()), "{k}: {sys}");
        } else if let Some(base) = k.strip_suffix("_hr") {
            let n = sys[base].as_u64().unwrap();
            assert_eq!(v.as_str(), Some(seed_size(n).as_str()), "{k}: {sys}");
        } else {
            assert!(v.is_u64(), "{k} is not a byte/second count: {sys}");
        }
    }
    assert!(sys["cpu_count"].as_u64().unwrap() >= 1, "{sys}");
    let uptime_hr = sys["uptime_hr"].as_str().unwrap();
    let hms = uptime_hr.rsplit(", ").next().unwrap();
    let parts: Vec<&str> = hms.split(':').collect();
    assert!(
        parts.len() == 3
            && parts[1].len() == 2
            && parts[2].len() == 2
            && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "uptime_hr {uptime_hr:?} is not H:MM:SS"
    );
    // Real figures: the machine's own, read here without the server.
    let mem_total = proc_value("/proc/meminfo", "MemTotal:") * 1024;
    assert_eq!(sys["mem_total"].as_u64().unwrap(), mem_total, "{sys}");
    let mem_available = sys["mem_available"].as_u64().unwrap();
    assert!(mem_available > 0 && mem_available <= mem_total, "{sys}");
    assert_eq!(
        sys["mem_used"].as_u64().unwrap() + mem_available,
        mem_total,
        "{sys}"
    );
    let boot = proc_value("/proc/uptime", "");
    assert!(
        sys["uptime"].as_u64().unwrap().abs_diff(boot) <= 5,
        "{sys} vs /proc/uptime {boot}"
    );
    let (disk_total, disk_avail) = stat_fs(&s.data_dir);
    assert!(disk_total > 0);
    assert_eq!(sys["disk_total"].as_u64().unwrap(), disk_total, "{sys}");
    let free = sys["disk_free"].as_u64().unwrap();
    assert!(
        free.abs_diff(disk_avail) <= disk_total / 50,
        "disk_free {free} vs statvfs available {disk_avail}"
    );
    assert!(sys["disk_used"].as_u64().unwrap() <= disk_total, "{sys}");
}

/// The seed's package keys, with their JSON types.
fn assert_seed_package(p: &Value, filename: &str, data: &[u8], stage: &str, t0: i64, t1: i64) {
    let keys = [
        "created",
        "created_ts",
        "file_size",
        "file_size_hr",
        "filename",
        "id",
        "sha1",
        "stage",
        "status",
        "uuid",
    ];
    for k in keys {
        assert!(p.get(k).is_some(), "package lacks {k}: {p}");
    }
    let created = p["created"].as_str().unwrap();
    assert!(!created.contains('.'), "no microseconds: {created}");
    let ts = p["created_ts"].as_i64().unwrap();
    assert_eq!(parse_iso(created), ts, "created and created_ts agree");
    assert!(
        (t0 - 1..=t1 + 1).contains(&ts),
        "created_ts {ts} not in [{t0}, {t1}]"
    );
    assert_eq!(p["file_size"].as_u64(), Some(data.len() as u64), "{p}");
    assert_eq!(p["file_size_hr"], seed_size(data.len() as u64).as_str());
    assert_eq!(p["filename"], filename);
    assert!(p["id"].as_i64().is_some_and(|id| id > 0), "{p}");
    assert_eq!(p["sha1"], common::sha1_hex(data).as_str());
    assert_eq!(p["stage"], stage);
    assert_eq!(p["status"], "Public");
    assert!(is_hex(p["uuid"].as_str().unwrap(), 32), "{p}");
}

fn assert_chunks(p: &Value, data: &[u8]) {
    let chunks = p["chunks"].as_array().unwrap_or_else(|| panic!("{p}"));
    let expected: Vec<Value> = data
        .chunks(MIB)
        .enumerate()
        .map(|(i, c)| json!({"index": i, "sha1": common::sha1_hex(c)}))
        .collect();
    assert_eq!(chunks, &expected);
}

#[tokio::test]
async fn packages_match_the_seed_and_change_stage_and_delete() {
    let s = Server::start().await;
    let admin = Cred::admin();

    // The seed's NoMAD.pkg: 3438044 bytes, "3.3 MB", four 1 MiB chunks.
    let nomad = common::bytes(3_438_044, 1);
    let t0 = now_unix();
    let r = upload_to(
        &s,
        &admin,
        "/api/admin/upload",
        "NoMAD.pkg",
        nomad.clone(),
        "Prod",
    )
    .await;
    let up = expect_json(r, 201).await;
    assert_eq!(up["filename"], "NoMAD.pkg");
    assert_eq!(up["sha1"], common::sha1_hex(&nomad).as_str());
    assert_eq!(up["sha256"], common::sha256_hex(&nomad).as_str());
    // The other spelling of upload (POST /api/admin/packages), a Unicode name.
    let small = common::bytes(MIB + 17, 2);
    let name2 = "Größe 1 (x86).dmg";
    let r = upload_to(
        &s,
        &admin,
        "/api/admin/packages",
        name2,
        small.clone(),
        "Dev",
    )
    .await;
    let up2 = expect_json(r, 201).await;
    assert_eq!(up2["filename"], name2);
    assert_eq!(up2["sha1"], common::sha1_hex(&small).as_str());
    let t1 = now_unix();

    // GET /api/admin/packages: the items wrapper, the seed's fields.
    let list = s.get_json("/api/admin/packages").await;
    assert_eq!(list.as_object().unwrap().len(), 1, "only items: {list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let p1 = items.iter().find(|p| p["filename"] == "NoMAD.pkg").unwrap();
    let p2 = items.iter().find(|p| p["filename"] == name2).unwrap();
    assert_seed_package(p1, "NoMAD.pkg", &nomad, "Prod", t0, t1);
    assert_seed_package(p2, name2, &small, "Dev", t0, t1);
    assert_eq!(p1["file_size_hr"], "3.3 MB");
    assert_ne!(p1["uuid"], p2["uuid"]);
    assert_ne!(p1["id"], p2["id"]);
    assert_eq!(p1["id"], up["id"]);
    assert_eq!(p1["uuid"], up["uuid"]);

    // GET /api/admin/packages/<id> and /<filename>: the same object plus chunks.
    let id = p1["id"].as_i64().unwrap();
    let by_id = s.get_json(&format!("/api/admin/packages/{id}")).await;
    let by_name = s.get_json("/api/admin/packages/NoMAD.pkg").await;
    assert_eq!(by_id, by_name);
    for (k, v) in p1.as_object().unwrap() {
        assert_eq!(&by_id[k], v, "{k} differs between list and detail");
    }
    assert_chunks(&by_id, &nomad);
    assert_eq!(by_id["chunks"].as_array().unwrap().len(), 4);
    let enc = "/api/admin/packages/Gr%C3%B6%C3%9Fe%201%20(x86).dmg";
    let d2 = s.get_json(enc).await;
    assert_eq!(d2["id"], p2["id"]);
    assert_chunks(&d2, &small);
    assert_eq!(d2["chunks"].as_array().unwrap().len(), 2);

    let r = req(&s, &admin, Method::GET, "/api/admin/packages/nothing.pkg")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;

    // PATCH changes the stage, by id or by name; a bad stage is 400 and changes nothing.
    let patch =
        |path: String, body: Value| req(&s, &admin, Method::PATCH, &path).json(&body).send();
    let v = expect_json(
        patch(
            format!("/api/admin/packages/{id}"),
            json!({"stage": "Test"}),
        )
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["stage"], "Test");
    assert_eq!(v["id"], id);
    assert_eq!(
        s.get_json(&format!("/api/admin/packages/{id}")).await["stage"],
        "Test"
    );
    let v = expect_json(
        patch(
            "/api/admin/packages/NoMAD.pkg".into(),
            json!({"stage": "Dev"}),
        )
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["stage"], "Dev");
    for body in [
        json!({"stage": "Staging"}),
        json!({"stage": ""}),
        json!({"stage": "Prod", "filename": "x"}),
        json!({}),
        json!({"stage": 3}),
    ] {
        let r = patch(format!("/api/admin/packages/{id}"), body.clone())
            .await
            .unwrap();
        let code = if body["stage"].is_string() && body.as_object().unwrap().len() == 1 {
            "invalid_stage"
        } else {
            "invalid_field"
        };
        expect_error(r, 400, code).await;
    }
    assert_eq!(
        s.get_json(&format!("/api/admin/packages/{id}")).await["stage"],
        "Dev"
    );
    let r = patch(
        "/api/admin/packages/none.pkg".into(),
        json!({"stage": "Test"}),
    )
    .await
    .unwrap();
    expect_error(r, 404, "not_found").await;
    // The list shows the new stage too.
    let list = s.get_json("/api/admin/packages").await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == id && p["stage"] == "Dev")
    );

    // DELETE by name: gone from the API and from downloads.
    let share = s.http.get(s.at("/share/NoMAD.pkg")).send().await.unwrap();
    assert_eq!(share.status(), 200);
    assert_eq!(share.bytes().await.unwrap().as_ref(), nomad.as_slice());
    let r = req(&s, &admin, Method::DELETE, "/api/admin/packages/NoMAD.pkg")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for path in [
        format!("/api/admin/packages/{id}"),
        "/api/admin/packages/NoMAD.pkg".to_string(),
    ] {
        let r = req(&s, &admin, Method::GET, &path).send().await.unwrap();
        expect_error(r, 404, "not_found").await;
    }
    let r = s.http.get(s.at("/share/NoMAD.pkg")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = req(&s, &admin, Method::DELETE, "/api/admin/packages/NoMAD.pkg")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;
    // DELETE by id.
    let id2 = p2["id"].as_i64().unwrap();
    let r = req(
        &s,
        &admin,
        Method::DELETE,
        &format!("/api/admin/packages/{id2}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        s.get_json("/api/admin/packages").await,
        json!({"items": []})
    );
    // Each delete queued the freeing of its content (the worker does it, later).
    let gc = s.get_json("/api/admin/jobs?kind=blob_gc").await;
    let freed: std::collections::BTreeSet<&str> = gc["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["payload"]["sha256"].as_str())
        .collect();
    let want: std::collections::BTreeSet<String> =
        [common::sha256_hex(&nomad), common::sha256_hex(&small)].into();
    assert_eq!(freed, want.iter().map(String::as_str).collect(), "{gc}");
}

#[tokio::test]
async fn jobs_list_the_sweep_and_digests_match_independent_hashes() {
    let s = Server::start().await;
    let admin = Cred::admin();

    // The housekeeping job is queued at start and visible.
    let jobs = s.get_json("/api/admin/jobs").await;
    let items = jobs["items"].as_array().unwrap();
    let sweep = items
        .iter()
        .find(|j| j["kind"] == "sweep")
        .unwrap_or_else(|| panic!("no sweep job: {jobs}"));
    for k in [
        "attempts",
        "created",
        "id",
        "kind",
        "max_attempts",
        "run_at",
        "state",
    ] {
        assert!(sweep.get(k).is_some(), "job lacks {k}: {sweep}");
    }
    assert!(
        ["queued", "running", "done"].contains(&sweep["state"].as_str().unwrap()),
        "{sweep}"
    );
    parse_iso(sweep["created"].as_str().unwrap());
    let sid = sweep["id"].as_i64().unwrap();
    let one = s.get_json(&format!("/api/admin/jobs/{sid}")).await;
    assert_eq!(one["id"], sid);
    assert_eq!(one["kind"], "sweep");
    let only = s.get_json("/api/admin/jobs?kind=sweep").await;
    let only = only["items"].as_array().unwrap();
    assert!(!only.is_empty() && only.iter().all(|j| j["kind"] == "sweep"));
    let queued = s.get_json("/api/admin/jobs?state=queued").await;
    assert!(
        queued["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "queued")
    );
    let r = req(&s, &admin, Method::GET, "/api/admin/jobs/99999999")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;

    // Digests: not computed at upload; queued on request; then equal to ours.
    let data = common::bytes(2 * MIB + 12_345, 7);
    let r = upload_to(
        &s,
        &admin,
        "/api/admin/upload",
        "Jamf.pkg",
        data.clone(),
        "Prod",
    )
    .await;
    let id = expect_json(r, 201).await["id"].as_i64().unwrap();
    let path = format!("/api/admin/packages/{id}");
    let before = s.get_json(&path).await;
    assert_eq!(before["sha512"], Value::Null, "{before}");
    assert_eq!(before["md5"], Value::Null, "{before}");
    let r = req(&s, &admin, Method::POST, &format!("{path}/digests"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 202).await, json!({"queued": true}));
    let want_sha512 = {
        use sha2::Digest;
        hex::encode(sha2::Sha512::digest(&data))
    };
    let want_md5 = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(&data))
    };
    s.eventually(30, "sha512 and md5 computed", || async {
        !s.get_json(&path).await["sha512"].is_null()
    })
    .await;
    let after = s.get_json(&path).await;
    assert_eq!(after["sha512"], want_sha512.as_str());
    assert_eq!(after["md5"], want_md5.as_str());
    assert_chunks(&after, &data);
    // Computed once: asking again queues nothing.
    let r = req(
        &s,
        &admin,
        Method::POST,
        "/api/admin/packages/Jamf.pkg/digests",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(expect_json(r, 200).await, json!({"queued": false}));
    let r = req(&s, &admin, Method::POST, "/api/admin/packages/none/digests")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;
    // The digests job is listed and finished.
    let jobs = s.get_json("/api/admin/jobs?kind=digests").await;
    let items = jobs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{jobs}");
    assert_eq!(items[0]["state"], "done", "{jobs}");
    assert_eq!(
        items[0]["payload"]["sha256"],
        common::sha256_hex(&data).as_str()
    );
}

#[tokio::test]
async fn errors_are_json_everywhere() {
    let s = Server::start().await;
    let admin = Cred::admin();
    let raw = |method: Method, path: &str, ct: Option<&str>, body: &'static str| {
        let mut rb = req(&s, &admin, method, path).body(body);
        if let Some(ct) = ct {
            rb = rb.header("Content-Type", ct);
        }
        rb.send()
    };

    // Malformed JSON bodies: 400 invalid_json, on every JSON endpoint.
    for (method, path) in [
        (Method::POST, "/api/admin/about"),
        (Method::POST, "/api/admin/about/update"),
        (Method::POST, "/api/admin/register"),
        (Method::POST, "/api/admin/users"),
        (Method::PATCH, "/api/admin/users/admin"),
        (Method::POST, "/api/admin/tokens"),
        (Method::PATCH, "/api/admin/packages/x.pkg"),
    ] {
        for body in ["{", "{,}", "not json", "", "{\"a"] {
            let r = raw(method.clone(), path, Some("application/json"), body)
                .await
                .unwrap();
            expect_error(r, 400, "invalid_json").await;
        }
        // Valid JSON of the wrong shape.
        let r = raw(method.clone(), path, Some("application/json"), "[1, 2]")
            .await
            .unwrap();
        expect_error(r, 400, "invalid_field").await;
        // Wrong or missing content type: 415.
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let r = raw(method.clone(), path, ct, "{\"name\": \"x\"}")
                .await
                .unwrap();
            expect_error(r, 415, "unsupported_media_type").await;
        }
    }
    // A field of the wrong type or an unknown field.
    let r = raw(
        Method::POST,
        "/api/admin/about",
        Some("application/json"),
        "{\"name\": 5}",
    )
    .await
    .unwrap();
    expect_error(r, 400, "invalid_field").await;
    let r = raw(
        Method::POST,
        "/api/admin/about",
        Some("application/json"),
        "{\"nmae\": \"x\"}",
    )
    .await
    .unwrap();
    expect_error(r, 400, "invalid_field").await;

    // Uploads that are not multipart, or lack a field.
    let r = raw(
        Method::POST,
        "/api/admin/upload",
        Some("application/json"),
        "{}",
    )
    .await
    .unwrap();
    expect_error(r, 400, "invalid_multipart").await;
    let form = reqwest::multipart::Form::new().text("stage", "Prod");
    let r = req(&s, &admin, Method::POST, "/api/admin/upload")
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "missing_file").await;
    let r = upload_to(
        &s,
        &admin,
        "/api/admin/upload",
        "a.pkg",
        vec![1; 10],
        "Nope",
    )
    .await;
    expect_error(r, 400, "invalid_stage").await;
    let part = reqwest::multipart::Part::bytes(vec![1u8; 10]).file_name("a.pkg");
    let form = reqwest::multipart::Form::new().part("file", part);
    let r = req(&s, &admin, Method::POST, "/api/admin/packages")
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "missing_stage").await;
    assert_eq!(
        s.get_json("/api/admin/packages").await,
        json!({"items": []})
    );

    // Unknown paths: 404 JSON, inside and outside the API.
    for path in [
        "/api/admin/nope",
        "/api/admin/packages/x/nope",
        "/api/nope",
        "/nope",
        "/api/admin/users/admin/extra",
    ] {
        let r = req(&s, &admin, Method::GET, path).send().await.unwrap();
        expect_error(r, 404, "not_found").await;
    }
    // Wrong methods: 405 JSON.
    for (method, path) in [
        (Method::PUT, "/api/admin/about"),
        (Method::DELETE, "/api/admin/about"),
        (Method::GET, "/api/admin/about/update"),
        (Method::POST, "/api/admin/system"),
        (Method::GET, "/api/admin/upload"),
        (Method::PUT, "/api/admin/packages/1"),
        (Method::GET, "/api/admin/register"),
        (Method::POST, "/api/admin/registered_ods"),
        (Method::DELETE, "/api/admin/jobs/1"),
        (Method::GET, "/api/admin/jobs/1/retry"),
        (Method::POST, "/api/openapi.json"),
    ] {
        let r = req(&s, &admin, method.clone(), path).send().await.unwrap();
        expect_error(r, 405, "method_not_allowed").await;
    }
    // Non-numeric ids: 400.
    for (method, path) in [
        (Method::GET, "/api/admin/jobs/abc"),
        (Method::GET, "/api/admin/jobs/1.5"),
        (Method::POST, "/api/admin/jobs/abc/retry"),
        (Method::DELETE, "/api/admin/tokens/abc"),
        (Method::DELETE, "/api/admin/registered_ods/abc"),
    ] {
        let r = req(&s, &admin, method.clone(), path).send().await.unwrap();
        expect_error(r, 400, "invalid_id").await;
    }
    let r = req(&s, &admin, Method::GET, "/api/admin/jobs?state=sleeping")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_state").await;
    // Unknown numeric ids: 404.
    for (method, path) in [
        (Method::DELETE, "/api/admin/tokens/424242"),
        (Method::DELETE, "/api/admin/registered_ods/424242"),
        (Method::POST, "/api/admin/jobs/424242/retry"),
        (Method::GET, "/api/admin/users/nobody"),
        (Method::DELETE, "/api/admin/packages/424242"),
    ] {
        let r = req(&s, &admin, method.clone(), path).send().await.unwrap();
        expect_error(r, 404, "not_found").await;
    }
}
