//! The abuse suite (issue 6): the real relay binary attacked from outside. Every expected
//! status and close code is the one `docs/protocol.md` gives.
//!
//! One test binary (`cargo test -p safestream-tests --test abuse`). This file holds the shared
//! fixtures (forged tokens, bad credentials, two families, socket helpers); the tests are split
//! by attack:
//! - [`authz`]: the authorization matrix over every REST endpoint;
//! - [`socket`]: the socket matrix, every frame type and actor;
//! - [`tokens`]: issuer, audience and HS/RS confusion;
//! - [`bodies`]: malformed and oversize bodies and frames;
//! - [`limits`]: floods, slow handshakes and readers, pairing-code guessing.

mod authz;
mod bodies;
mod limits;
mod socket;
mod tokens;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use safestream_tests::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn hs(claims: Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap_or_default()
}

fn b64(b: &[u8]) -> String {
    // URL-safe base64 without padding (no extra dependency for three tokens).
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..c.len() + 1 {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// `alg: none`, unsigned.
fn alg_none(claims: Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// The credentials that must be refused with 401 everywhere (name, credential).
fn bad_credentials(
    device_of_other_relay: &str,
    revoked_device: &str,
) -> Vec<(&'static str, String)> {
    let secret = JWT_SECRET.as_bytes();
    vec![
        ("garbage", "not-a-token".to_owned()),
        (
            "expired",
            hs(json!({"sub": "u1", "exp": now() - 120}), secret),
        ),
        (
            "not-yet-valid",
            hs(
                json!({"sub": "u1", "exp": now() + 3600, "nbf": now() + 600}),
                secret,
            ),
        ),
        (
            "wrongly-signed",
            hs(
                json!({"sub": "u1", "exp": now() + 3600}),
                b"another-secret-0123456789abcdef0123",
            ),
        ),
        (
            "alg-none",
            alg_none(json!({"sub": "u1", "exp": now() + 3600})),
        ),
        (
            "hs384",
            encode(
                &Header::new(Algorithm::HS384),
                &json!({"sub": "u1", "exp": now() + 3600}),
                &EncodingKey::from_secret(secret),
            )
            .unwrap_or_default(),
        ),
        ("no-exp", hs(json!({"sub": "u1"}), secret)),
        ("device-of-another-relay", device_of_other_relay.to_owned()),
        ("revoked-device", revoked_device.to_owned()),
        ("server-key-typo", format!("{SERVER_KEY}x")),
    ]
}

struct Fam {
    relay: Relay,
    backend: Backend,
    p1: Parent,
    p2: Parent,
    d1: (String, String),
    d1b: (String, String),
    d2: (String, String),
    revoked: (String, String),
    cmd1: String,
    notif1: String,
    pairing: (String, String),
}

/// Two families: u1 with child c1 (devices d1, d1b, revoked) and u2 with child c2 (d2).
async fn families(env: Vec<(&str, &str)>) -> R<Fam> {
    let relay = Relay::start_with(env).await?;
    let backend = Backend::new(&relay);
    backend.child("c1", "u1").await?;
    backend.child("c2", "u2").await?;
    let d1 = backend.device("c1", "d1").await?;
    let d1b = backend.device("c1", "d1b").await?;
    let d2 = backend.device("c2", "d2").await?;
    let revoked = backend.device("c1", "old").await?;
    backend.revoke(&revoked.0).await?;
    let p1 = Parent::new(&relay, "u1");
    let p2 = Parent::new(&relay, "u2");
    let cmd1 = p1.command("c1", "PAUSE", 600).await?;
    let n = backend
        .0
        .ok(
            Method::POST,
            "/api/dashboard/notifications",
            Some(json!({"userId": "u1", "type": "RESTRICTED_CONTENT", "title": "t"})),
        )
        .await?;
    let notif1 = n["notification"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pr = Client::new(&relay, "")
        .ok(
            Method::POST,
            "/api/pairing",
            Some(json!({"deviceName": "x"})),
        )
        .await?;
    let pairing = (
        pr["pairingId"].as_str().unwrap_or_default().to_owned(),
        pr["code"].as_str().unwrap_or_default().to_owned(),
    );
    p1.api
        .ok(
            Method::POST,
            "/api/pairing/claim",
            Some(json!({"code": pairing.1})),
        )
        .await?;
    Ok(Fam {
        relay,
        backend,
        p1,
        p2,
        d1,
        d1b,
        d2,
        revoked,
        cmd1,
        notif1,
        pairing,
    })
}

async fn ws_open(relay: &Relay, bearer: Option<&str>) -> R<Ws> {
    let mut req = format!("{}/api/socket", relay.ws())
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Some(b) = bearer {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {b}")
                .parse()
                .map_err(|_| "header".to_owned())?,
        );
    }
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .map_err(|_| "connect timeout".to_owned())?
    .map_err(|e| format!("connect: {e}"))?;
    Ok(ws)
}

async fn send(ws: &mut Ws, v: Value) -> R<()> {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|e| e.to_string())
}

/// Reads until a close frame (its code) or a text frame matching `event` (Ok(None) and the
/// frame's data in `got`), bounded by `t`.
async fn next_event_or_close(ws: &mut Ws, event: &str, t: Duration) -> R<Result<Value, u16>> {
    let deadline = tokio::time::Instant::now() + t;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(format!("no {event} or close in {t:?}")),
            Ok(Some(Ok(Message::Text(s)))) => {
                let v: Value = serde_json::from_str(s.as_str()).unwrap_or(Value::Null);
                if v["event"] == event {
                    return Ok(Ok(v["data"].clone()));
                }
            }
            Ok(Some(Ok(Message::Close(c)))) => {
                return Ok(Err(c.map(|c| u16::from(c.code)).unwrap_or(1005)))
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => return Ok(Err(1006)),
        }
    }
}

async fn close_code(ws: &mut Ws, t: Duration) -> R<u16> {
    match next_event_or_close(ws, "\u{0}never", t).await? {
        Err(c) => Ok(c),
        Ok(_) => Err("unreachable".into()),
    }
}

async fn authed(relay: &Relay, token: &str) -> R<Ws> {
    let mut ws = ws_open(relay, None).await?;
    send(&mut ws, json!({"event": "auth", "data": {"token": token}})).await?;
    match next_event_or_close(&mut ws, "ready", Duration::from_secs(10)).await? {
        Ok(_) => Ok(ws),
        Err(c) => Err(format!("auth closed {c}")),
    }
}
