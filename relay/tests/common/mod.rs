//! Test support: a relay on 127.0.0.1:0 with a fresh database, token minting, and small
//! HTTP / WebSocket clients.
//!
//! The database is a SQLite file, or — when `SAFESTREAM_TEST_DB` is a `postgres://` URL (the
//! test script runs this whole suite a second time that way) — a fresh PostgreSQL database
//! created on that server for each relay.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use relay::{Config, Running};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "test-jwt-secret-0123456789abcdef";
pub const SERVER_KEY: &str = "test-server-key-0123456789abcdef";

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs `claims` with the test secret (HS256).
pub fn jwt(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A valid parent token for `user`, one hour.
pub fn parent(user: &str) -> String {
    jwt(json!({"sub": user, "email": format!("{user}@example.com"), "exp": now_secs() + 3600}))
}

/// A valid admin token.
pub fn admin(user: &str) -> String {
    jwt(json!({"sub": user, "isAdmin": true, "exp": now_secs() + 3600}))
}

/// The database for one test relay: a fresh SQLite file in `dir`, or a fresh PostgreSQL
/// database when `SAFESTREAM_TEST_DB` names a server (see the module doc).
pub fn test_db(dir: &std::path::Path) -> String {
    match std::env::var("SAFESTREAM_TEST_DB") {
        Ok(url) if url.starts_with("postgres") => fresh_pg_database(&url),
        Ok(other) if !other.is_empty() => {
            panic!("SAFESTREAM_TEST_DB must be a postgres:// URL, not {other:?}")
        }
        _ => dir.join("relay.db").to_string_lossy().to_string(),
    }
}

/// Creates `t_<random>` on the server of `admin_url`; returns its URL. Fails loudly.
pub fn fresh_pg_database(admin_url: &str) -> String {
    let name = format!("t_{}", uuid_like());
    let admin = admin_url.to_string();
    let create = format!("CREATE DATABASE {name}");
    // The `postgres` client blocks on its own runtime: run it on a plain thread.
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("SAFESTREAM_TEST_DB={admin}: cannot connect: {e}"));
        c.batch_execute(&create).expect("CREATE DATABASE");
    })
    .join()
    .expect("creating the test database");
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("SAFESTREAM_TEST_DB ends with /<database>");
    format!("{base}/{name}")
}

fn uuid_like() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

pub struct Relay {
    pub running: Option<Running>,
    pub base: String,
    pub ws_url: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub cfg: Config,
}

impl Relay {
    pub async fn start() -> Relay {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let db = test_db(dir.path());
        let mut cfg = Config::for_tests(db, SECRET, SERVER_KEY);
        f(&mut cfg);
        Self::start_cfg(cfg, dir).await
    }

    async fn start_cfg(cfg: Config, dir: tempfile::TempDir) -> Relay {
        let running = relay::start(cfg.clone()).await.expect("relay starts");
        let addr = running.addr;
        Relay {
            running: Some(running),
            base: format!("http://{addr}"),
            ws_url: format!("ws://{addr}/api/socket"),
            dir,
            http: reqwest::Client::new(),
            cfg,
        }
    }

