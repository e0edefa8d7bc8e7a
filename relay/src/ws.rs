//! `/api/socket`: first-frame auth, parent resume, device delivery, client frames.
//!
//! One task per socket. It waits on two things only: the socket (client frames, pongs) and
//! its [`Conn`]'s mailbox (frames to send, a ping due, a close request). See `hub.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CONNECTION, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role as WsRole, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::app::{per_second, App};
use crate::auth::{bearer, Actor, AuthError};
use crate::bus::room;
use crate::error::ApiError;
use crate::http::ApiQuery;
use crate::hub::{
    Batch, Conn, Presence, Role, CLOSE_FORBIDDEN, CLOSE_PROTOCOL, CLOSE_RATE_LIMITED,
    CLOSE_TIMEOUT, CLOSE_UNAUTHORIZED,
};
use crate::model::{now_ms, rfc3339};

/// A server-side socket: tokio-tungstenite straight over hyper's upgraded connection (no
/// wrapper task, no extra buffers: see `upgrade`).
type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

fn header_has_token(headers: &HeaderMap, name: axum::http::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// How long one write (or flush) to a socket may take before the reader is called slow.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Dropped (over-rate) frames after which the socket is closed with 4429.
const MAX_DROPPED: u32 = 50;
/// Largest replay; further behind, the client gets `resync`.
const MAX_REPLAY: i64 = 1000;
/// Events read from the database at a time during a replay.
const REPLAY_PAGE: i64 = 200;
/// Pending commands read from the database at a time when a device connects.
const PENDING_PAGE: i64 = 200;
/// Length of the window in which dropped and malformed frames are counted.
const FRAME_WINDOW: Duration = Duration::from_secs(10);
/// Malformed frames within one window after which the socket is closed with 4400.
const MAX_BAD_FRAMES: u32 = 50;
/// Largest `currentVideo`, serialized.
const MAX_VIDEO_BYTES: usize = 2048;

/// `GET /api/socket`: checks the origin and upgrades.
pub async fn upgrade(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
    mut req: Request,
) -> Response {
    let headers = req.headers();
    if !header_has_token(headers, CONNECTION, "upgrade")
        || !header_has_token(headers, UPGRADE, "websocket")
    {
        let mut err = ApiError::bad_request("a WebSocket upgrade is required here");
        err.status = StatusCode::UPGRADE_REQUIRED;
        err.code = "upgrade_required";
        return err.into_response();
    }
    if headers.get(SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        let mut resp = ApiError::bad_request("Sec-WebSocket-Version must be 13").into_response();
        resp.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return resp;
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return ApiError::bad_request("Sec-WebSocket-Key is missing").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    if app.is_shutting_down() {
        return ApiError::unavailable("shutting down").into_response();
    }
    if !app.cfg.allowed_origins.is_empty() {
        if let Some(origin) = headers.get(ORIGIN) {
            let ok = origin
                .to_str()
                .map(|o| app.cfg.allowed_origins.iter().any(|a| a == o))
                .unwrap_or(false);
            if !ok {
                return ApiError::forbidden("origin not allowed").into_response();
            }
        }
    }
    if app.hub.len() >= app.cfg.max_connections {
        return ApiError::unavailable("too many connections on this relay").into_response();
    }
    let header_token = headers
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
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return ApiError::bad_request("this connection cannot be upgraded").into_response();
    };
    let max = app.cfg.max_frame_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(256)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    // The socket holds a connection permit for as long as it lives (its HTTP connection's
    // own permit ends with the upgrade), so sockets still authenticating count against
    // `max_connections` too, and the open-file budget holds.
    let Ok(permit) = app.http_conns.clone().try_acquire_owned() else {
        metrics::counter!("safestream_rejects_total", "reason" => "max_connections").increment(1);
        return ApiError::unavailable("too many connections on this relay").into_response();
    };
    // One task per socket, holding this future directly (no wrapper, no extra box).
    tokio::spawn(async move {
        let _permit = permit;
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, Some(config))
                .await;
        run(app, Box::new(ws), header_token, last_seq).await
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// The client's frame shape.
#[derive(Deserialize)]
struct ClientFrame {
    event: String,
    #[serde(default)]
    data: Value,
}

fn error_frame(code: &str, message: &str) -> Message {
    Message::Text(Utf8Bytes::from(
        json!({"event": "error", "data": {"code": code, "message": message}}).to_string(),
    ))
}

fn frame(event: &str, data: Value) -> Message {
    Message::Text(Utf8Bytes::from(
        json!({"event": event, "data": data}).to_string(),
    ))
}

/// A boxed future: call sites keep only a pointer in their state machines, which keeps the
/// per-socket task small (these run rarely; the box is freed when they finish).
type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Sends one message (10 s at most); false if the socket is gone.
fn send(ws: &mut WebSocket, msg: Message) -> Boxed<'_, bool> {
    Box::pin(async move {
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, ws.send(msg)).await,
            Ok(Ok(()))
        )
    })
}

