//! Error codes: the `code` of a REST error body `{"error": {"code", "message"}}` and of an
//! `error` frame (`docs/protocol.md`, "Errors").

use serde::{Deserialize, Serialize};

/// The REST error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for a machine (`code`) and a person (`message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ErrorDetail {
    /// One of the codes below.
    pub code: String,
    /// Human-readable; never holds secrets.
    pub message: String,
}

/// 400: body not JSON, a field missing, of the wrong type or out of range.
pub const BAD_REQUEST: &str = "bad_request";
/// 401: no credential, or an invalid, expired or revoked one.
pub const UNAUTHORIZED: &str = "unauthorized";
/// 403: a valid credential that may not do this.
pub const FORBIDDEN: &str = "forbidden";
/// 404: no such thing.
pub const NOT_FOUND: &str = "not_found";
/// 405.
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
/// 409: contradicts the current state.
pub const CONFLICT: &str = "conflict";
/// 410: a pairing expired.
pub const EXPIRED: &str = "expired";
/// 413: body over the limit.
pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
/// 415: a body that is not JSON by its `Content-Type`.
pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
/// 429: a rate limit; `Retry-After` says when to try again.
pub const RATE_LIMITED: &str = "rate_limited";
/// 500: a bug or a storage failure; nothing was half-done.
pub const INTERNAL: &str = "internal";
/// 503: shutting down or storage unavailable.
pub const UNAVAILABLE: &str = "unavailable";

/// Codes of `error` frames on a socket.
pub mod frame {
    /// Not JSON, an unknown event, or data of the wrong shape.
    pub const BAD_FRAME: &str = "bad_frame";
    /// Not allowed for this role.
    pub const FORBIDDEN: &str = super::FORBIDDEN;
    /// A refresh with a bad token.
    pub const UNAUTHORIZED: &str = super::UNAUTHORIZED;
    /// Frames over the per-socket rate.
    pub const RATE_LIMITED: &str = super::RATE_LIMITED;
}
