//! Upgrade and authentication: the `GET /api/socket` handshake, the credential (header or
//! first `auth` frame), the choice of session by who connected, and `auth:refresh`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wire::event;
use wire::frame::AuthRefreshed;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CONNECTION, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::device::device_session;
use super::dispatch::{Handled, Session, Who};
use super::frames::{close, error_frame, frame, ClientFrame};
use super::parent::parent_session;
use super::{Socket, WsStream};
use crate::app::App;
use crate::auth::{bearer, Actor, AuthError};
use crate::error::ApiError;
use crate::http::ApiQuery;
use crate::hub::{CLOSE_FORBIDDEN, CLOSE_PROTOCOL, CLOSE_TIMEOUT, CLOSE_UNAUTHORIZED};
use crate::model::rfc3339;

fn header_has_token(headers: &HeaderMap, name: axum::http::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// A WebSocket handshake that passed every check: the `101` response to return, and what
/// turns the connection into a [`WsStream`] once hyper hands it over.
pub(crate) struct Accepted {
    /// The `101 Switching Protocols` response.
    pub response: Response,
    on_upgrade: hyper::upgrade::OnUpgrade,
    permit: tokio::sync::OwnedSemaphorePermit,
    config: WebSocketConfig,
}

impl Accepted {
    /// The socket and its permit, once the `101` went out (`None` when the client left
    /// first). Take [`Accepted::response`] out first (`std::mem::take`) to return it.
    pub async fn socket(self) -> Option<(WsStream, tokio::sync::OwnedSemaphorePermit)> {
        let upgraded = self.on_upgrade.await.ok()?;
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            WsRole::Server,
            Some(self.config),
        )
        .await;
        Some((ws, self.permit))
    }
}

/// The checks every WebSocket on `/api/socket` passes (native or Socket.IO): a well-formed
/// upgrade, not shutting down, an allowed origin, a free connection permit.
// The error is the response itself, returned once per handshake: boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn accept(app: &App, req: &mut Request) -> Result<Accepted, Response> {
    let headers = req.headers();
    if !header_has_token(headers, CONNECTION, "upgrade")
        || !header_has_token(headers, UPGRADE, "websocket")
    {
        let mut err = ApiError::bad_request("a WebSocket upgrade is required here");
        err.status = StatusCode::UPGRADE_REQUIRED;
        err.code = "upgrade_required";
        return Err(err.into_response());
    }
    if headers.get(SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        let mut resp = ApiError::bad_request("Sec-WebSocket-Version must be 13").into_response();
        resp.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return Err(resp);
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return Err(ApiError::bad_request("Sec-WebSocket-Key is missing").into_response());
    };
    let accept = derive_accept_key(key.as_bytes());
    if app.is_shutting_down() {
        return Err(ApiError::unavailable("shutting down").into_response());
    }
    if !origin_allowed(app, headers) {
        return Err(ApiError::forbidden("origin not allowed").into_response());
    }
    if app.hub.len() >= app.cfg.max_connections {
        return Err(ApiError::unavailable("too many connections on this relay").into_response());
    }
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(ApiError::bad_request("this connection cannot be upgraded").into_response());
    };
    let max = app.cfg.max_frame_bytes;
    // Frames are fed and written by the flush that ends each batch (`Session::drain`), so
    // the frames one commit sends a parent (DELIVERED and EXECUTED, usually) leave in one
    // `sendto`, not one each: ~4 -> ~3.1 sends per command at 1,000/s (BENCHMARKS.md). The
    // buffer is a `Vec` that grows with what is fed, so an idle socket holds none of it.
    let config = WebSocketConfig::default()
        .read_buffer_size(256)
        .write_buffer_size(64 << 10)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    // The socket holds a connection permit for as long as it lives (its HTTP connection's
    // own permit ends with the upgrade), so sockets still authenticating count against
    // `max_connections` too, and the open-file budget holds.
    let Ok(permit) = app.http_conns.clone().try_acquire_owned() else {
        metrics::counter!("safestream_rejects_total", "reason" => "max_connections").increment(1);
        return Err(ApiError::unavailable("too many connections on this relay").into_response());
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(Accepted {
        response: resp,
        on_upgrade,
        permit,
        config,
    })
}

/// Whether the request's `Origin` (if any) is on `--allowed-origins` (when that is set).
pub(crate) fn origin_allowed(app: &App, headers: &HeaderMap) -> bool {
    if app.cfg.allowed_origins.is_empty() {
        return true;
    }
    match headers.get(ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .map(|o| app.cfg.allowed_origins.iter().any(|a| a == o))
            .unwrap_or(false),
    }
}

/// `GET /api/socket`: a native WebSocket (a Socket.IO request, `EIO=4`, goes to
/// `crate::sio`).
pub async fn upgrade(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
    mut req: Request,
) -> Response {
    if q.contains_key("EIO") {
        return crate::sio::get(app, q, req).await;
    }
    let accepted = match accept(&app, &mut req) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let header_token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(str::to_owned);
    let last_seq = match q.get("lastSeq") {
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return ApiError::bad_request("lastSeq must be a non-negative integer")
                    .into_response()
            }
        },
        None => None,
    };
    let Accepted {
        response,
        on_upgrade,
        permit,
        config,
    } = accepted;
    // One task per socket, holding this future directly (no wrapper, no extra box).
    tokio::spawn(async move {
        let _permit = permit;
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, Some(config))
                .await;
        run(app, Socket::Native(Box::new(ws)), header_token, last_seq).await
    });
    response
}