/// Sends a close frame (2 s at most) and counts the refusal.
fn close<'a>(ws: &'a mut WebSocket, code: u16, reason: &'static str) -> Boxed<'a, ()> {
    Box::pin(async move {
        if code != crate::hub::CLOSE_GOING_AWAY {
            metrics::counter!("safestream_rejects_total", "reason" => close_label(code))
                .increment(1);
        }
        let msg = Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static(reason),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.send(msg)).await;
    })
}

fn close_label(code: u16) -> &'static str {
    match code {
        CLOSE_UNAUTHORIZED => "ws_unauthorized",
        CLOSE_FORBIDDEN => "ws_forbidden",
        CLOSE_TIMEOUT => "ws_timeout",
        CLOSE_PROTOCOL => "ws_protocol",
        CLOSE_RATE_LIMITED => "ws_rate_limited",
        crate::hub::CLOSE_SLOW_CONSUMER => "ws_slow_consumer",
        _ => "ws_other",
    }
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
    ws: &mut WebSocket,
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
    if f.event != "auth" {
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
async fn run(
    app: Arc<App>,
    mut ws: Box<WebSocket>,
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
        } => Box::pin(device_session(app, ws, device_id, child_id)).await,
        Actor::Backend => close(&mut ws, CLOSE_UNAUTHORIZED, "invalid token").await,
    }
}

