//! Socket.IO at `/api/socket` (Engine.IO v4, Socket.IO v5: socket.io-client 3.x and 4.x),
//! beside the native protocol, over the same sessions.
//!
//! A request with `EIO=4` in its query is Socket.IO's; anything else is a native socket. A
//! Socket.IO client becomes a [`SioSocket`], which the native session code drives as if it
//! were a native WebSocket (`crate::ws::Socket`): the CONNECT packet's `auth` is the native
//! `auth` frame, events are native frames, the session's pings are Engine.IO pings, its
//! close is a CONNECT_ERROR (before `ready`) or a `closing` event and a disconnect. So every
//! rule (authorization, rooms, delivery, limits, resume) is the native one.
//!
//! **Recovery.** Each event with a position carries it as its last argument (Socket.IO's
//! offset); `ready` carries the newest. A reconnecting client sends back its private id
//! (`pid`) and that offset, which become the native `lastSeq`: the missed events are
//! replayed from the durable log, on any node, after any restart, and the CONNECT answer
//! repeats the client's `pid` (`socket.recovered` is true) unless the replay could not be
//! proven complete (a new `pid` and the `resync` event).
//!
//! **No sticky sessions.** An Engine.IO session id names the node that holds the session
//! (`<random>.<node id>`). A polling request that reaches another node is forwarded to the
//! holder over HTTP (its address from the nodes' shared registry), and a WebSocket upgrade
//! is proxied to it (`forward.rs`). A request for a session nobody holds (its node died)
//! gets Engine.IO's "Session ID unknown": the client reconnects, and recovers.
//!
//! # Layout
//! - `packet.rs`: Engine.IO/Socket.IO packets and their translation to native frames.
//! - `socket.rs`: [`SioSocket`] and the polling session's shared half.
//! - `forward.rs`: requests for sessions another node holds.

mod forward;
pub mod packet;
mod socket;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

pub use forward::advertise;
pub use socket::SioSocket;
use socket::{Inbound, Shared};

use crate::app::App;
use crate::http::ApiQuery;
use crate::ws::Socket;

/// Packets a polling session may have waiting from POSTs before further POSTs are refused.
const INBOUND_PACKETS: usize = 64;
/// Header marking a request one node forwarded to another (never forwarded again).
pub(crate) const FORWARDED: &str = "x-safestream-sio-forwarded";

/// This node's polling sessions, by Engine.IO session id.
#[derive(Default)]
pub struct Registry {
    sessions: DashMap<String, Arc<Shared>>,
    forward: forward::Forwarder,
    /// Polling sessions not yet past authentication (see [`MAX_UNAUTHENTICATED`]).
    unauthenticated: std::sync::atomic::AtomicUsize,
}

/// Polling sessions per node that may wait for their CONNECT at once. A polling handshake
/// needs no open connection, so without this bound a client could hold every connection
/// permit with handshakes alone (each lives up to the handshake timeout); past it new
/// polling handshakes are refused (WebSocket and REST are unaffected).
const MAX_UNAUTHENTICATED: usize = 1024;

/// Counts one polling session as unauthenticated until dropped or [`Pending::done`].
struct Pending(Arc<App>, bool);

impl Pending {
    fn done(&mut self) {
        if !self.1 {
            self.1 = true;
            self.0.sio.unauthenticated.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.done();
    }
}

impl Registry {
    /// Polling sessions open on this node.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no polling session is open on this node.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// An Engine.IO error answer (`{"code","message"}` with 400, as the Socket.IO server
/// writes them; the client treats any of them as a transport error and reconnects).
fn eio_error(code: u8, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    (
        StatusCode::BAD_REQUEST,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

fn unknown_session() -> Response {
    eio_error(1, "Session ID unknown")
}

fn text(body: String) -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=UTF-8"),
        )],
        body,
    )
        .into_response()
}

/// The node named by a session id (`<random>.<node>`), if it is another node.
fn owner<'a>(app: &App, sid: &'a str) -> Option<&'a str> {
    let (_, node) = sid.split_once('.')?;
    (node != app.node_id).then_some(node)
}

fn new_sid(app: &App) -> String {
    format!("{}.{}", packet::random_id(), app.node_id)
}

/// Engine.IO's handshake numbers: the relay's ping interval, and how much later than that
/// the client may hear the next ping (the hub pings each interval, spread over an eighth of
/// it, and closes a socket silent for 1.75 intervals).
fn open_packet(app: &App, sid: &str, upgrades: bool) -> String {
    let interval = app.cfg.heartbeat_secs * 1000;
    packet::open(
        sid,
        upgrades,
        interval,
        interval * 3 / 4,
        app.cfg.max_frame_bytes,
    )
}