fn auth_close_reason(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => "missing token",
        AuthError::Expired => "token expired",
        AuthError::NotYetValid => "token not yet valid",
        AuthError::Revoked => "device revoked",
        AuthError::Invalid => "invalid token",
    }
}

/// Waits for the first `auth` frame.
async fn read_auth(
    ws: &mut Socket,
    timeout: Duration,
) -> Result<(String, Option<i64>), (u16, &'static str)> {
    let first = tokio::time::timeout(timeout, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => {
                    return Err((CLOSE_PROTOCOL, "binary frames are not accepted"))
                }
                Some(Ok(Message::Close(_))) | None => return Err((0, "")),
                Some(Err(_)) => return Err((1009, "frame too large or malformed")),
            }
        }
    })
    .await
    .map_err(|_| (CLOSE_TIMEOUT, "no auth frame in time"))??;
    let f: ClientFrame = serde_json::from_str(&first)
        .map_err(|_| (CLOSE_UNAUTHORIZED, "first frame must be auth"))?;
    if f.event != event::AUTH {
        return Err((CLOSE_UNAUTHORIZED, "first frame must be auth"));
    }
    let token = f
        .data
        .get("token")
        .and_then(Value::as_str)
        .ok_or((CLOSE_UNAUTHORIZED, "missing token"))?;
    let last_seq = match f.data.get("lastSeq") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|n| *n >= 0)
                .ok_or((CLOSE_PROTOCOL, "lastSeq must be a non-negative integer"))?,
        ),
    };
    Ok((token.to_string(), last_seq))
}

/// One socket's life. Each phase is a separately boxed future so that the long-lived part
/// (the session loop) does not carry the layout of the short-lived ones: this keeps the
/// memory of an idle socket small.
pub(crate) async fn run(
    app: Arc<App>,
    mut ws: Socket,
    header_token: Option<String>,
    query_last_seq: Option<i64>,
) {
    let Some((actor, last_seq)) =
        Box::pin(authenticate(&app, &mut ws, header_token, query_last_seq)).await
    else {
        return;
    };
    match actor {
        Actor::Parent {
            user_id,
            is_admin,
            exp,
        } => Box::pin(parent_session(app, ws, user_id, is_admin, exp, last_seq)).await,
        Actor::Device {
            device_id,
            child_id,
            gen,
        } => Box::pin(device_session(app, ws, device_id, child_id, gen)).await,
        Actor::Backend => close(&mut ws, CLOSE_UNAUTHORIZED, "invalid token").await,
    }
}

/// Reads the credential (header or first frame) and verifies it; closes the socket and
/// returns `None` when it is refused.
async fn authenticate(
    app: &App,
    ws: &mut Socket,
    header_token: Option<String>,
    query_last_seq: Option<i64>,
) -> Option<(Actor, Option<i64>)> {
    let auth = match header_token {
        Some(t) => Ok((t, query_last_seq)),
        None => read_auth(ws, app.cfg.handshake_timeout()).await,
    };
    let (token, last_seq) = match auth {
        Ok(x) => x,
        Err((0, _)) => return None,
        Err((code, reason)) => {
            close(ws, code, reason).await;
            return None;
        }
    };
    match app.keys.verify(&token) {
        Ok(a) => Some((a, last_seq)),
        Err(e) => {
            close(ws, CLOSE_UNAUTHORIZED, auth_close_reason(&e)).await;
            None
        }
    }
}

impl Session<'_> {
    /// `auth:refresh`: a new token for the same identity (a parent's moves its expiry).
    pub(super) fn refresh(&mut self, data: &Value) -> Handled {
        let Some(token) = data.get("token").and_then(Value::as_str) else {
            return Handled::Bad(error_frame(
                wire::error::frame::BAD_FRAME,
                "auth:refresh needs data.token",
            ));
        };
        let actor = match self.app.keys.verify(token) {
            Ok(a) => a,
            Err(e) => {
                return Handled::Reply(error_frame(
                    wire::error::frame::UNAUTHORIZED,
                    auth_close_reason(&e),
                ))
            }
        };
        match (&mut self.who, actor) {
            (
                Who::Parent { user_id, exp },
                Actor::Parent {
                    user_id: new_user,
                    exp: new_exp,
                    ..
                },
            ) if *user_id == new_user => {
                *exp = new_exp;
                self.conn.set_token_exp(new_exp);
                Handled::Reply(frame(
                    event::AUTH_REFRESHED,
                    AuthRefreshed {
                        expires_at: Some(rfc3339(new_exp.saturating_mul(1000))),
                    },
                ))
            }
            // The generation is checked (and a pending one promoted) by `device_refresh`.
            (
                Who::Device { device_id, .. },
                Actor::Device {
                    device_id: new_dev,
                    gen,
                    ..
                },
            ) if *device_id == new_dev => Handled::DeviceRefresh(gen),
            _ => Handled::Close(CLOSE_FORBIDDEN, "auth:refresh for another identity"),
        }
    }
}