/// Reads the credential (header or first frame) and verifies it; closes the socket and
/// returns `None` when it is refused.
async fn authenticate(
    app: &App,
    ws: &mut WebSocket,
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

async fn parent_session(
    app: Arc<App>,
    mut ws: Box<WebSocket>,
    user_id: String,
    is_admin: bool,
    exp: i64,
    last_seq: Option<i64>,
) {
    let identity = room::user(&user_id);
    if !app
        .hub
        .acquire_identity(&identity, app.cfg.max_conn_per_user)
    {
        return close(
            &mut ws,
            CLOSE_RATE_LIMITED,
            "too many sockets for this user",
        )
        .await;
    }
    let mut rooms = vec![identity.clone()];
    if is_admin {
        rooms.push(room::ADMINS.to_string());
    }
    let conn = app.hub.register(Role::Parent, &rooms);
    conn.set_token_exp(exp);
    let who = Who::Parent { user_id, exp };
    let mut s = Session::new(&app, conn.clone(), who, identity.clone());
    if Box::pin(s.parent_start(&mut ws, last_seq)).await {
        s.run(&mut ws).await;
    }
    app.hub.unregister(&conn, &rooms);
    app.hub.release_identity(&identity);
}

/// A device socket, from authentication to the end. This future lives as long as the
/// socket, so it holds only what the steady state needs; the start and the end are separate
/// boxed futures that exist only while they run (memory per idle socket, BENCHMARKS.md).
async fn device_session(
    app: Arc<App>,
    mut ws: Box<WebSocket>,
    device_id: String,
    child_id: String,
) {
    let Some((conn, mut s, live)) =
        Box::pin(device_open(&app, &mut ws, &device_id, &child_id)).await
    else {
        return;
    };
    if live {
        s.run(&mut ws).await;
    }
    drop(s);
    Box::pin(device_close(&app, &conn, &device_id, &child_id)).await;
}

/// Checks the device, registers its socket, tells guardians it is online and sends its
/// pending commands. `None` when it was refused before registering (socket closed);
/// otherwise the socket's shared half, its session, and whether the session should run (it
/// was registered, so [`device_close`] must follow either way).
async fn device_open<'a>(
    app: &'a Arc<App>,
    ws: &mut WebSocket,
    device_id: &str,
    child_id: &str,
) -> Option<(Arc<Conn>, Session<'a>, bool)> {
    match app.store.device_auth(device_id).await {
        Ok(Some(d)) if d.revoked => {
            close(ws, CLOSE_FORBIDDEN, "device revoked").await;
            return None;
        }
        Ok(Some(d)) if d.child_id == child_id => {}
        Ok(_) => {
            close(ws, CLOSE_UNAUTHORIZED, "unknown device").await;
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "device lookup failed");
            close(ws, 1011, "internal error").await;
            return None;
        }
    }
    let max = app.cfg.max_conn_per_device;
    let Ok(first) = app.hub.device_up(device_id, child_id, now_ms(), max) else {
        close(ws, CLOSE_RATE_LIMITED, "too many sockets for this device").await;
        return None;
    };
    let identity = room::device(device_id);
    // The room names are rebuilt to leave (not kept for the socket's lifetime: memory).
    let conn = app
        .hub
        .register(Role::Device, &[identity.clone(), room::child(child_id)]);
    let who = Who::Device {
        device_id: device_id.to_string(),
        child_id: child_id.to_string(),
    };
    let mut s = Session::new(app, conn.clone(), who, identity);
    // A revocation that committed between the check above and `register` found no socket
    // to close: look again now that this one is reachable.
    match app.store.device_auth(device_id).await {
        Ok(Some(d)) if !d.revoked => {}
        Ok(_) => {
            close(ws, CLOSE_FORBIDDEN, "device revoked").await;
            return Some((conn, s, false));
        }
        Err(e) => {
            tracing::error!(error = %e, "device lookup failed");
            close(ws, 1011, "internal error").await;
            return Some((conn, s, false));
        }
    }
    if let Some(p) = first {
        Box::pin(crate::presence::announce(app, device_id, &p)).await;
        Box::pin(crate::presence::publish(app, device_id, &p)).await;
    }
    let live = Box::pin(s.device_start(ws)).await;
    Some((conn, s, live))
}

/// The socket ended: leave the rooms; if it was the device's last socket here, withdraw its
/// presence, tell guardians and record when it was last seen.
async fn device_close(app: &App, conn: &Arc<Conn>, device_id: &str, child_id: &str) {
    app.hub
        .unregister(conn, &[room::device(device_id), room::child(child_id)]);
    let now = now_ms();
    if let Some(p) = app.hub.device_down(device_id, now) {
        Box::pin(crate::presence::withdraw(app, device_id)).await;
        Box::pin(crate::presence::publish(app, device_id, &p)).await;
        if let Err(e) = app.store.set_last_seen(device_id, now).await {
            tracing::warn!(error = %e, "could not record last_seen");
        }
    }
}

enum Who {
    Parent { user_id: String, exp: i64 },
    Device { device_id: String, child_id: String },
}

/// Why a replay stopped.
enum ReplayError {
    /// The socket failed or timed out.
    Socket,
    /// The database failed.
    Db(crate::store::StoreError),
}

