//! Runs Debian's nginx on loopback for a test: a site config from `deploy/nginx/`
//! (already adapted by the test) included in a minimal main config whose every path
//! lies in the test's directory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Writes `site` as `dir/site_name`, a main config including it, starts nginx on it
/// and waits until `port` accepts connections (panicking with nginx's error log if it
/// does not within 10 s).
pub async fn start(dir: &Path, site_name: &str, site: &str, port: u16) -> Child {
    std::fs::write(dir.join(site_name), site).unwrap();
    let p = |n: &str| dir.join(n).display().to_string();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off;\nworker_processes 1;\npid {pid};\nerror_log {err} info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {acc};\n  client_body_temp_path {b};\n  proxy_temp_path {pr};\n\
               fastcgi_temp_path {f};\n  uwsgi_temp_path {u};\n  scgi_temp_path {s};\n  include {conf};\n}}\n",
            pid = p("nginx.pid"),
            err = p("error.log"),
            acc = p("access.log"),
            b = p("body"),
            pr = p("proxy"),
            f = p("fastcgi"),
            u = p("uwsgi"),
            s = p("scgi"),
            conf = p(site_name),
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "nginx did not start:\n{}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}
