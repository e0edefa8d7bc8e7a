//! The REST API: routes, extractors that answer in the JSON error shape, and health.
//!
//! # Layout
//! - `mod.rs`: the router, the [`Caller`] / [`JsonBody`] / [`ApiQuery`] / [`ApiPath`]
//!   extractors, health and metrics endpoints.
//! - `children.rs`: children and devices.
//! - `commands.rs`: remote commands and acks.
//! - `misc.rs`: notifications, screen time, restricted attempts, publish.
//! - `pairing.rs`: device pairing.
//! - `push.rs`: a device's push token.
//! - `webhooks.rs`: webhook endpoints, parked events, retry (backend only).
//! - `admin.rs`: the admin overview (admin parents).
//! - `console.rs`: the console's static files at `/`.

mod admin;
mod children;
mod commands;
mod console;
mod misc;
mod pairing;
mod push;
mod webhooks;

pub(crate) use children::rotation_data;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::app::App;
use crate::auth::{bearer, Actor};
use crate::error::ApiError;

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::BadRequest(m) => ApiError::bad_request(m),
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Forbidden(m) => ApiError::forbidden(m),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Gone(m) => ApiError::gone(m),
            StoreError::Db(err) => {
                tracing::error!(error = %err, "storage error");
                ApiError::internal()
            }
        }
    }
}

/// Builds the router for every REST endpoint and the socket.
pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/api/children", get(children::list_children))
        .route(
            "/api/children/{child_id}",
            put(children::put_child).get(children::get_child),
        )
        .route(
            "/api/children/{child_id}/devices",
            post(children::create_device).get(children::list_devices),
        )
        .route("/api/devices/{device_id}", delete(children::revoke_device))
        .route(
            "/api/devices/{device_id}/rotate-token",
            post(children::rotate_token),
        )
        .route("/api/devices/me/commands", get(commands::my_commands))
        .route(
            "/api/devices/me/push-token",
            put(push::put_token)
                .get(push::get_token)
                .delete(push::delete_token),
        )
        .route(
            "/api/devices/me/restricted-attempts",
            post(misc::restricted_attempt),
        )
        .route(
            "/api/dashboard/remote-control",
            post(commands::create_command).get(commands::list_commands),
        )
        .route(
            "/api/dashboard/remote-control/{id}",
            patch(commands::ack_command).get(commands::get_command),
        )
        .route(
            "/api/dashboard/notifications",
            post(misc::create_notification).get(misc::list_notifications),
        )
        .route(
            "/api/dashboard/notifications/{id}/read",
            post(misc::mark_read),
        )
        .route("/api/dashboard/screen-time", post(misc::screen_time))
        .route("/api/publish", post(misc::publish))
        .route("/api/pairing", post(pairing::create))
        .route("/api/pairing/claim", post(pairing::claim))
        .route("/api/pairing/{id}", get(pairing::wait))
        .route("/api/pairing/{id}/approve", post(pairing::approve))
        .route("/api/pairing/{id}/reject", post(pairing::reject))
        .route("/api/webhooks/endpoints", get(webhooks::endpoints))
        .route("/api/webhooks/failed", get(webhooks::failed))
        .route("/api/webhooks/failed/{id}/retry", post(webhooks::retry))
        .route(
            "/api/socket",
            get(crate::ws::upgrade).post(crate::sio::post),
        )
        // socket.io-client asks for `<path>/` (its `addTrailingSlash`).
        .route(
            "/api/socket/",
            get(crate::ws::upgrade).post(crate::sio::post),
        )
        .route("/api/admin/overview", get(admin::overview))
        .route("/", get(console::index))
        .route("/console/app.js", get(console::script))
        .route("/console/app.css", get(console::style))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app.clone());
    // The layers wrap the whole router once, not each route: `Router::layer` wraps every
    // route's boxed service in another, and each level clones the ones inside it for every
    // request (four layers: 15 boxed clones, allocated and freed, per request). Behind one
    // fallback, a request clones two. Every response still passes every layer (404 and 405
    // included).
    let layered = tower::ServiceBuilder::new()
        .layer(cors(&app.cfg.allowed_origins))
        .layer(tower::util::MapResponseLayer::new({
            let counters = ResponseCounters::new();
            move |resp: Response| {
                counters.count(resp.status());
                resp
            }
        }))
        // A body that trickles in (slowloris) fails after the handshake timeout.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            app.cfg.handshake_timeout(),
        ))
        .layer(axum::extract::DefaultBodyLimit::max(app.cfg.max_body_bytes))
        .service(api);
    Router::new().fallback_service(layered)
}

fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

/// `safestream_http_requests_total{status}`, with the usual statuses' counters looked up
/// once: a registry lookup per response (the label formatted, hashed and compared) cost
/// ~1 % of a command's instructions, and `from_fn` a boxed future and a route clone more.
#[derive(Clone)]
struct ResponseCounters(Arc<[(u16, metrics::Counter)]>);

impl ResponseCounters {
    /// The statuses the relay answers with (101 for a socket); any other (an axum or
    /// tower-http rejection) is counted through the registry. Each is listed on `/metrics`
    /// from start-up, at 0 until it is sent.
    const USUAL: [u16; 18] = [
        101, 200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 410, 413, 415, 426, 429, 500, 503,
    ];