enum Handled {
    Nothing,
    Reply(Message),
    /// A malformed or unexpected frame: answered, and counted towards close 4400.
    Bad(Message),
    Close(u16, &'static str),
    /// The device's presence changed: tell the guardians.
    Presence(Presence),
}

struct Session<'a> {
    app: &'a Arc<App>,
    conn: Arc<Conn>,
    who: Who,
    identity: String,
    limiter: DefaultDirectRateLimiter,
    dropped: u32,
    bad: u32,
    window_start: std::time::Instant,
    /// Parents: the position of the last event written to this socket. Positions are per
    /// user and gap-free, so a live frame at or below it was already sent (skipped), and one
    /// further ahead means events in between are still in flight on the bus: they are read
    /// from the database and sent first, in order.
    last_seq: i64,
    /// Commands sent from the database at connect; skipped once if they also arrive live.
    // Boxed: 8 bytes in every session instead of 48; it exists only just after connect.
    #[allow(clippy::box_collection)]
    sent_at_connect: Option<Box<HashSet<String>>>,
}

impl<'a> Session<'a> {
    fn new(app: &'a Arc<App>, conn: Arc<Conn>, who: Who, identity: String) -> Self {
        Session {
            app,
            conn,
            who,
            identity,
            limiter: RateLimiter::direct(per_second(app.cfg.frame_rate)),
            dropped: 0,
            bad: 0,
            window_start: std::time::Instant::now(),
            last_seq: 0,
            sent_at_connect: None,
        }
    }

