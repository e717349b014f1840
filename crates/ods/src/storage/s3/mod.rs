//! Blobs in an S3-compatible bucket (`ODS_STORAGE=s3://bucket/prefix`), through the
//! `object_store` crate. Why that crate and not the AWS SDK: it shares reqwest 0.13,
//! rustls and aws-lc-rs with the rest of ODS (the SDK brings its own HTTP and runtime
//! stack, several minutes more of a 2-core build), and it has everything needed here:
//! multipart uploads with the upload id in hand, ranged GETs, listing, copy and
//! presigned URLs. What it lacks, a ranged UploadPartCopy and ListMultipartUploads,
//! is one presigned request each (`copy.rs`, `sweep.rs`), so commits of any size stay
//! server-side copies on real AWS too.
//!
//! Layout under the prefix: `blobs/<sha256>` the content; `touch/<sha256>` written when
//! a commit finds (or stores) that content, so its age counts from the last use;
//! `gc/<sha256>` a collector's intent to delete; `staging/<name>` uploads in progress
//! (an open multipart upload, then the completed object until it is copied into
//! place) with `uploads/<name>` naming the multipart upload id (written empty before
//! the upload is created), `<name>` being `<node id>.<random>`, so a sweep can abort
//! what a node that died left (`sweep.rs`); `partial/<key>/<index>` the 1 MiB chunks
//! of a peer transfer (`partial.rs`). The GC protocol is described at
//! [`S3Store::settle`] and [`BlobStore::delete_if_idle`].

mod copy;
mod partial;
mod sweep;
mod writer;

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};

use super::{BlobStore, BlobWriter, ByteStream, PartialBlob, Removal, valid_sha256};

/// How the bucket is reached (`config::storage` fills it from the settings).
#[derive(Clone)]
pub struct S3Options {
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// `https://host:port` of an S3-compatible server; `None` for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Largest object copied with one CopyObject (AWS refuses more than 5 GiB); larger
    /// ones are copied part by part with UploadPartCopy, parts of this size.
    pub max_copy_bytes: u64,
    /// Downloads answer with a presigned URL valid this long, when set.
    pub redirect: Option<Duration>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("credentials", &"[hidden]")
            .field("max_copy_bytes", &self.max_copy_bytes)
            .field("redirect", &self.redirect)
            .finish()
    }
}

/// AWS's bounds on a multipart part, and the part size uploads use (at most 10,000
/// parts: 80 GB per upload, beyond the 30 GB packages ODS is made for).
pub(crate) const MIN_PART: u64 = 5 * 1024 * 1024;
pub(crate) const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
const UPLOAD_PART: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once (memory: this many plus one buffer).
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes per ranged GET of a download (two are open at once).
const READ_SEGMENT: u64 = 16 * 1024 * 1024;
/// A collector's intent marker older than this belongs to a collector that died; a
/// collector that took longer than half of it gives up instead of deleting.
const INTENT_TTL: Duration = Duration::from_secs(120);

pub struct S3Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    s3: AmazonS3,
    opts: S3Options,
    /// Sends the presigned UploadPartCopy and ListMultipartUploads requests.
    http: reqwest::Client,
    rt: tokio::runtime::Handle,
    /// This node's id, which names its uploads (`<node id>.<random>`).
    owner: String,
}

/// An object_store error as an io::Error (NotFound kept), naming the operation.
pub(crate) fn io_err(op: &str, e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            io::Error::new(io::ErrorKind::NotFound, format!("S3 {op}: not found"))
        }
        e => io::Error::other(format!("S3 {op}: {e}")),
    }
}

fn not_sha() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a sha256")
}

impl S3Store {
    /// Builds the client and checks, within 15 seconds, that the bucket answers.
    /// `owner` is this node's id (`node::new_id`): its uploads are named after it.
    pub async fn open(opts: S3Options, owner: String) -> anyhow::Result<S3Store> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&opts.bucket)
            .with_region(&opts.region)
            .with_virtual_hosted_style_request(!opts.path_style)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    // Downloads are long requests; a stalled one is cut by read_timeout.
                    .with_timeout_disabled()
                    .with_read_timeout(Duration::from_secs(120))
                    .with_allow_http(
                        opts.endpoint
                            .as_deref()
                            .is_some_and(|e| e.starts_with("http://")),
                    ),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
            });
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &opts.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &opts.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        if let Some(t) = &opts.session_token {
            b = b.with_token(t);
        }
        let s3 = b.build().map_err(|e| anyhow::anyhow!("S3 storage: {e}"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let store = S3Store {
            inner: Arc::new(Inner {
                s3,
                opts,
                http,
                rt: tokio::runtime::Handle::current(),
                owner,
            }),
        };
        store.check().await?;
        Ok(store)
    }

    /// Lists one key of the prefix: fails when the bucket is unreachable, missing, or
    /// the credentials are refused.
    pub async fn check(&self) -> anyhow::Result<()> {
        let i = &self.inner;
        let probe = async {
            let mut l = i.s3.list(Some(&i.key("blobs", "")));
            l.next().await.transpose()
        };
        match tokio::time::timeout(Duration::from_secs(15), probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => anyhow::bail!("S3 bucket {} cannot be used: {e}", i.describe()),
            Err(_) => anyhow::bail!("S3 bucket {} did not answer within 15 s", i.describe()),
        }
    }
}

