//! The JSON error every REST call answers with: `{"error": {"code", "message"}}`.
//!
//! The codes are the wire crate's (`wire::error`). This module depends on nothing else in
//! the relay: the store's errors are turned into `ApiError` where both meet (`http`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answered to an HTTP client. The message is meant for the client: it never
/// holds secrets or internal detail (storage errors are logged and answered as `internal`).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`bad_request`, `forbidden`, ...).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds to put in `Retry-After` (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 400 — the input is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, wire::error::BAD_REQUEST, message)
    }
    /// 401 — no credential, or an invalid one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, wire::error::UNAUTHORIZED, message)
    }
    /// 403 — a valid credential that may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, wire::error::FORBIDDEN, message)
    }
    /// 404 — no such thing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, wire::error::NOT_FOUND, message)
    }
    /// 409 — conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, wire::error::CONFLICT, message)
    }
    /// 410 — it existed but is gone (an expired pairing).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, wire::error::EXPIRED, message)
    }
    /// 413 — the body is over the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            wire::error::PAYLOAD_TOO_LARGE,
            message,
        )
    }
    /// 429 — a rate limit was hit.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            wire::error::RATE_LIMITED,
            message,
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }
    /// 500 — a bug or a storage failure; the cause is logged, not answered.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::error::INTERNAL,
            "internal error; nothing was changed",
        )
    }
    /// 503 — shutting down or storage unavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            wire::error::UNAVAILABLE,
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("safestream_rejects_total", "reason" => self.code).increment(1);
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<wire::Invalid> for ApiError {
    fn from(e: wire::Invalid) -> Self {
        ApiError::bad_request(e.0)
    }
}
