//! The round trip's floor: the least a Rust server on the relay's own stack (tokio with one
//! thread, hyper's HTTP/1, tokio-tungstenite, jsonwebtoken) spends on the plan's exchange,
//! with no storage and no rules beyond the plan's.
//!
//! This binary run with `--rt-floor-serve` (what `--relay-bin <this binary>` does) serves what
//! the round-trip phase uses, as the Node baseline (`tests/bench/node-baseline/server.mjs`)
//! does: `PUT /api/children/{id}` and `POST /api/children/{id}/devices` (backend key; device
//! tokens are HS256 JWTs naming the child), the native socket at `/api/socket` (`auth` →
//! `ready`), `POST /api/dashboard/remote-control` (parent JWT, guardian check, the command in
//! a `HashMap`, `command:new` to the child's sockets, `command:sent` to the parent's, 201) and
//! `PATCH /api/dashboard/remote-control/{id}` (device JWT, child check, `command:status` to
//! the guardians' sockets, 200). Three frames per command, as the plan's server; the relay
//! writes four (also `command:status` DELIVERED) and three durable transitions.
//!
//! Its CPU per command is not a target: it is what is left when durability, the event log,
//! delivery tracking, limits, metrics, CORS and heartbeats are all taken away, measured with
//! the same load generator, so that the relay's figure and Node's can be read against it. It
//! also does a little less than the Node baseline: counter ids instead of UUIDs, no
//! timestamps in the command or its status, no check of the command type, and it trusts its
//! clients (no bound on a socket's queue, no authentication timeout, rooms never pruned):
//! a bench tool on loopback, not a server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Sockets in a room, by socket number.
type Room = HashMap<u64, mpsc::UnboundedSender<Message>>;