    fn new() -> Self {
        Self(
            Self::USUAL
                .iter()
                .map(|&s| (s, Self::lookup(s)))
                .collect::<Vec<_>>()
                .into(),
        )
    }

    fn lookup(status: u16) -> metrics::Counter {
        metrics::counter!("safestream_http_requests_total", "status" => status.to_string())
    }

    fn count(&self, status: StatusCode) {
        let status = status.as_u16();
        match self.0.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => counter.increment(1),
            None => Self::lookup(status).increment(1),
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    let mut e = ApiError::not_found("method not allowed on this endpoint");
    e.status = StatusCode::METHOD_NOT_ALLOWED;
    e.code = wire::error::METHOD_NOT_ALLOWED;
    e
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.is_shutting_down() {
        return ApiError::unavailable("shutting down").into_response();
    }
    if app.store.ping().await {
        Json(json!({"status": "ready"})).into_response()
    } else {
        ApiError::unavailable("database unavailable").into_response()
    }
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    if let Ok(counts) = app.store.command_counts().await {
        for status in ["PENDING", "DELIVERED", "EXECUTED", "FAILED", "EXPIRED"] {
            let n = counts
                .iter()
                .find(|(s, _)| s == status)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            metrics::gauge!("safestream_commands", "status" => status).set(n as f64);
        }
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics_setup::render(),
    )
        .into_response()
}

// ---- extractors ------------------------------------------------------------------------

/// The authenticated caller of a REST endpoint (401 if there is none, 429 if over its rate).
pub struct Caller(pub Actor);

impl Caller {
    /// The parent's user id, or 403.
    pub fn parent(&self) -> Result<&str, ApiError> {
        match &self.0 {
            Actor::Parent { user_id, .. } => Ok(user_id),
            _ => Err(ApiError::forbidden("only a parent may call this")),
        }
    }
    /// The device's `(device_id, child_id)`, or 403.
    pub fn device(&self) -> Result<(&str, &str), ApiError> {
        match &self.0 {
            Actor::Device {
                device_id,
                child_id,
                ..
            } => Ok((device_id, child_id)),
            _ => Err(ApiError::forbidden("only a device may call this")),
        }
    }
    /// Ok for the backend, else 403.
    pub fn backend(&self) -> Result<(), ApiError> {
        match &self.0 {
            Actor::Backend => Ok(()),
            _ => Err(ApiError::forbidden(
                "only the backend (server key) may call this",
            )),
        }
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <credential>"))?;
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = bearer(value)
            .ok_or_else(|| ApiError::unauthorized("Authorization must be 'Bearer <credential>'"))?;
        if app.keys.is_server_key(token) {
            return Ok(Caller(Actor::Backend));
        }
        let actor = app
            .keys
            .verify(token)
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        let key = match &actor {
            Actor::Device {
                device_id,
                child_id,
                gen,
            } => {
                device_is_active(app, device_id, child_id, *gen).await?;
                format!("device:{device_id}")
            }
            Actor::Parent { user_id, .. } => format!("user:{user_id}"),
            Actor::Backend => String::new(),
        };
        if app.limits.requests.check_key(&key).is_err() {
            return Err(ApiError::rate_limited("too many requests", 1));
        }
        Ok(Caller(actor))
    }
}

/// 401 unless the device exists, belongs to that child, is not revoked and the token's
/// generation is accepted (the first use of a pending generation makes it current).
pub async fn device_is_active(
    app: &App,
    device_id: &str,
    child_id: &str,
    gen: i64,
) -> Result<(), ApiError> {
    use crate::store::TokenVerdict;
    match app
        .store
        .check_device_token(device_id, child_id, gen, crate::model::now_ms())
        .await?
    {
        TokenVerdict::Accepted(_) => Ok(()),
        TokenVerdict::Revoked => Err(ApiError::unauthorized("device revoked")),
        TokenVerdict::Superseded => Err(ApiError::unauthorized("device token superseded")),
        TokenVerdict::Unknown => Err(ApiError::unauthorized("unknown device")),
    }
}

/// A JSON request body (`null` when empty). 413 over the limit, 415 for a non-JSON
/// `Content-Type`, 400 for invalid JSON.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let mime = ct
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if mime != "application/json" && !mime.ends_with("+json") {
                let mut e = ApiError::bad_request("Content-Type must be application/json");
                e.status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
                e.code = wire::error::UNSUPPORTED_MEDIA_TYPE;
                return Err(e);
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("the body is larger than the limit")
            } else {
                ApiError::bad_request("could not read the body")
            }
        })?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    }
}

/// Query parameters; 400 in the JSON error shape when they do not parse.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Path parameters; 400 in the JSON error shape when they do not parse.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Answers `value` with `status`.
pub fn reply(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

/// `{"command": ...}`, written straight from the command (building a `serde_json::Value`
/// first was ~17,000 instructions per answer, a twentieth of a command's handling).
#[derive(serde::Serialize)]
pub struct CommandBody<'a> {
    /// The command as the REST API shows it.
    pub command: &'a crate::model::Command,
}

/// Answers `{"command": cmd}` with `status`.
pub fn reply_command(status: StatusCode, cmd: &crate::model::Command) -> Response {
    (status, Json(CommandBody { command: cmd })).into_response()
}