impl Inner {
    pub(crate) fn key(&self, kind: &str, name: &str) -> Path {
        let p = &self.opts.prefix;
        if p.is_empty() {
            Path::from(format!("{kind}/{name}"))
        } else {
            Path::from(format!("{p}/{kind}/{name}"))
        }
    }

    fn blob(&self, sha256: &str) -> io::Result<Path> {
        if !valid_sha256(sha256) {
            return Err(not_sha());
        }
        Ok(self.key("blobs", sha256))
    }

    fn describe(&self) -> String {
        let at = self.opts.endpoint.as_deref().unwrap_or("AWS");
        format!(
            "s3://{}/{} ({at}, {})",
            self.opts.bucket, self.opts.prefix, self.opts.region
        )
    }

    /// Last-modified time of an object, or `None`.
    pub(crate) async fn modified(&self, p: &Path) -> io::Result<Option<(SystemTime, u64)>> {
        match self.s3.head(p).await {
            Ok(m) => Ok(Some((m.last_modified.into(), m.size))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_err("HEAD", e)),
        }
    }

    pub(crate) async fn put(&self, p: &Path, data: Bytes) -> io::Result<()> {
        self.s3
            .put(p, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|e| io_err("PUT", e))
    }

    pub(crate) async fn delete(&self, p: &Path) -> io::Result<()> {
        match self.s3.delete(p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_err("DELETE", e)),
        }
    }

    /// The last use of `sha256`: the later of its blob's and its touch marker's times,
    /// with the blob's size; `None` when the blob is not stored.
    async fn last_use(&self, sha256: &str) -> io::Result<Option<(SystemTime, u64)>> {
        let Some((blob, size)) = self.modified(&self.blob(sha256)?).await? else {
            return Ok(None);
        };
        let touch = self.modified(&self.key("touch", sha256)).await?;
        Ok(Some((touch.map_or(blob, |(t, _)| t.max(blob)), size)))
    }

    /// Waits while a collector is deleting `sha256` (its intent marker is younger
    /// than `INTENT_TTL`), so what the caller sees next is after that delete.
    async fn wait_for_collector(&self, sha256: &str) -> io::Result<()> {
        let intent = self.key("gc", sha256);
        let start = Instant::now();
        while let Some((t, _)) = self.modified(&intent).await? {
            let age = SystemTime::now().duration_since(t).unwrap_or_default();
            if age > INTENT_TTL || start.elapsed() > INTENT_TTL {
                break; // a collector that died; it never deletes this late
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Makes `sha256` durable and visible, storing `own` unless the same content is
    /// stored already. Against a collector on any node (`delete_if_idle`): the touch
    /// marker is written first, then a collector's intent is waited out, then the blob
    /// is looked at. A collector that read the touch time before this wrote it had
    /// written its intent earlier still, so this waits until its delete is done and
    /// then finds the blob gone and stores its own copy; a collector that reads the
    /// touch time later sees it recent and keeps the blob.
    pub(crate) async fn settle(&self, sha256: &str, size: u64, own: Own<'_>) -> io::Result<()> {
        let blob = self.blob(sha256)?;
        let touch = self.key("touch", sha256);
        self.put(&touch, Bytes::new()).await?;
        self.wait_for_collector(sha256).await?;
        if let Some((_, stored)) = self.modified(&blob).await?
            && stored == size
        {
            return Ok(()); // deduplicated onto the stored copy
        }
        match own {
            Own::Bytes(b) => self.put(&blob, b).await?,
            Own::Staged(from) => copy::copy(self, from, &blob, size).await?,
            Own::Chunks(p) => p.assemble(self, &blob, size).await?,
        }
        // A multipart object's time is its upload's start: count the age from now.
        self.put(&touch, Bytes::new()).await
    }
}

/// Where a commit's own copy of the content comes from.
pub(crate) enum Own<'a> {
    Bytes(Bytes),
    Staged(&'a Path),
    Chunks(&'a partial::S3Partial),
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    async fn begin(&self) -> io::Result<Box<dyn BlobWriter>> {
        // Named like a local staging file: `<node id>.<random>` (see `sweep.rs`).
        let name = format!("{}.{}", self.inner.owner, crate::secrets::random_id());
        Ok(Box::new(writer::S3Writer::new(self.inner.clone(), name)))
    }

    async fn size(&self, sha256: &str) -> io::Result<Option<u64>> {
        let i = &self.inner;
        Ok(i.modified(&i.blob(sha256)?).await?.map(|(_, s)| s))
    }

    async fn read(&self, sha256: &str, offset: u64, len: u64) -> io::Result<ByteStream> {
        let i = self.inner.clone();
        let path = i.blob(sha256)?;
        if len == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let segments = (0..len.div_ceil(READ_SEGMENT)).map(move |n| {
            let start = offset + n * READ_SEGMENT;
            start..(start + READ_SEGMENT).min(offset + len)
        });
        let first = segments.clone().next();
        let open = move |r: std::ops::Range<u64>| {
            let i = i.clone();
            let path = path.clone();
            async move {
                let want = r.end - r.start;
                let opts = GetOptions {
                    range: Some(GetRange::Bounded(r)),
                    ..Default::default()
                };
                let got =
                    i.s3.get_opts(&path, opts)
                        .await
                        .map_err(|e| io_err("GET", e))?;
                if got.range.end - got.range.start != want {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the blob is shorter than its recorded size",
                    ));
                }
                Ok(got.into_stream().map_err(|e| io_err("GET body", e)))
            }
        };
        // The first request is made here, so a missing blob fails the call itself.
        let head = open(first.expect("len > 0")).await?;
        let rest = futures_util::stream::iter(segments.skip(1))
            .map(open)
            .buffered(1)
            .try_flatten();
        Ok(Box::pin(head.chain(rest)))
    }

    async fn delete(&self, sha256: &str) -> io::Result<()> {
        let i = &self.inner;
        i.delete(&i.blob(sha256)?).await
    }

    async fn age(&self, sha256: &str) -> io::Result<Option<Duration>> {
        Ok(self
            .inner
            .last_use(sha256)
            .await?
            .map(|(t, _)| SystemTime::now().duration_since(t).unwrap_or_default()))
    }

    /// The intent marker is written first and its own time is "now" (the bucket's
    /// clock, so node clocks do not matter); then the last use is read. See
    /// [`Inner::settle`] for the other half.
    async fn delete_if_idle(&self, sha256: &str, idle: Duration) -> io::Result<Removal> {
        let i = &self.inner;
        let blob = i.blob(sha256)?;
        let intent = i.key("gc", sha256);
        let started = Instant::now();
        i.put(&intent, Bytes::new()).await?;
        let outcome = async {
            let Some((now, _)) = i.modified(&intent).await? else {
                return Ok(Removal::Recent(Duration::ZERO)); // another collector's, gone
            };
            let Some((used, _)) = i.last_use(sha256).await? else {
                return Ok(Removal::Missing);
            };
            let age = now.duration_since(used).unwrap_or_default();
            if age < idle {
                return Ok(Removal::Recent(age));
            }
            if started.elapsed() > INTENT_TTL / 2 {
                // Too slow: a commit may have stopped waiting for this intent.
                return Ok(Removal::Recent(Duration::ZERO));
            }
            i.delete(&blob).await?;
            i.delete(&i.key("touch", sha256)).await?;
            Ok(Removal::Deleted)
        }
        .await;
        i.delete(&intent).await?;
        outcome
    }

    async fn list(&self) -> io::Result<Vec<(String, u64)>> {
        let i = &self.inner;
        let now = SystemTime::now();
        let names = |kind: &'static str| {
            i.s3.list(Some(&i.key(kind, ""))).map_ok(move |m| {
                let name = m.location.filename().unwrap_or_default().to_string();
                let t: SystemTime = m.last_modified.into();
                (name, now.duration_since(t).unwrap_or_default().as_secs())
            })
        };
        let touched: std::collections::HashMap<String, u64> = names("touch")
            .try_collect()
            .await
            .map_err(|e| io_err("LIST", e))?;
        let blobs: Vec<(String, u64)> = names("blobs")
            .try_collect()
            .await
            .map_err(|e| io_err("LIST", e))?;
        Ok(blobs
            .into_iter()
            .filter(|(n, _)| valid_sha256(n))
            .map(|(n, age)| {
                let age = touched.get(&n).map_or(age, |t| age.min(*t));
                (n, age)
            })
            .collect())
    }

    /// Aborts the multipart uploads of nodes that are not in `live_owners` (and of any
    /// node after a day), removes their staging objects and markers, and the
    /// collectors' intents left by a crash (`sweep.rs`).
    async fn sweep_staging(&self, live_owners: &HashSet<String>) -> io::Result<usize> {
        sweep::sweep(&self.inner, live_owners).await
    }

    async fn partial(&self, key: &str, size: u64) -> io::Result<Arc<dyn PartialBlob>> {
        Ok(Arc::new(partial::S3Partial::new(
            self.inner.clone(),
            key,
            size,
        )?))
    }

    async fn discard_partial(&self, key: &str) -> io::Result<()> {
        partial::S3Partial::new(self.inner.clone(), key, 0)?
            .remove()
            .await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn download_url(&self, sha256: &str) -> io::Result<Option<String>> {
        let i = &self.inner;
        let Some(ttl) = i.opts.redirect else {
            return Ok(None);
        };
        let url =
            i.s3.signed_url(reqwest::Method::GET, &i.blob(sha256)?, ttl)
                .await
                .map_err(|e| io_err("presign", e))?;
        Ok(Some(url.to_string()))
    }
}