    /// Stops gracefully and starts again on the same database (a new port).
    pub async fn restart(mut self) -> Relay {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let mut cfg = self.cfg.clone();
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        Self::start_cfg(cfg, self.dir).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Any request; returns (status, JSON body or Null).
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.req("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.req("POST", path, Some(token), Some(body)).await
    }

    /// Creates a child (as the backend) with these guardians.
    pub async fn child(&self, id: &str, guardians: &[&str]) {
        let (s, b) = self
            .req(
                "PUT",
                &format!("/api/children/{id}"),
                Some(SERVER_KEY),
                Some(json!({"name": format!("Child {id}"), "guardians": guardians, "dailyLimitMinutes": 60})),
            )
            .await;
        assert!(s == 201 || s == 200, "creating child: {s} {b}");
    }

    /// Registers a device (as the backend); returns (device id, token).
    pub async fn device(&self, child: &str) -> (String, String) {
        let (s, b) = self
            .post(
                &format!("/api/children/{child}/devices"),
                SERVER_KEY,
                json!({"name": "tablet"}),
            )
            .await;
        assert_eq!(s, 201, "creating device: {b}");
        (
            b["deviceId"].as_str().unwrap().to_string(),
            b["token"].as_str().unwrap().to_string(),
        )
    }

    /// Sends a command as `parent_token`; returns the command JSON.
    pub async fn command(&self, parent_token: &str, child: &str, kind: &str) -> Value {
        let (s, b) = self
            .post(
                "/api/dashboard/remote-control",
                parent_token,
                json!({"childId": child, "commandType": kind}),
            )
            .await;
        assert_eq!(s, 201, "creating command: {b}");
        b["command"].clone()
    }

    /// A device's ack.
    pub async fn ack(&self, device_token: &str, id: &str, status: &str) -> (u16, Value) {
        self.req(
            "PATCH",
            &format!("/api/dashboard/remote-control/{id}"),
            Some(device_token),
            Some(json!({"status": status})),
        )
        .await
    }
}

pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub enum Next {
    Event(Value),
    Closed(Option<u16>),
    Timeout,
}

impl Ws {
    /// Opens a socket and sends the auth frame (does not wait for `ready`).
    pub async fn open(relay: &Relay, token: &str, last_seq: Option<i64>) -> Ws {
        let (inner, _) = tokio_tungstenite::connect_async(relay.ws_url.as_str())
            .await
            .expect("ws connect");
        let mut ws = Ws { inner };
        let mut data = json!({"token": token});
        if let Some(s) = last_seq {
            data["lastSeq"] = json!(s);
        }
        ws.send(json!({"event": "auth", "data": data})).await;
        ws
    }

    /// Opens, authenticates and returns the `ready` data.
    pub async fn ready(relay: &Relay, token: &str) -> (Ws, Value) {
        Self::ready_from(relay, token, None).await
    }

    pub async fn ready_from(relay: &Relay, token: &str, last_seq: Option<i64>) -> (Ws, Value) {
        let mut ws = Self::open(relay, token, last_seq).await;
        let ready = ws.expect("ready").await;
        (ws, ready)
    }

    pub async fn send(&mut self, v: Value) {
        self.inner
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        let _ = self.inner.send(m).await;
    }

    /// The next event frame (whole frame, with `event`, `data`, `seq`), a close, or a timeout.
    pub async fn next(&mut self, wait: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.inner.next()).await {
                Err(_) => return Next::Timeout,
                Ok(None) => return Next::Closed(None),
                Ok(Some(Err(_))) => return Next::Closed(None),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Next::Event(serde_json::from_str(&t).expect("frame is JSON"))
                }
                Ok(Some(Ok(Message::Close(c)))) => {
                    return Next::Closed(c.map(|c| u16::from(c.code)))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Waits (5 s) for an event named `name`, skipping others; returns the whole frame's data.
    pub async fn expect(&mut self, name: &str) -> Value {
        self.expect_frame(name).await["data"].clone()
    }

    /// Like `expect` but returns the whole frame.
    pub async fn expect_frame(&mut self, name: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Event(f) if f["event"] == name => return f,
                Next::Event(_) => continue,
                Next::Closed(c) => panic!("socket closed ({c:?}) while waiting for {name}"),
                Next::Timeout => panic!("timed out waiting for {name}"),
            }
        }
    }

    /// Asserts that the socket stays open for `wait` and that no event named `name` arrives in
    /// that time (other events are skipped). A close or a read error within `wait` fails the
    /// test: a closed socket receives nothing, so it would prove nothing. A test that expects
    /// the close uses [`Ws::expect_close`].
    pub async fn expect_none(&mut self, name: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Event(f) if f["event"] == name => panic!("unexpected {name}: {f}"),
                Next::Event(_) => continue,
                Next::Closed(c) => panic!(
                    "socket closed ({c:?}) while checking that no {name} arrives within {wait:?}"
                ),
                Next::Timeout => return,
            }
        }
    }

    /// Waits (up to `wait`) for the close; returns its code.
    pub async fn expect_close(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Event(_) => continue,
                Next::Closed(c) => return c,
                Next::Timeout => panic!("socket not closed within {wait:?}"),
            }
        }
    }
}
