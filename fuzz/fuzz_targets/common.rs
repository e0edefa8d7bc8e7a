#![allow(dead_code)] // each target uses part of it
//! A relay started once per fuzzing process (in-process, SQLite in a temp dir), with a
//! family already set up: child `c1`, guardian `u1`, device `d1`, one command, one pairing.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const SECRET: &str = "fuzz-jwt-secret-0123456789abcdef0123";
pub const SERVER_KEY: &str = "fuzz-server-key-0123456789abcdef";

pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub router: axum::Router,
    pub addr: SocketAddr,
    pub parent: String,
    pub device: String,
    pub command: String,
    pub pairing: String,
    _running: relay::Running,
    _dir: tempfile::TempDir,
}

/// An HS256 parent JWT for `user`, valid for a day (HMAC-SHA256 by hand).
pub fn parent_token(user: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 86_400;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64.encode(json!({"sub": user, "exp": exp}).to_string());
    let signing_input = format!("{header}.{claims}");
    let sig = hmac_sha256(SECRET.as_bytes(), signing_input.as_bytes());
    format!("{signing_input}.{}", b64.encode(sig))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Calls the router in-process; returns (status, body as JSON or Null).
pub async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
    ip: [u8; 4],
) -> (u16, Value) {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    let mut req = b.body(Body::from(body)).expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = relay::Config::for_tests(
            dir.path().join("fuzz.db").to_string_lossy().into_owned(),
            SECRET,
            SERVER_KEY,
        );
        // Limits out of the way: the fuzzer measures decoding, not the rate limiters.
        cfg.user_request_rate = 1_000_000;
        cfg.frame_rate = 1_000_000;
        cfg.user_frame_rate = 1_000_000;
        cfg.max_conn_per_device = 1_000;
        cfg.max_conn_per_user = 1_000;
        let running = rt.block_on(relay::start(cfg)).expect("relay starts");
        let router = relay::http::router(running.app.clone());
        let addr = running.addr;
        let parent = parent_token("u1");
        let (device, command, pairing) = rt.block_on(async {
            let ip = [127, 0, 0, 1];
            let r = call(
                &router,
                "PUT",
                "/api/children/c1",
                Some(SERVER_KEY),
                None,
                json!({"name": "Mia", "guardians": ["u1"]})
                    .to_string()
                    .into_bytes(),
                ip,
            )
            .await;
            assert!(r.0 == 201 || r.0 == 200, "child: {r:?}");
            let r = call(
                &router,
                "POST",
                "/api/children/c1/devices",
                Some(SERVER_KEY),
                None,
                json!({"name": "tablet"}).to_string().into_bytes(),
                ip,
            )
            .await;
            let device = r.1["token"].as_str().expect("device token").to_owned();
            let r = call(
                &router,
                "POST",
                "/api/dashboard/remote-control",
                Some(&parent),
                None,
                json!({"childId": "c1", "commandType": "PAUSE", "expiresInSeconds": 604800})
                    .to_string()
                    .into_bytes(),
                ip,
            )
            .await;
            let command = r.1["command"]["id"].as_str().expect("command").to_owned();
            let r = call(&router, "POST", "/api/pairing", None, None, vec![], ip).await;
            let pairing = r.1["pairingId"].as_str().expect("pairing").to_owned();
            (device, command, pairing)
        });
        World {
            rt,
            router,
            addr,
            parent,
            device,
            command,
            pairing,
            _running: running,
            _dir: dir,
        }
    })
}
