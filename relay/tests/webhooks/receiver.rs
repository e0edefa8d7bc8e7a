//! A webhook receiver on 127.0.0.1 for the tests: it verifies every request with the
//! Standard Webhooks reference crate (`standardwebhooks`, an implementation apart from the
//! relay's), answers a configurable status after a configurable delay, records everything,
//! and notes any event id that arrives while a request with the same id is still open (two
//! senders at once).
//!
//! Shared by the relay's suite (`relay/tests/webhooks`) and the multi-process suites
//! (`tests/tests/webhooks.rs`, through `#[path]`).
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Got {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-signature`.
    pub signature: String,
    /// The body, parsed.
    pub body: Value,
    /// For each configured secret, whether the request verified with it.
    pub verified: Vec<bool>,
    /// What the receiver answered.
    pub status: u16,
}

impl Got {
    /// Whether it verified with every configured secret.
    pub fn verified_by_all(&self) -> bool {
        !self.verified.is_empty() && self.verified.iter().all(|v| *v)
    }
}

struct Shared {
    secrets: Vec<String>,
    log: Mutex<Vec<Got>>,
    answer: AtomicU16,
    delay_ms: AtomicU64,
    open: Mutex<HashSet<String>>,
    overlaps: Mutex<Vec<String>>,
    /// The id of every request as it arrives (also those the sender gave up on).
    arrived: Mutex<Vec<String>>,
}

/// A running receiver.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The endpoint URL (`http://127.0.0.1:<port>/hook`).
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver on a free port that verifies with `secrets`.
    pub async fn start(secrets: &[&str]) -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap(), secrets).await
    }

    /// A receiver on `addr` (to come back up on the port a stopped one had).
    pub async fn start_on(addr: SocketAddr, secrets: &[&str]) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("receiver: binding {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            log: Mutex::new(Vec::new()),
            answer: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            open: Mutex::new(HashSet::new()),
            overlaps: Mutex::new(Vec::new()),
            arrived: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Receiver {
            addr,
            url: format!("http://{addr}/hook"),
            shared,
            stop: Some(stop),
            task,
        }
    }

    /// The status answered from now on (200 by default).
    pub fn answer(&self, status: u16) {
        self.shared.answer.store(status, Ordering::SeqCst);
    }

    /// How long each request is held before the answer.
    pub fn delay(&self, d: Duration) {
        self.shared
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Got> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub fn delivered(&self) -> Vec<Got> {
        self.received()
            .into_iter()
            .filter(|g| (200..300).contains(&g.status))
            .collect()
    }

    /// The id of every request as it arrived, answered or not (a sender that timed out
    /// drops the request before it is answered and recorded in [`Receiver::received`]).
    pub fn arrived(&self) -> Vec<String> {
        self.shared.arrived.lock().unwrap().clone()
    }

    /// Ids of requests that arrived while one with the same id was still open.
    pub fn overlaps(&self) -> Vec<String> {
        self.shared.overlaps.lock().unwrap().clone()
    }

    /// Waits until `done(requests so far)`, or fails the test after `within` saying `what`.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[Got]) -> bool,
    ) -> Vec<Got> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "receiver: {what} did not happen within {within:?}; got {} requests: {:?}",
                    got.len(),
                    got.iter()
                        .map(|g| (g.status, g.body["type"].clone()))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops listening and closes its connections (the endpoint is down).
    pub async fn stop(mut self) -> SocketAddr {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        self.addr
    }
}

async fn hook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    s.arrived.lock().unwrap().push(id.clone());
    let fresh = s.open.lock().unwrap().insert(id.clone());
    if !fresh {
        s.overlaps.lock().unwrap().push(id.clone());
    }
    // Closed when the request ends, answered or dropped (the sender gave up on it).
    let _open = fresh.then(|| Open(s.clone(), id.clone()));
    let verified = s
        .secrets
        .iter()
        .map(|secret| {
            standardwebhooks::Webhook::new(secret)
                .map(|wh| wh.verify(&body, &headers).is_ok())
                .unwrap_or(false)
        })
        .collect();
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = s.answer.load(Ordering::SeqCst);
    s.log.lock().unwrap().push(Got {
        id: id.clone(),
        signature: headers
            .get("webhook-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified,
        status,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An open request's id, forgotten when the request ends.
struct Open(Arc<Shared>, String);

impl Drop for Open {
    fn drop(&mut self) {
        if let Ok(mut open) = self.0.open.lock() {
            open.remove(&self.1);
        }
    }
}
