//! Lingering close for uploads. A request refused before its body is read (bad
//! credentials, a bad field, an existing filename) is answered at once; if the server
//! then closed the connection with the client still sending, the client would see a
//! broken pipe instead of the answer. So a body dropped unread is drained in the
//! background, up to a bound, the way web servers linger before closing.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};

/// At most this much is read after the answer...
const DRAIN_BYTES: u64 = 256 * 1024 * 1024;
/// ...for at most this long; past either, the connection is closed.
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Middleware: wraps the request body so that dropping it unread drains it.
pub async fn linger(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let body = Body::new(DrainOnDrop {
        inner: Some(body),
        finished: false,
    });
    next.run(Request::from_parts(parts, body)).await
}

struct DrainOnDrop {
    inner: Option<Body>,
    finished: bool,
}

impl http_body::Body for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_default()
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.finished || http_body::Body::is_end_stream(&body) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let mut stream = body.into_data_stream();
            let mut read = 0u64;
            let drained = tokio::time::timeout(DRAIN_TIME, async {
                while let Some(Ok(chunk)) = stream.next().await {
                    read += chunk.len() as u64;
                    if read > DRAIN_BYTES {
                        break;
                    }
                }
            })
            .await;
            tracing::debug!(
                read,
                timed_out = drained.is_err(),
                "drained an unread request body"
            );
        });
    }
}
