//! Requests for a Socket.IO session another node holds: no sticky sessions needed.
//!
//! Behind a round-robin balancer, the long-polling requests of one session land on every
//! node in turn. Each node writes its address to the nodes' shared registry (Redis, next to
//! presence, refreshed every 30 s); a request whose session id names another node is sent
//! on to that node's address with a header that stops it from travelling further:
//! - a polling GET or POST is forwarded as one HTTP request (the holder's long-poll waits
//!   as usual; the answer comes back unchanged);
//! - a WebSocket upgrade is accepted here and proxied, message by message, to a WebSocket
//!   this node opens to the holder, for the socket's life.
//!
//! A node that cannot be reached (it died) answers like an unknown session: the client
//! reconnects to whichever node the balancer picks, and recovers from the durable log.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::{unknown_session, FORWARDED};
use crate::app::App;

/// Largest answer read back from the holder of a session.
const FORWARD_MAX_BODY: usize = (1 << 20) + (1 << 14);

/// How often a node rewrites its address (the entry lives three times as long).
const ADVERTISE_EVERY: Duration = Duration::from_secs(30);

/// The HTTP client and the addresses of other nodes, looked up once.
#[derive(Default)]
pub(super) struct Forwarder {
    client: std::sync::OnceLock<reqwest::Client>,
    urls: DashMap<String, String>,
}

impl Forwarder {
    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(32)
                .build()
                .unwrap_or_default()
        })
    }

    /// The base URL of `node`, from the cache or the shared registry.
    async fn url(&self, app: &App, node: &str) -> Option<String> {
        if let Some(u) = self.urls.get(node) {
            return Some(u.clone());
        }
        let u = app.presence.node_url(node).await?;
        self.urls.insert(node.to_string(), u.clone());
        Some(u)
    }

    /// Forwards a polling GET or POST to `node` and returns its answer.
    pub(super) async fn http(&self, app: &App, node: &str, req: Request) -> Response {
        let Some(base) = self.url(app, node).await else {
            return unknown_session();
        };
        let query = req.uri().query().unwrap_or_default().to_string();
        let method = req.method().clone();
        let content_type = req.headers().get(CONTENT_TYPE).cloned();
        let body = match axum::body::to_bytes(req.into_body(), app.cfg.max_frame_bytes).await {
            Ok(b) => b,
            Err(_) => return super::eio_error(3, "Bad request"),
        };
        let url = format!("{base}/api/socket/?{query}");
        let mut r = self
            .client()
            .request(method, &url)
            .header(FORWARDED, "1")
            // A long-poll waits up to a ping interval (and a bit) at the holder.
            .timeout(app.cfg.heartbeat() + Duration::from_secs(15))
            .body(body);
        if let Some(ct) = content_type {
            r = r.header(CONTENT_TYPE, ct);
        }
        metrics::counter!("safestream_sio_forwarded_total").increment(1);
        let resp = match r.send().await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(error = %e, node, "socket.io: forwarding failed");
                // Its node is gone (or its address is stale): look it up again next time.
                self.urls.remove(node);
                return unknown_session();
            }
        };
        let status = resp.status();
        let ct = resp.headers().get(CONTENT_TYPE).cloned();
        // A long-poll answer is at most the holder's 1 MiB backlog: read no more than that.
        let mut resp = resp;
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) if bytes.len() + c.len() <= FORWARD_MAX_BODY => {
                    bytes.extend_from_slice(&c)
                }
                Ok(None) => break,
                _ => return unknown_session(),
            }
        }
        let mut out = (status, bytes).into_response();
        if let Some(ct) = ct {
            out.headers_mut().insert(CONTENT_TYPE, ct);
        }
        out
    }
}

/// Accepts the client's WebSocket here and proxies it to `node`, which holds the session.
pub(super) async fn websocket(app: Arc<App>, node: String, mut req: Request) -> Response {
    let Some(base) = app.sio.forward.url(&app, &node).await else {
        return unknown_session();
    };
    let Some(rest) = base.strip_prefix("http://") else {
        // Forwarding speaks plain HTTP between nodes (a private network); see docs/deploy.md.
        return unknown_session();
    };
    let host = rest.trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let Ok(mut upstream_req) = format!("ws://{host}/api/socket/?{query}").into_client_request()
    else {
        return unknown_session();
    };
    upstream_req
        .headers_mut()
        .insert(FORWARDED, axum::http::HeaderValue::from_static("1"));
    // The local checks first (a refused request costs the holder nothing), then the holder:
    // if it is gone, the client hears so before anything was sent.
    let mut accepted = match crate::ws::accept(&app, &mut req) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    // The upstream socket is a second open file: it holds a permit of its own.
    let Ok(upstream_permit) = app.http_conns.clone().try_acquire_owned() else {
        return unknown_session();
    };
    let upstream = async {
        let tcp = tokio::net::TcpStream::connect(&host).await.ok()?;
        let (ws, _) = tokio_tungstenite::client_async(upstream_req, tcp)
            .await
            .ok()?;
        Some(ws)
    };
    let Ok(Some(mut upstream)) = tokio::time::timeout(Duration::from_secs(5), upstream).await
    else {
        app.sio.forward.urls.remove(&node);
        return unknown_session();
    };
    let response = std::mem::take(&mut accepted.response);
    metrics::counter!("safestream_sio_forwarded_total").increment(1);
    tokio::spawn(async move {
        let _upstream_permit = upstream_permit;
        let Some((mut client, _permit)) = accepted.socket().await else {
            return;
        };
        // Every write is bounded like a session's: a side that stops reading ends the proxy.
        let limit = Duration::from_secs(10);
        loop {
            tokio::select! {
                m = client.next() => match m {
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        if !matches!(tokio::time::timeout(limit, upstream.send(m)).await, Ok(Ok(()))) {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                m = upstream.next() => match m {
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        if !matches!(tokio::time::timeout(limit, client.send(m)).await, Ok(Ok(()))) {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), client.close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), upstream.close(None)).await;
    });
    response
}

/// Keeps this node's address in the shared registry until shutdown.
pub async fn advertise(app: Arc<App>, url: String) {
    let mut shutdown = app.shutdown_signal();
    loop {
        app.presence.advertise(&url).await;
        tokio::select! {
            _ = tokio::time::sleep(ADVERTISE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}
