//! The relay's WebSocket frame decoding and handling: arbitrary text frames sent on an
//! authenticated socket (a device's or a parent's) of a relay running in-process, each
//! followed by a `ping`. The relay must answer the ping (the frame did not wedge the
//! socket) or close with a documented code; no input may panic it.
#![no_main]

use std::sync::Mutex;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

mod common;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Documented close codes a client frame may cause.
const CLOSES: [u16; 5] = [1009, 4400, 4401, 4403, 4429];

static SOCKETS: Mutex<[Option<Ws>; 2]> = Mutex::new([None, None]);
static MARK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn open(w: &common::World, token: &str) -> Ws {
    // No Nagle: the frame and its ping go out at once.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{}/api/socket", w.addr),
        None,
        true,
    )
    .await
    .expect("connect");
    ws.send(Message::Text(
        json!({"event": "auth", "data": {"token": token}})
            .to_string()
            .into(),
    ))
    .await
    .expect("auth");
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains("\"ready\"") => return ws,
            Ok(Some(Ok(_))) => {}
            other => panic!("no ready: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let w = common::world();
    let slot = (data[0] & 1) as usize;
    let text = String::from_utf8_lossy(&data[1..]).into_owned();
    let mut sockets = SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
    w.rt.block_on(async {
        let token = if slot == 0 {
            w.device.clone()
        } else {
            w.parent.clone()
        };
        if sockets[slot].is_none() {
            sockets[slot] = Some(open(w, &token).await);
        }
        let ws = sockets[slot].as_mut().expect("socket");
        let mark = MARK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = ws.send(Message::Text(text.clone().into())).await.is_ok()
            && ws
                .send(Message::Text(
                    json!({"event": "ping", "data": mark}).to_string().into(),
                ))
                .await
                .is_ok();
        let mut closed = !sent;
        while !closed {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("relay frames are JSON");
                    assert!(v["event"].is_string(), "frame without event: {v}");
                    if v["event"] == "pong" && v["data"] == mark {
                        break;
                    }
                }
                Ok(Some(Ok(Message::Close(c)))) => {
                    let code = c.map(|c| u16::from(c.code)).unwrap_or(1005);
                    assert!(
                        CLOSES.contains(&code),
                        "undocumented close {code} after {text:.200}"
                    );
                    closed = true;
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_))) | Ok(None) => closed = true,
                Err(_) => panic!("the relay stopped answering after {text:.200}"),
            }
        }
        if closed {
            sockets[slot] = None;
        }
    });
});
