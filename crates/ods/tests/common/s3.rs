//! Real S3-compatible servers for the storage tests, on free loopback ports: moto_server
//! (PyPI `moto[server]`, in memory) and s3s-fs (crates.io, files under a directory).
//! The bucket is inspected with boto3 (which moto brings), as any S3 tool would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    S3sFs,
}

pub const ACCESS_KEY: &str = "ods-test-access";
pub const SECRET_KEY: &str = "ods-test-secret-key-0123456789";

pub struct S3Server {
    pub kind: Kind,
    pub endpoint: String,
    pub bucket: String,
    child: Child,
    /// s3s-fs's root directory (its buckets are directories in it).
    pub root: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    pub fn start(kind: Kind) -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("s3.log")).unwrap();
        let bucket = format!("ods-{}", super::hex_id()).to_lowercase();
        let (child, root) = match kind {
            Kind::Moto => {
                let c = Command::new("moto_server")
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("starting moto_server (pip install 'moto[server]')");
                (c, None)
            }
            Kind::S3sFs => {
                let root = dir.path().join("root");
                std::fs::create_dir_all(root.join(&bucket)).unwrap();
                let c = Command::new("s3s-fs")
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(&root)
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect(
                        "starting s3s-fs (cargo install s3s-fs@0.14.1 --features binary --locked)",
                    );
                (c, Some(root))
            }
        };
        let s = S3Server {
            kind,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            child,
            root,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{kind:?} did not listen in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        if kind == Kind::Moto {
            s.boto(&format!("s3.create_bucket(Bucket={:?})", s.bucket));
        }
        s
    }

    /// The environment an `ods` process uses this bucket with, under `prefix`.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        [
            ("ODS_STORAGE", format!("s3://{}/{prefix}", self.bucket)),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Runs `code` with `s3` a boto3 client of this server; returns its stdout.
    pub fn boto(&self, code: &str) -> String {
        let script = format!(
            "import boto3, json\ns3 = boto3.client('s3', endpoint_url={:?}, region_name='us-east-1', \
             aws_access_key_id={ACCESS_KEY:?}, aws_secret_access_key={SECRET_KEY:?})\n{code}\n",
            self.endpoint
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys (and sizes) under `prefix` of the bucket.
    pub fn keys(&self, prefix: &str) -> Vec<(String, u64)> {
        let out = self.boto(&format!(
            "p = s3.get_paginator('list_objects_v2')\n\
             for page in p.paginate(Bucket={:?}, Prefix={prefix:?}):\n\
             \x20   for o in page.get('Contents', []): print(o['Key'], o['Size'])",
            self.bucket
        ));
        out.lines()
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(k, s)| (k.to_string(), s.parse().unwrap()))
            .collect()
    }

    /// Keys of the multipart uploads open under `prefix` (ListMultipartUploads, which
    /// moto answers and s3s-fs does not: use `open_uploads` there).
    pub fn open_upload_keys(&self, prefix: &str) -> Vec<String> {
        assert_eq!(
            self.kind,
            Kind::Moto,
            "s3s-fs cannot list multipart uploads"
        );
        self.boto(&format!(
            "r = s3.list_multipart_uploads(Bucket={:?}, Prefix={prefix:?})\n\
             for u in r.get('Uploads', []): print(u['Key'])",
            self.bucket
        ))
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// Multipart uploads still open in the bucket.
    pub fn open_uploads(&self) -> usize {
        match self.kind {
            Kind::Moto => self
                .boto(&format!(
                    "print(len(s3.list_multipart_uploads(Bucket={:?}).get('Uploads', [])))",
                    self.bucket
                ))
                .trim()
                .parse()
                .unwrap(),
            // s3s-fs keeps one `.upload-<id>.json` per open upload in its root.
            Kind::S3sFs => std::fs::read_dir(self.root.as_ref().unwrap())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(".upload-") && n.ends_with(".json")
                })
                .count(),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
