//! `GET /metrics` in the Prometheus text format, and the middleware that counts every
//! request: by the matched route template (never the raw path), method and status
//! code, with its latency and the body bytes received and sent. `/metrics` is off
//! (404) unless `metrics_token` or `metrics_networks` is set; when both are, a scrape
//! needs both. While it is off the middleware is not installed at all, so it costs a
//! download nothing. It is for scrapers, not the API: it stays out of the OpenAPI document.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body::Frame;
use metrics::{Counter, counter, histogram};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::error::ApiError;
use crate::http::client;
use crate::stats;

/// Whether `/metrics` is on (`metrics_token` or `metrics_networks` set). When it is
/// off nothing is counted: the router leaves `track` out.
pub fn enabled(cfg: &crate::config::Config) -> bool {
    cfg.metrics_token.is_some() || !cfg.metrics_networks.is_empty()
}

pub fn routes() -> Router<App> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(app): State<App>, parts: Parts) -> Response {
    let cfg = &app.config;
    // The router installed the recorder if `/metrics` is enabled.
    let handle = if enabled(cfg) { stats::install() } else { None };
    let Some(handle) = handle else {
        return ApiError::not_found("no such endpoint; see /api/openapi.json").into_response();
    };
    if !cfg.metrics_networks.is_empty() {
        let allowed = client::addr_of(&parts)
            .is_some_and(|a| cfg.metrics_networks.iter().any(|n| n.contains(&a)));
        if !allowed {
            return ApiError::forbidden("this address may not read /metrics (metrics_networks)")
                .into_response();
        }
    }
    if let Some(token) = &cfg.metrics_token {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let ok: bool = Sha256::digest(given.as_bytes())
            .ct_eq(&Sha256::digest(token.0.as_bytes()))
            .into();
        if given.is_empty() || !ok {
            let mut resp =
                ApiError::unauthorized("/metrics needs Authorization: Bearer <metrics_token>")
                    .into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
    }
    match stats::render(&app, handle).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal("reading the metrics", e).into_response(),
    }
}

/// Counts one request (a middleware on every route and the fallback).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(req.method());
    let start = Instant::now();
    let received = counter!(stats::RECEIVED, "route" => route.clone());
    let req = req.map(|b| {
        Body::new(Counted {
            inner: b,
            counter: received,
        })
    });
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    histogram!(stats::DURATION, "route" => route.clone(), "method" => method)
        .record(start.elapsed().as_secs_f64());
    counter!(stats::REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    let sent = counter!(stats::SENT, "route" => route);
    resp.map(|b| {
        Body::new(Counted {
            inner: b,
            counter: sent,
        })
    })
}

/// The method as a label: the standard ones, anything else as `OTHER`.
fn method_label(m: &Method) -> &'static str {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .iter()
    .find(|k| *k == m)
    .map(|k| match *k {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OPTIONS",
    })
    .unwrap_or("OTHER")
}

/// A body that adds the length of each data frame passing through to a counter.
struct Counted {
    inner: Body,
    counter: Counter,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counter.increment(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
