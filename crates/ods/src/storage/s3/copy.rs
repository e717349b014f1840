//! Server-side copy of a staged upload into place. Up to `max_copy_bytes` (5 GiB by
//! default, AWS's CopyObject limit) one CopyObject; above, a multipart upload of the
//! destination whose parts are ranged UploadPartCopy requests. object_store has no
//! ranged part copy, so each is a presigned PUT (its `x-amz-copy-source*` headers
//! signed) sent with reqwest; the bytes never pass through ODS either way.

use std::io;

use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{HeaderName, HeaderValue, SignedUrlOptions, Signer};

use super::{Inner, MAX_PART, MIN_PART, io_err};

const COPIES_IN_FLIGHT: usize = 4;

pub(super) async fn copy(i: &Inner, from: &Path, to: &Path, size: u64) -> io::Result<()> {
    if size <= i.opts.max_copy_bytes {
        return i
            .s3
            .copy(from, to)
            .await
            .map_err(|e| io_err("CopyObject", e));
    }
    // Parts within AWS's bounds, at most 10,000 of them.
    let part = i
        .opts
        .max_copy_bytes
        .clamp(MIN_PART, MAX_PART)
        .max(size.div_ceil(10_000));
    let id =
        i.s3.create_multipart(to)
            .await
            .map_err(|e| io_err("CreateMultipartUpload", e))?;
    let source = format!(
        "/{}/{}",
        i.opts.bucket,
        percent_encoding::utf8_percent_encode(from.as_ref(), KEY)
    );
    let ranges: Vec<(usize, u64, u64)> = (0..size.div_ceil(part))
        .map(|n| (n as usize, n * part, ((n + 1) * part).min(size) - 1))
        .collect();
    let parts: io::Result<Vec<PartId>> = futures_util::stream::iter(ranges)
        .map(|(n, first, last)| part_copy(i, to, &id, &source, n, first, last))
        .buffered(COPIES_IN_FLIGHT)
        .try_collect()
        .await;
    let done = match parts {
        Ok(parts) => {
            i.s3.complete_multipart(to, &id, parts)
                .await
                .map(|_| ())
                .map_err(|e| io_err("CompleteMultipartUpload", e))
        }
        Err(e) => Err(e),
    };
    if done.is_err() {
        let _ = i.s3.abort_multipart(to, &id).await;
    }
    done
}

/// Characters of a key escaped in `x-amz-copy-source` (`/` kept).
const KEY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

async fn part_copy(
    i: &Inner,
    to: &Path,
    id: &str,
    source: &str,
    n: usize,
    first: u64,
    last: u64,
) -> io::Result<PartId> {
    let bad = |e: String| io::Error::other(format!("S3 UploadPartCopy: {e}"));
    let range = format!("bytes={first}-{last}");
    let opts = SignedUrlOptions::new()
        .with_query([
            ("partNumber", (n + 1).to_string()),
            ("uploadId", id.to_string()),
        ])
        .with_signed_header(
            HeaderName::from_static("x-amz-copy-source"),
            HeaderValue::from_str(source).map_err(|e| bad(e.to_string()))?,
        )
        .with_signed_header(
            HeaderName::from_static("x-amz-copy-source-range"),
            HeaderValue::from_str(&range).map_err(|e| bad(e.to_string()))?,
        );
    let url =
        i.s3.signed_url_opts(
            reqwest::Method::PUT,
            to,
            std::time::Duration::from_secs(3600),
            &opts,
        )
        .await
        .map_err(|e| io_err("presign", e))?;
    let resp = i
        .http
        .put(url)
        .header("x-amz-copy-source", source)
        .header("x-amz-copy-source-range", &range)
        .header(reqwest::header::CONTENT_LENGTH, 0)
        .send()
        .await
        .map_err(|e| bad(e.without_url().to_string()))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| bad(e.without_url().to_string()))?;
    // S3 may answer 200 with an error document when a copy fails midway.
    if !status.is_success() || body.contains("<Error>") {
        return Err(bad(format!(
            "{status}: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    let etag = body
        .split_once("<ETag>")
        .and_then(|(_, rest)| rest.split_once("</ETag>"))
        .map(|(tag, _)| tag.replace("&quot;", "\"").replace("&#34;", "\""))
        .ok_or_else(|| bad(format!("no ETag in the answer: {body:.200}")))?;
    Ok(PartId { content_id: etag })
}
