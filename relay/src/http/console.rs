//! The console (`console/`, the parent SDK's reference app) served at `/`: three files built
//! by `node console/build.mjs` into `relay/console/` and compiled into the binary, so the
//! relay needs no other process, no CDN and no files beside it. `scripts/console-checks.sh`
//! fails when the committed build is stale.
//!
//! The page holds no secret: it asks for a parent token (dev mode prints a URL carrying one
//! in its fragment, which browsers never send to a server). A strict Content-Security-Policy
//! allows only this origin's script, style and connections, so text from devices can never
//! run as code even if a rendering bug let it into the DOM as HTML.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

const INDEX: &[u8] = include_bytes!("../../console/index.html");
const SCRIPT: &[u8] = include_bytes!("../../console/app.js");
const STYLE: &[u8] = include_bytes!("../../console/app.css");

/// Scripts, styles, images and connections from this origin only; no frames, no plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn file(body: &'static [u8], content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Not content-hashed names: ask every time (a 200 of a few hundred KiB from memory).
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// `GET /`: the console's page.
pub async fn index() -> Response {
    file(INDEX, "text/html; charset=utf-8")
}

/// `GET /console/app.js`.
pub async fn script() -> Response {
    file(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /console/app.css`.
pub async fn style() -> Response {
    file(STYLE, "text/css; charset=utf-8")
}