/// The refusal of any Engine.IO version but 4.
fn wrong_version(q: &HashMap<String, String>) -> Option<Response> {
    (q.get("EIO").map(String::as_str) != Some("4"))
        .then(|| eio_error(5, "Unsupported protocol version"))
}

/// `GET /api/socket?EIO=4&...`: a handshake, a long-poll, or a WebSocket (new, or the
/// upgrade of a polling session).
pub async fn get(app: Arc<App>, q: HashMap<String, String>, req: Request) -> Response {
    if let Some(r) = wrong_version(&q) {
        return r;
    }
    let forwarded = req.headers().contains_key(FORWARDED);
    match (q.get("transport").map(String::as_str), q.get("sid")) {
        (Some("polling"), None) => handshake(&app, &req),
        (Some("polling"), Some(sid)) => match owner(&app, sid) {
            Some(node) if !forwarded => app.sio.forward.http(&app, node, req).await,
            _ => long_poll(&app, sid).await,
        },
        (Some("websocket"), None) => websocket(app, req),
        (Some("websocket"), Some(sid)) => match owner(&app, sid) {
            Some(node) if !forwarded => {
                forward::websocket(app.clone(), node.to_string(), req).await
            }
            _ => upgrade(app, sid.clone(), req),
        },
        _ => eio_error(0, "Transport unknown"),
    }
}

/// `POST /api/socket?EIO=4&transport=polling&sid=...`: packets from a polling client.
pub async fn post(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
    req: Request,
) -> Response {
    if let Some(r) = wrong_version(&q) {
        return r;
    }
    if q.get("transport").map(String::as_str) != Some("polling") {
        return eio_error(0, "Transport unknown");
    }
    let Some(sid) = q.get("sid") else {
        return eio_error(2, "Bad handshake method");
    };
    if let Some(node) = owner(&app, sid) {
        if !req.headers().contains_key(FORWARDED) {
            return app.sio.forward.http(&app, node, req).await;
        }
        return unknown_session();
    }
    let Some(shared) = app.sio.sessions.get(sid).map(|s| s.clone()) else {
        return unknown_session();
    };
    let body: Bytes = match axum::body::to_bytes(req.into_body(), app.cfg.max_frame_bytes).await {
        Ok(b) => b,
        Err(_) => return eio_error(3, "Bad request"),
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        return eio_error(3, "Bad request");
    };
    if shared.closed.load(Ordering::Relaxed) {
        return unknown_session();
    }
    // All or nothing: a payload that does not fit whole is refused whole (the client then
    // reconnects) rather than cut after some of its packets.
    let packets: Vec<&str> = body.split(packet::SEPARATOR).collect();
    let Ok(permits) = shared.tx.try_reserve_many(packets.len()) else {
        metrics::counter!("safestream_rejects_total", "reason" => "sio_backlog").increment(1);
        return eio_error(3, "Bad request");
    };
    for (permit, p) in permits.zip(packets) {
        permit.send(Inbound::Packet(p.to_string()));
    }
    text("ok".into())
}

/// A new polling session: the session task starts, the client gets `open`.
fn handshake(app: &Arc<App>, req: &Request) -> Response {
    if app.is_shutting_down() {
        return eio_error(3, "Bad request");
    }
    if !crate::ws::origin_allowed(app, req.headers()) {
        return eio_error(4, "Forbidden");
    }
    if app.hub.len() >= app.cfg.max_connections {
        return eio_error(3, "Bad request");
    }
    if app.sio.unauthenticated.fetch_add(1, Ordering::AcqRel) >= MAX_UNAUTHENTICATED {
        app.sio.unauthenticated.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!("safestream_rejects_total", "reason" => "sio_handshakes").increment(1);
        return eio_error(3, "Bad request");
    }
    let pending = Pending(app.clone(), false);
    let Ok(permit) = app.http_conns.clone().try_acquire_owned() else {
        metrics::counter!("safestream_rejects_total", "reason" => "max_connections").increment(1);
        return eio_error(3, "Bad request");
    };
    let sid = new_sid(app);
    let (tx, rx) = tokio::sync::mpsc::channel(INBOUND_PACKETS);
    let shared = Arc::new(Shared {
        out: Default::default(),
        out_ready: Default::default(),
        tx,
        polling: Default::default(),
        closed: Default::default(),
    });
    app.sio.sessions.insert(sid.clone(), shared.clone());
    let mut socket = SioSocket::polling(shared, rx);
    socket.on_authenticated(Box::new(pending));
    let task_app = app.clone();
    let task_sid = sid.clone();
    tokio::spawn(async move {
        crate::ws::run(task_app.clone(), Socket::Sio(Box::new(socket)), None, None).await;
        drop(permit);
        // A last GET may still fetch what the session wrote last (a CONNECT_ERROR, a
        // close); then the session is forgotten.
        let mut stop = task_app.shutdown_signal();
        if !task_app.is_shutting_down() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = stop.changed() => {}
            }
        }
        task_app.sio.sessions.remove(&task_sid);
    });
    metrics::counter!("safestream_sio_sessions_total", "transport" => "polling").increment(1);
    text(open_packet(app, &sid, true))
}