/// Everything the server remembers.
struct State {
    secret: String,
    server_key: String,
    /// child id -> guardians.
    children: HashMap<String, Vec<String>>,
    /// command id -> (child, status).
    commands: HashMap<String, (String, &'static str)>,
    /// `user:<id>` / `child:<id>` -> sockets.
    rooms: HashMap<String, Room>,
    next_socket: u64,
    next_id: u64,
}

type Shared = Arc<Mutex<State>>;

/// Runs the server (blocks): a current-thread runtime, like the relay's one worker on two
/// cores. Reads SAFESTREAM_LISTEN, SAFESTREAM_JWT_SECRET and SAFESTREAM_SERVER_KEY and prints
/// `listening on <addr>` when it accepts connections.
pub fn serve() -> Result<(), String> {
    let listen = std::env::var("SAFESTREAM_LISTEN").unwrap_or_else(|_| "127.0.0.1:0".into());
    let secret = std::env::var("SAFESTREAM_JWT_SECRET").map_err(|_| "no SAFESTREAM_JWT_SECRET")?;
    let server_key =
        std::env::var("SAFESTREAM_SERVER_KEY").map_err(|_| "no SAFESTREAM_SERVER_KEY")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("bind {listen}: {e}"))?;
        println!("listening on {listen}");
        let state: Shared = Arc::new(Mutex::new(State {
            secret,
            server_key,
            children: HashMap::new(),
            commands: HashMap::new(),
            rooms: HashMap::new(),
            next_socket: 0,
            next_id: 0,
        }));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of files, say: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    })
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn bearer(req: &Request<Incoming>) -> &str {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

fn verify(secret: &str, token: &str) -> Option<Value> {
    // Device tokens carry no `exp`; a parent's is checked when present.
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    decode::<Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
        .ok()
        .map(|d| d.claims)
}

async fn body_json(req: Request<Incoming>) -> Option<Value> {
    let bytes = Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// Sends `frame` to every socket in `rooms`.
fn emit(st: &State, rooms: &[String], frame: &str) {
    for r in rooms {
        for tx in st.rooms.get(r).into_iter().flat_map(|m| m.values()) {
            let _ = tx.send(Message::Text(frame.into()));
        }
    }
}

async fn handle(
    state: Shared,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (secret, server_key) = {
        let st = state.lock().unwrap_or_else(|e| e.into_inner());
        (st.secret.clone(), st.server_key.clone())
    };
    let not_found = || reply(StatusCode::NOT_FOUND, &json!({"error": "not found"}));
    Ok(match (req.method().clone(), parts.as_slice()) {
        (Method::GET, ["api", "socket"]) => upgrade(state, req),
        (Method::PUT, ["api", "children", id]) => {
            if bearer(&req) != server_key {
                return Ok(reply(StatusCode::UNAUTHORIZED, &json!({})));
            }
            let id = id.to_string();
            let Some(body) = body_json(req).await else {
                return Ok(reply(StatusCode::BAD_REQUEST, &json!({})));
            };
            let guardians: Vec<String> = body["guardians"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.children.insert(id.clone(), guardians);
            reply(StatusCode::OK, &json!({"child": {"id": id}}))
        }
        (Method::POST, ["api", "children", id, "devices"]) => {
            if bearer(&req) != server_key {
                return Ok(reply(StatusCode::UNAUTHORIZED, &json!({})));
            }
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            if !st.children.contains_key(*id) {
                return Ok(not_found());
            }
            st.next_id += 1;
            let claims = json!({"sub": format!("d{}", st.next_id), "child": id, "device": true});
            let token = encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap_or_default();
            reply(StatusCode::CREATED, &json!({"token": token}))
        }
        (Method::POST, ["api", "dashboard", "remote-control"]) => {
            let Some(user) = verify(&secret, bearer(&req)) else {
                return Ok(reply(StatusCode::UNAUTHORIZED, &json!({})));
            };
            let user = user["sub"].as_str().unwrap_or("").to_string();
            let Some(body) = body_json(req).await else {
                return Ok(reply(StatusCode::BAD_REQUEST, &json!({})));
            };
            let (Some(child), Some(kind)) =
                (body["childId"].as_str(), body["commandType"].as_str())
            else {
                return Ok(reply(StatusCode::BAD_REQUEST, &json!({})));
            };
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            if !st.children.get(child).is_some_and(|g| g.contains(&user)) {
                return Ok(not_found());
            }
            st.next_id += 1;
            let id = format!("cmd-{}", st.next_id);
            let command = json!({"id": id, "childId": child, "commandType": kind,
                "payload": body["payload"], "status": "PENDING", "createdBy": user});
            st.commands
                .insert(id.clone(), (child.to_string(), "PENDING"));
            let new = json!({"event": "command:new", "data": command}).to_string();
            emit(&st, &[format!("child:{child}")], &new);
            let sent =
                json!({"event": "command:sent", "data": {"commandId": id, "status": "sent"}});
            emit(&st, &[format!("user:{user}")], &sent.to_string());
            reply(StatusCode::CREATED, &json!({"command": command}))
        }
        (Method::PATCH, ["api", "dashboard", "remote-control", id]) => {
            let id = id.to_string();
            let Some(dev) = verify(&secret, bearer(&req)) else {
                return Ok(reply(StatusCode::UNAUTHORIZED, &json!({})));
            };
            let Some(body) = body_json(req).await else {
                return Ok(reply(StatusCode::BAD_REQUEST, &json!({})));
            };
            let status = match body["status"].as_str() {
                Some("EXECUTED") => "EXECUTED",
                Some("FAILED") => "FAILED",
                _ => return Ok(reply(StatusCode::BAD_REQUEST, &json!({}))),
            };
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            let child = match st.commands.get_mut(&id) {
                Some((child, s)) if dev["child"].as_str() == Some(child.as_str()) => {
                    if *s != "PENDING" {
                        return Ok(reply(StatusCode::OK, &json!({"command": {"id": id}})));
                    }
                    *s = status;
                    child.clone()
                }
                _ => return Ok(not_found()),
            };
            let rooms: Vec<String> = st
                .children
                .get(&child)
                .map(|g| g.iter().map(|u| format!("user:{u}")).collect())
                .unwrap_or_default();
            let frame = json!({"event": "command:status",
                "data": {"commandId": id, "status": status}});
            emit(&st, &rooms, &frame.to_string());
            reply(
                StatusCode::OK,
                &json!({"command": {"id": id, "status": status}}),
            )
        }
        _ => not_found(),
    })
}

/// Answers a WebSocket upgrade and runs the socket: `auth` first, then `ready`; frames from
/// its room go out through a channel to the socket's task.
fn upgrade(state: Shared, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return reply(StatusCode::BAD_REQUEST, &json!({}));
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on_upgrade.await else { return };
        // The relay's socket buffers (`relay/src/ws/upgrade.rs`): tungstenite's default
        // 128 KiB read buffer is zeroed as it is used, 9 % of this server's samples.
        let config = WebSocketConfig::default()
            .read_buffer_size(256)
            .write_buffer_size(64 << 10)
            .max_write_buffer_size(1 << 20);
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, Some(config)).await;
        let secret = state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .secret
            .clone();
        let claims = match ws.next().await {
            Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(&t)
                .ok()
                .and_then(|v| verify(&secret, v["data"]["token"].as_str()?)),
            _ => None,
        };
        let Some(claims) = claims else {
            let _ = ws.close(None).await;
            return;
        };
        let room = match claims["child"].as_str() {
            Some(child) if claims["device"] == true => format!("child:{child}"),
            _ => format!("user:{}", claims["sub"].as_str().unwrap_or("")),
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let me = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.next_socket += 1;
            let me = st.next_socket;
            st.rooms.entry(room.clone()).or_default().insert(me, tx);
            me
        };
        let (mut sink, mut stream) = ws.split();
        if sink
            .send(Message::Text(r#"{"event":"ready","data":{}}"#.into()))
            .await
            .is_ok()
        {
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => if sink.send(m).await.is_err() { break },
                        None => break,
                    },
                    m = stream.next() => match m {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = st.rooms.get_mut(&room) {
            r.remove(&me);
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert("sec-websocket-accept", v);
    }
    r
}