    /// `ready`, then the replay (or `resync`). False if the socket is gone.
    async fn parent_start(&mut self, ws: &mut WebSocket, last_seq: Option<i64>) -> bool {
        let Who::Parent { user_id, .. } = &self.who else {
            return false;
        };
        let user_id = user_id.clone();
        let (newest, next_kept) = match self.app.store.event_positions(&user_id, last_seq).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reading event positions");
                close(ws, 1011, "internal error").await;
                return false;
            }
        };
        let mut resync = false;
        if let Some(ls) = last_seq {
            if ls > newest || !next_kept {
                resync = true;
            } else {
                match self
                    .app
                    .store
                    .more_events_than(&user_id, ls, MAX_REPLAY)
                    .await
                {
                    Ok(too_many) => resync = too_many,
                    Err(e) => {
                        tracing::error!(error = %e, "counting events for resume");
                        resync = true;
                    }
                }
            }
        }
        let ready = json!({
            "role": "parent", "userId": user_id, "heartbeatSec": self.app.cfg.heartbeat_secs,
            "seq": newest, "resumed": last_seq.is_some() && !resync,
        });
        if !send(ws, frame("ready", ready)).await {
            return false;
        }
        self.last_seq = newest;
        self.conn.set_sent_seq(newest);
        if resync {
            let why = json!({"reason": "history_gap", "seq": newest});
            return send(ws, frame("resync", why)).await;
        }
        let Some(after) = last_seq else {
            return true;
        };
        // Replay in pages until a short page: every event committed before the last page was
        // read is replayed; anything later arrives live with a larger seq.
        self.last_seq = after;
        self.conn.set_sent_seq(after);
        self.replay_rest(ws, "resume").await
    }

    /// Writes this parent's logged events after `self.last_seq` and below `before`, oldest
    /// first, in pages, until a short page or `before`; advances `last_seq`. Flushes.
    async fn replay(&mut self, ws: &mut WebSocket, before: i64) -> Result<(), ReplayError> {
        let Who::Parent { user_id, .. } = &self.who else {
            return Ok(());
        };
        let user_id = user_id.clone();
        loop {
            let page = self
                .app
                .store
                .events_after(&user_id, self.last_seq, REPLAY_PAGE)
                .await
                .map_err(ReplayError::Db)?;
            let short = (page.len() as i64) < REPLAY_PAGE;
            let mut reached = false;
            for ev in page {
                if ev.seq >= before {
                    reached = true;
                    break;
                }
                if ev.seq > self.last_seq + 1 {
                    // Events in between are gone (pruned while we read): say so, go on.
                    let why = json!({"reason": "history_gap", "seq": ev.seq - 1});
                    if !send(ws, frame("resync", why)).await {
                        return Err(ReplayError::Socket);
                    }
                }
                let text = format!(
                    r#"{{"event":{},"seq":{},"data":{}}}"#,
                    Value::String(ev.event),
                    ev.seq,
                    ev.data
                );
                self.last_seq = ev.seq;
                self.conn.set_sent_seq(ev.seq);
                if tokio::time::timeout(SEND_TIMEOUT, ws.feed(Message::Text(text.into())))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    return Err(ReplayError::Socket);
                }
            }
            if !matches!(
                tokio::time::timeout(SEND_TIMEOUT, ws.flush()).await,
                Ok(Ok(()))
            ) {
                return Err(ReplayError::Socket);
            }
            if short || reached {
                return Ok(());
            }
        }
    }

    /// A device session's `(device id, child id)`; `None` for a parent.
    fn device_ids(&self) -> Option<(String, String)> {
        match &self.who {
            Who::Device {
                device_id,
                child_id,
            } => Some((device_id.clone(), child_id.clone())),
            Who::Parent { .. } => None,
        }
    }

    /// `ready`, then every pending unexpired command. False if the socket is gone.
    async fn device_start(&mut self, ws: &mut WebSocket) -> bool {
        let Some((device_id, child_id)) = self.device_ids() else {
            return false;
        };
        let ready = json!({
            "role": "device", "deviceId": device_id, "childId": child_id,
            "heartbeatSec": self.app.cfg.heartbeat_secs,
        });
        if !send(ws, frame("ready", ready)).await {
            return false;
        }
        self.send_pending(ws).await
    }

    /// Writes every open, unexpired command for this device from the database (at connect,
    /// and again when the bus may have lost some). False if the socket is gone.
    async fn send_pending(&mut self, ws: &mut WebSocket) -> bool {
        let Some((device_id, child_id)) = self.device_ids() else {
            return false;
        };
        let mut ids = self.sent_at_connect.take().unwrap_or_default();
        let mut after = None;
        loop {
            let now = now_ms();
            let page = match self
                .app
                .store
                .pending_for_device(&device_id, &child_id, now, after.clone(), PENDING_PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "reading pending commands");
                    close(ws, 1011, "internal error").await;
                    return false;
                }
            };
            let short = (page.len() as i64) < PENDING_PAGE;
            for c in &page {
                let f = crate::store::device_frame(c);
                if tokio::time::timeout(SEND_TIMEOUT, ws.feed(Message::Text(f.text.clone())))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    return false;
                }
                ids.insert(c.id.clone());
            }
            if !matches!(
                tokio::time::timeout(SEND_TIMEOUT, ws.flush()).await,
                Ok(Ok(()))
            ) {
                return false;
            }
            if let Some(last) = page.last() {
                after = Some((last.created_at, last.id.clone()));
            }
            self.record_delivery(page.into_iter().map(|c| c.id).collect(), now);
            if short {
                break;
            }
        }
        self.sent_at_connect = Some(ids);
        true
    }

    /// Records (in the background) that these commands were written to this device.
    fn record_delivery(&self, ids: Vec<String>, now: i64) {
        let Who::Device { device_id, .. } = &self.who else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let store = self.app.store.clone();
        let device_id = device_id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.mark_delivered(ids, &device_id, now).await {
                tracing::warn!(error = %e, "could not record delivery");
            }
        });
    }

    /// The socket's steady state: wait for the mailbox or a client frame. Kept small: this
    /// future lives as long as the socket (thousands of idle ones), so everything that
    /// handles a wake-up is a separate, boxed future that exists only while it runs.
    async fn run(&mut self, ws: &mut WebSocket) {
        loop {
            let msg = tokio::select! {
                biased;
                _ = self.conn.notified() => None,
                msg = ws.next() => Some(msg),
            };
            let go_on = match msg {
                None => Box::pin(self.drain(ws)).await,
                // Pongs (most of an idle socket's traffic) need nothing more.
                Some(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {
                    self.conn.touch(&self.app.hub);
                    true
                }
                Some(msg) => Box::pin(self.on_message(ws, msg)).await,
            };
            if !go_on {
                return;
            }
        }
    }

    /// One frame (or the end) from the client. False when the socket must end.
    async fn on_message(
        &mut self,
        ws: &mut WebSocket,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> bool {
        match msg {
            Some(Ok(Message::Text(t))) => {
                self.conn.touch(&self.app.hub);
                if self.window_start.elapsed() >= FRAME_WINDOW {
                    self.window_start = std::time::Instant::now();
                    self.dropped = 0;
                    self.bad = 0;
                }
                if !self.allow_frame() {
                    self.dropped += 1;
                    if self.dropped >= MAX_DROPPED {
                        close(ws, CLOSE_RATE_LIMITED, "too many frames").await;
                        return false;
                    }
                    return self.dropped != 1
                        || send(
                            ws,
                            error_frame("rate_limited", "too many frames; slow down"),
                        )
                        .await;
                }
                match self.handle(&t) {
                    Handled::Nothing => true,
                    Handled::Reply(m) => send(ws, m).await,
                    Handled::Bad(m) => {
                        self.bad += 1;
                        if self.bad >= MAX_BAD_FRAMES {
                            close(ws, CLOSE_PROTOCOL, "too many malformed frames").await;
                            return false;
                        }
                        send(ws, m).await
                    }
                    Handled::Close(code, reason) => {
                        close(ws, code, reason).await;
                        false
                    }
                    Handled::Presence(p) => {
                        if let Who::Device { device_id, .. } = &self.who {
                            Box::pin(crate::presence::announce(self.app, device_id, &p)).await;
                            Box::pin(crate::presence::publish(self.app, device_id, &p)).await;
                        }
                        true
                    }
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                self.conn.touch(&self.app.hub);
                true
            }
            Some(Ok(Message::Binary(_))) => {
                close(ws, CLOSE_PROTOCOL, "binary frames are not accepted").await;
                false
            }
            Some(Ok(Message::Close(_))) | None => false,
            Some(Ok(Message::Frame(_))) => true,
            Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                close(ws, 1009, "frame too large").await;
                false
            }
            Some(Err(_)) => false,
        }
    }

    /// Writes whatever the mailbox holds. False when the socket must end.
    async fn drain(&mut self, ws: &mut WebSocket) -> bool {
        let batch = self.conn.take();
        if let Some((code, reason)) = batch.close {
            close(ws, code, reason).await;
            return false;
        }
        if batch.catch_up && !Box::pin(self.catch_up(ws)).await {
            return false;
        }
        let now = now_ms();
        // Parent events carry gap-free positions. A live event further ahead than the next
        // position means the ones in between were committed (positions are handed out in
        // commit order) but are still on their way from another writer or node: those are
        // read from the database and sent first (`fill_gaps`). The common case has no gap.
        let mut next = self.last_seq;
        let gap = batch.frames.iter().filter_map(|f| f.seq).any(|s| {
            if s == next + 1 {
                next = s;
            }
            s > next + 1
        });
        if gap {
            return Box::pin(self.fill_gaps(ws, batch, now)).await;
        }
        let sent_at_connect = self.sent_at_connect.take();
        let mut delivered = Vec::new();
        let mut last_seq = self.last_seq;
        let write = async {
            if batch.ping {
                ws.feed(Message::Ping(Default::default())).await?;
            }
            for f in &batch.frames {
                if let Some(s) = f.seq {
                    if s <= last_seq {
                        continue;
                    }
                    last_seq = s;
                }
                if let Some(meta) = &f.command {
                    if meta.expires_at <= now
                        || sent_at_connect
                            .as_ref()
                            .is_some_and(|s| s.contains(&meta.id))
                    {
                        continue;
                    }
                    delivered.push(meta.id.clone());
                }
                ws.feed(Message::Text(f.text.clone())).await?;
            }
            ws.flush().await
        };
        match tokio::time::timeout(SEND_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return false,
            Err(_) => {
                metrics::counter!("safestream_rejects_total", "reason" => "slow_consumer")
                    .increment(1);
                return false;
            }
        }
        if last_seq != self.last_seq {
            self.last_seq = last_seq;
            self.conn.set_sent_seq(last_seq);
        }
        self.record_delivery(delivered, now);
        true
    }

    /// The slow path of [`Session::drain`] for a parent: frame by frame, filling each gap in
    /// the positions from the database before the frame that revealed it.
    async fn fill_gaps(&mut self, ws: &mut WebSocket, batch: Batch, now: i64) -> bool {
        metrics::counter!("safestream_event_gap_fills_total").increment(1);
        if batch.ping && !send(ws, Message::Ping(Default::default())).await {
            return false;
        }
        for f in &batch.frames {
            if let Some(s) = f.seq {
                if s <= self.last_seq {
                    continue;
                }
                if s > self.last_seq + 1 {
                    if s - self.last_seq - 1 > MAX_REPLAY {
                        let why = json!({"reason": "history_gap", "seq": s - 1});
                        if !send(ws, frame("resync", why)).await {
                            return false;
                        }
                        self.last_seq = s - 1;
                    }
                    match self.replay(ws, s).await {
                        Ok(()) => {}
                        Err(ReplayError::Socket) => return false,
                        Err(ReplayError::Db(e)) => {
                            tracing::error!(error = %e, "reading events to fill a gap");
                            close(ws, 1011, "internal error").await;
                            return false;
                        }
                    }
                }
                self.last_seq = s;
                self.conn.set_sent_seq(s);
            }
            if f.command.as_ref().is_some_and(|m| m.expires_at <= now) {
                continue;
            }
            if !send(ws, Message::Text(f.text.clone())).await {
                return false;
            }
        }
        true
    }

    /// After the bus reconnected: whatever other nodes published meanwhile may be lost, so
    /// a device gets its open commands again (the agent drops ids it already ran) and a
    /// parent every event after the last one it was sent.
    async fn catch_up(&mut self, ws: &mut WebSocket) -> bool {
        metrics::counter!("safestream_catch_ups_total").increment(1);
        // Taken in turn across the node's sockets (the semaphore is never closed).
        let _turn = self.app.catch_ups.acquire().await;
        match &self.who {
            Who::Device { device_id, .. } => {
                // A revocation announced while the bus was away never closed this socket.
                match self.app.store.device_auth(device_id).await {
                    Ok(Some(d)) if !d.revoked => {}
                    Ok(_) => {
                        close(ws, CLOSE_FORBIDDEN, "device revoked").await;
                        return false;
                    }
                    // Not a verdict: the device stays; the next catch-up checks again.
                    Err(e) => tracing::warn!(error = %e, "catch-up: device check failed"),
                }
                self.send_pending(ws).await
            }
            Who::Parent { user_id, .. } => {
                // Too far behind to replay (a long outage): the client refetches instead.
                if let Ok(true) = self
                    .app
                    .store
                    .more_events_than(user_id, self.last_seq, MAX_REPLAY)
                    .await
                {
                    let newest = match self.app.store.event_positions(user_id, None).await {
                        Ok((n, _)) => n,
                        Err(_) => self.last_seq,
                    };
                    let why = json!({"reason": "history_gap", "seq": newest});
                    self.last_seq = newest;
                    self.conn.set_sent_seq(newest);
                    return send(ws, frame("resync", why)).await;
                }
                self.replay_rest(ws, "catch-up").await
            }
        }
    }

    /// Every event after the last one this parent was sent (resume, catch-up); a database
    /// failure closes the socket with 1011. False when the socket must end.
    async fn replay_rest(&mut self, ws: &mut WebSocket, why: &'static str) -> bool {
        match self.replay(ws, i64::MAX).await {
            Ok(()) => true,
            Err(ReplayError::Socket) => false,
            Err(ReplayError::Db(e)) => {
                tracing::error!(error = %e, why, "reading events to replay");
                close(ws, 1011, "internal error").await;
                false
            }
        }
    }

    fn allow_frame(&self) -> bool {
        self.limiter.check().is_ok()
            && self
                .app
                .limits
                .user_frames
                .check_key(&self.identity)
                .is_ok()
    }

    /// Handles one client frame (after auth); awaits nothing.
    fn handle(&mut self, text: &str) -> Handled {
        let f: ClientFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(_) => {
                return Handled::Bad(error_frame(
                    "bad_frame",
                    "frames are JSON objects {\"event\", \"data\"}",
                ))
            }
        };
        match f.event.as_str() {
            "auth" => Handled::Bad(error_frame("bad_frame", "already authenticated")),
            "auth:refresh" => self.refresh(&f.data),
            "device:status" => self.device_status(&f.data),
            "heartbeat" => {
                let min = self.app.cfg.heartbeat_secs;
                match f.data.get("intervalSec").and_then(Value::as_u64) {
                    Some(n) if n >= min && n <= 600 => {
                        self.conn.set_interval(&self.app.hub, n * 1000);
                        Handled::Reply(frame("heartbeat", json!({"intervalSec": n})))
                    }
                    _ => Handled::Bad(error_frame(
                        "bad_frame",
                        &format!("heartbeat.intervalSec must be an integer from {min} to 600"),
                    )),
                }
            }
            "ping" => Handled::Reply(frame("pong", f.data)),
            _ => Handled::Bad(error_frame("bad_frame", "unknown event")),
        }
    }

    fn refresh(&mut self, data: &Value) -> Handled {
        let Some(token) = data.get("token").and_then(Value::as_str) else {
            return Handled::Bad(error_frame("bad_frame", "auth:refresh needs data.token"));
        };
        let actor = match self.app.keys.verify(token) {
            Ok(a) => a,
            Err(e) => return Handled::Reply(error_frame("unauthorized", auth_close_reason(&e))),
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
                    "auth:refreshed",
                    json!({"expiresAt": rfc3339(new_exp.saturating_mul(1000))}),
                ))
            }
            (
                Who::Device { device_id, .. },
                Actor::Device {
                    device_id: new_dev, ..
                },
            ) if *device_id == new_dev => {
                Handled::Reply(frame("auth:refreshed", json!({"expiresAt": null})))
            }
            _ => Handled::Close(CLOSE_FORBIDDEN, "auth:refresh for another identity"),
        }
    }

    fn device_status(&mut self, data: &Value) -> Handled {
        let Who::Device { device_id, .. } = &self.who else {
            return Handled::Reply(error_frame(
                "forbidden",
                "only a device reports device:status",
            ));
        };
        if !matches!(data, Value::Null | Value::Object(_)) {
            return Handled::Bad(error_frame(
                "bad_frame",
                "device:status data must be an object",
            ));
        }
        let active = match data.get("activeViewing") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Handled::Bad(error_frame("bad_frame", "activeViewing must be a boolean"))
            }
        };
        let video = data.get("currentVideo").cloned().unwrap_or(Value::Null);
        let ok_shape = matches!(video, Value::Null | Value::String(_) | Value::Object(_));
        if !ok_shape || video.to_string().len() > MAX_VIDEO_BYTES {
            return Handled::Bad(error_frame(
                "bad_frame",
                "currentVideo must be null, a string or an object of at most 2 KiB",
            ));
        }
        match self
            .app
            .hub
            .device_status(device_id, active, video, now_ms())
        {
            Some(p) => Handled::Presence(p),
            None => Handled::Nothing,
        }
    }
}