/// A GET on a polling session: waits for packets (at most one ping interval and a bit).
async fn long_poll(app: &App, sid: &str) -> Response {
    let Some(shared) = app.sio.sessions.get(sid).map(|s| s.clone()) else {
        return unknown_session();
    };
    if shared.polling.swap(true, Ordering::AcqRel) {
        return eio_error(3, "Bad request");
    }
    // Cleared however this ends, also when the client goes away mid-poll (the future is
    // dropped): a stuck flag would refuse every later GET.
    struct Polling<'a>(&'a Shared);
    impl Drop for Polling<'_> {
        fn drop(&mut self) {
            self.0.polling.store(false, Ordering::Release);
        }
    }
    let _polling = Polling(&shared);
    let wait = app.cfg.heartbeat() + Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + wait;
    let body = loop {
        let ready = shared.out_ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        let out = shared.take();
        if !out.is_empty() {
            break out;
        }
        if shared.closed.load(Ordering::Relaxed) {
            // Moved to a WebSocket, or ended with nothing left to say.
            return unknown_session();
        }
        if tokio::time::timeout_at(deadline, ready).await.is_err() {
            break "6".to_string();
        }
    };
    text(body)
}

/// A WebSocket opened directly (`transport=websocket`, no `sid`): `open`, then the session.
fn websocket(app: Arc<App>, mut req: Request) -> Response {
    let mut accepted = match crate::ws::accept(&app, &mut req) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let response = std::mem::take(&mut accepted.response);
    tokio::spawn(async move {
        let Some((mut ws, _permit)) = accepted.socket().await else {
            return;
        };
        let sid = new_sid(&app);
        let open = open_packet(&app, &sid, false);
        if ws.send(Message::Text(open.into())).await.is_err() {
            return;
        }
        metrics::counter!("safestream_sio_sessions_total", "transport" => "websocket").increment(1);
        let socket = SioSocket::websocket(Box::new(ws));
        crate::ws::run(app, Socket::Sio(Box::new(socket)), None, None).await;
    });
    response
}

/// The upgrade of a polling session this node holds: the probe (`2probe` / `3probe`), a
/// `noop` that ends the pending GET, then the client's `upgrade`, after which the session
/// continues on the WebSocket.
fn upgrade(app: Arc<App>, sid: String, mut req: Request) -> Response {
    let Some(shared) = app.sio.sessions.get(&sid).map(|s| s.clone()) else {
        return unknown_session();
    };
    if shared.closed.load(Ordering::Relaxed) {
        return unknown_session();
    }
    let mut accepted = match crate::ws::accept(&app, &mut req) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let response = std::mem::take(&mut accepted.response);
    let timeout = app.cfg.handshake_timeout();
    tokio::spawn(async move {
        // The polling session keeps its own permit; this one ends with the hand-over.
        let Some((mut ws, _permit)) = accepted.socket().await else {
            return;
        };
        let probe = tokio::time::timeout(timeout, async {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "2probe" => {}
                _ => return false,
            }
            if ws.send(Message::Text("3probe".into())).await.is_err() {
                return false;
            }
            // Ends the GET the client has pending, so that it can pause polling.
            shared.push("6");
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) if t.as_str() == "5" => return true,
                    Some(Ok(Message::Text(t))) if t.as_str() == "2probe" => continue,
                    _ => return false,
                }
            }
        })
        .await;
        if !matches!(probe, Ok(true)) {
            return;
        }
        if let Err(tokio::sync::mpsc::error::SendError(Inbound::Upgrade(mut ws))) =
            shared.tx.send(Inbound::Upgrade(Box::new(ws))).await
        {
            // The session ended during the probe (a refused CONNECT, say): the client has
            // stopped polling, so what it left for the next GET (the CONNECT_ERROR, the
            // close) goes out on this socket, or `connect_error` would never fire.
            let left = shared.take();
            for p in left.split(packet::SEPARATOR) {
                if !p.is_empty() && p != "6" && ws.feed(Message::Text(p.into())).await.is_err() {
                    return;
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.flush()).await;
        }
    });
    response
}
