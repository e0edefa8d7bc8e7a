//! Clients: REST setup through the backend key, and many small WebSocket clients spread over
//! source addresses 127.0.0.2–127.0.0.51.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::proc::{SECRET, SERVER_KEY};

/// A client socket.
pub type Ws = WebSocketStream<TcpStream>;

/// Clients speak Socket.IO (Engine.IO v4 over WebSocket) instead of the native protocol
/// (`--socketio`; the `idle` and `fanout` phases).
pub static SOCKETIO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether clients speak Socket.IO.
pub fn socketio() -> bool {
    SOCKETIO.load(Ordering::Relaxed)
}

/// The clients' protocol, for table headings.
pub fn protocol() -> &'static str {
    if socketio() {
        "Socket.IO over WebSocket"
    } else {
        "native"
    }
}

/// A text frame's event name and data, in the clients' protocol: native
/// `{"event": name, "data": data}` or Socket.IO `42[name, data, ...]` (the relay's Socket.IO
/// front end adds the event's position as a last argument). `None` for anything else.
pub fn event(t: &str) -> Option<(String, Value)> {
    event_in(t, socketio())
}

/// [`event`] for a given protocol (Socket.IO when `sio`).
fn event_in(t: &str, sio: bool) -> Option<(String, Value)> {
    if sio {
        let v: Value = serde_json::from_str(t.strip_prefix("42")?).ok()?;
        let a = v.as_array()?;
        let data = a.get(1).cloned().unwrap_or(Value::Null);
        Some((a.first()?.as_str()?.to_string(), data))
    } else {
        // `get_mut`, not indexing: a frame that is JSON but not an object must not panic.
        let mut v: Value = serde_json::from_str(t).ok()?;
        let data = v.get_mut("data").map(Value::take).unwrap_or(Value::Null);
        Some((v.get("event")?.as_str()?.to_string(), data))
    }
}

/// A parent JWT for `user`, valid two hours.
pub fn parent_token(user: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        + 7200;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": user, "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("HS256 encode")
}

/// An HTTP client sized for the load.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .build()
        .expect("http client")
}

/// Runs `f(i)` for `0..n` with `conc` in flight; panics on the first error.
pub async fn each<F, Fut, T>(n: usize, conc: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    futures_util::stream::iter(0..n)
        .map(f)
        .buffered(conc)
        .collect()
        .await
}

/// Creates child `id` with guardians (backend key).
pub async fn put_child(http: &reqwest::Client, base: &str, id: &str, guardians: &[String]) {
    let r = http
        .put(format!("{base}/api/children/{id}"))
        .bearer_auth(SERVER_KEY)
        .json(&json!({"name": id, "guardians": guardians}))
        .send()
        .await
        .expect("PUT child");
    assert!(r.status().is_success(), "PUT child {}", r.status());
}

/// Registers a device; returns its token.
pub async fn new_device(http: &reqwest::Client, base: &str, child: &str) -> String {
    let r = http
        .post(format!("{base}/api/children/{child}/devices"))
        .bearer_auth(SERVER_KEY)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .expect("POST device");
    let v: Value = r.json().await.expect("device JSON");
    v["token"].as_str().expect("token").to_string()
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
}

/// Opens a socket from source address `127.0.0.(2 + i % 50)`, authenticates, waits `ready`.
pub async fn connect(addr: &str, i: usize, token: &str) -> Result<Ws, String> {
    let src = Ipv4Addr::new(127, 0, 0, 2 + (i % 50) as u8);
    let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    sock.bind(SocketAddr::from((src, 0)))
        .map_err(|e| format!("bind {src}: {e}"))?;
    let target: SocketAddr = addr.parse().map_err(|e| format!("{e}"))?;
    let stream = sock
        .connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let sio = socketio();
    let url = if sio {
        format!("ws://{addr}/api/socket/?EIO=4&transport=websocket")
    } else {
        format!("ws://{addr}/api/socket")
    };
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    // Socket.IO: the server's `open` packet comes first, then the client's CONNECT.
    let auth = if sio {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.starts_with('0') => {}
            other => return Err(format!("no Engine.IO open packet: {other:?}")),
        }
        format!("40{}", json!({"token": token}))
    } else {
        json!({"event": "auth", "data": {"token": token}}).to_string()
    };
    ws.send(Message::Text(auth.into()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"ready\"") => return Ok(ws),
            Ok(Some(Ok(Message::Text(t)))) if t.starts_with("44") => {
                return Err(format!("refused: {t}"))
            }
            Ok(Some(Ok(Message::Close(c)))) => return Err(format!("closed: {c:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("closed".into()),
            Err(_) => return Err("no ready in 30 s".into()),
        }
    }
}

/// Latency samples in microseconds.
#[derive(Default)]
pub struct Samples(Mutex<Vec<u64>>);

impl Samples {
    /// Adds one.
    pub fn push(&self, us: u64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(us);
    }
    /// (count, p50, p99, max) in milliseconds.
    pub fn summary(&self) -> (usize, f64, f64, f64) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if v.is_empty() {
            return (0, f64::NAN, f64::NAN, f64::NAN);
        }
        v.sort_unstable();
        let pct = |p: f64| {
            v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0
        };
        (
            v.len(),
            pct(0.50),
            pct(0.99),
            *v.last().unwrap_or(&0) as f64 / 1000.0,
        )
    }
}

/// Counts events per 100 ms window to find a peak rate.
pub struct RateMeter {
    start: Instant,
    buckets: Mutex<Vec<u32>>,
    /// Total events.
    pub total: AtomicU64,
}

impl RateMeter {
    /// A meter starting now.
    pub fn new() -> Arc<RateMeter> {
        Arc::new(RateMeter {
            start: Instant::now(),
            buckets: Mutex::new(vec![0; 6000]),
            total: AtomicU64::new(0),
        })
    }
    /// Counts one event now.
    pub fn hit(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let b = (self.start.elapsed().as_millis() / 100) as usize;
        let mut v = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b < v.len() {
            v[b] += 1;
        }
    }
    /// The highest rate over any 100 ms window, per second.
    pub fn peak_per_sec(&self) -> u64 {
        let v = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().copied().max().unwrap_or(0) as u64 * 10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_in_either_protocol_and_anything_else_is_none() {
        let native = r#"{"event":"command:status","data":{"commandId":"c1"}}"#;
        let (name, data) = event_in(native, false).expect("a native frame");
        assert_eq!(name, "command:status");
        assert_eq!(data["commandId"], "c1");
        // The relay's Socket.IO front end adds the position as a last argument.
        let sio = r#"42["command:new",{"id":"c2"},"17"]"#;
        let (name, data) = event_in(sio, true).expect("a Socket.IO event");
        assert_eq!(name, "command:new");
        assert_eq!(data["id"], "c2");
        // A frame without data has null data.
        assert_eq!(
            event_in(r#"{"event":"ready"}"#, false).map(|e| e.1),
            Some(Value::Null)
        );
        // Not events: JSON that is not an object (no panic), pings, the other protocol.
        for t in [r#""command:new""#, "[1,2]", "2", "not json", native] {
            assert!(event_in(t, true).is_none(), "{t} read as Socket.IO");
        }
        for t in [r#""command:new""#, "[1,2]", "2", sio, r#"{"data":{}}"#] {
            assert!(event_in(t, false).is_none(), "{t} read as native");
        }
    }
}
