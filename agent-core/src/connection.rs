//! The connection task: connect, first-frame auth, `ready`, read loop with a lazily
//! re-armed liveness deadline, reconnect with capped full-jitter backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::agent::{lock, stopped, Inner};
use crate::backoff::{self, Backoff};
use crate::platform::ConnectionState;
use crate::protocol::{self, Inbound};
use crate::token::Secret;
use crate::transport::{Socket, WsEvent};

/// Time allowed to open the socket (TCP + TLS + upgrade).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed between sending `auth` and receiving `ready`.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection that stayed up this long resets the backoff.
pub(crate) const HELD: Duration = Duration::from_secs(30);
/// Relay heartbeat assumed when `ready` does not say.
pub(crate) const DEFAULT_HEARTBEAT: u64 = 25;

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// `stop` was called.
    Stopped,
    /// Close 4401/4403: do not reconnect with this token.
    Unauthorized,
    /// Reconnect after the backoff; `held` when the connection lasted long enough to reset it.
    Retry { held: bool },
    /// Reconnect at once (new token).
    Now,
}

/// Silence after which the connection is considered dead: 2.5 heartbeat intervals.
pub(crate) fn dead_after(interval_secs: u64) -> Duration {
    Duration::from_millis(interval_secs.saturating_mul(2500))
}

pub(crate) async fn run(inner: Arc<Inner>) {
    let mut stop = inner.stop_tx.subscribe();
    let mut backoff = Backoff::new(backoff::SOCKET);
    loop {
        if inner.is_stopped() {
            break;
        }
        let Some(token) = inner.current_token() else {
            inner.set_state(ConnectionState::NotPaired);
            tokio::select! {
                () = inner.token_changed.notified() => continue,
                () = stopped(&mut stop) => break,
            }
        };
        inner.set_state(ConnectionState::Connecting);
        match session(&inner, &token, &mut stop).await {
            End::Stopped => break,
            End::Now => continue,
            End::Unauthorized => {
                // A token refreshed while this session was ending is tried at once.
                if inner.current_token().map(|t| t.0) != Some(token.0.clone()) {
                    backoff.reset();
                    continue;
                }
                tracing::warn!(
                    "relay refused the device token; staying offline until a new token is set"
                );
                inner.set_state(ConnectionState::Unauthorized);
                tokio::select! {
                    () = inner.token_changed.notified() => backoff.reset(),
                    () = stopped(&mut stop) => break,
                }
            }
            End::Retry { held } => {
                if held {
                    backoff.reset();
                }
                inner.set_state(ConnectionState::Disconnected);
                let delay = backoff.next_delay();
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "reconnecting after backoff"
                );
                tokio::select! {
                    () = sleep(delay) => {}
                    () = inner.network_hint.notified() => {
                        tracing::info!("network available: reconnecting now");
                        backoff.reset();
                    }
                    () = inner.token_changed.notified() => backoff.reset(),
                    () = stopped(&mut stop) => break,
                }
            }
        }
    }
    inner.set_state(ConnectionState::Stopped);
}

fn classify(code: Option<u16>, held: bool) -> End {
    match code {
        Some(4401) | Some(4403) => End::Unauthorized,
        Some(c @ (4400 | 1009)) => {
            tracing::error!(code = c, "relay closed the socket for a protocol violation");
            End::Retry { held: false }
        }
        Some(c) => {
            tracing::info!(code = c, "relay closed the socket");
            End::Retry { held }
        }
        None => End::Retry { held },
    }
}

async fn session(inner: &Arc<Inner>, token: &Secret, stop: &mut watch::Receiver<bool>) -> End {
    let connect = timeout(
        CONNECT_TIMEOUT,
        inner.transport.connect(&inner.endpoints.socket),
    );
    let mut sock = tokio::select! {
        r = connect => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "connect failed");
                return End::Retry { held: false };
            }
            Err(_) => {
                tracing::warn!("connect timed out");
                return End::Retry { held: false };
            }
        },
        () = stopped(stop) => return End::Stopped,
    };
    let end = tokio::select! {
        e = authenticated(inner, token, &mut *sock) => e,
        () = stopped(stop) => End::Stopped,
    };
    if end == End::Stopped {
        sock.close().await;
    }
    end
}

/// Authenticates, then runs the read loop until the connection ends. Cancel-safe at every
/// await (the caller races it against `stop`).
async fn authenticated(inner: &Arc<Inner>, token: &Secret, sock: &mut dyn Socket) -> End {
    if let Err(e) = sock.send(protocol::auth(&token.0)).await {
        tracing::warn!(error = %e, "sending auth failed");
        return End::Retry { held: false };
    }
    let relay_hb = match timeout(READY_TIMEOUT, wait_ready(inner, sock)).await {
        Ok(Ok(hb)) => hb.unwrap_or(DEFAULT_HEARTBEAT),
        Ok(Err(end)) => return end,
        Err(_) => {
            tracing::warn!("no ready from the relay in time");
            return End::Retry { held: false };
        }
    };
    let connected_at = Instant::now();
    inner.set_state(ConnectionState::Connected);
    {
        let mut o = lock(&inner.outgoing);
        o.status_dirty = o.status.is_some();
        o.heartbeat_dirty = o.background || inner.cfg.heartbeat_secs.is_some();
        o.refresh = None;
    }
    inner.retry_acks_now();

    let mut interval = relay_hb;
    let mut last = Instant::now();
    if let Err(end) = flush_outgoing(inner, sock, relay_hb, &mut interval).await {
        return end;
    }
    let mut dead = dead_after(interval);
    // One deadline, re-armed lazily: inbound traffic only records `last`; when the timer
    // fires early it is moved to `last + dead`. No wake-ups between heartbeats.
    let deadline = sleep_until(last + dead);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ev = sock.recv() => {
                last = Instant::now();
                let held = connected_at.elapsed() >= HELD;
                match ev {
                    Some(WsEvent::Text(t)) => handle_frame(inner, &t),
                    Some(WsEvent::Activity) => {}
                    Some(WsEvent::Close(code)) => return classify(code, held),
                    Some(WsEvent::Error(e)) => {
                        tracing::warn!(error = %e, "socket error");
                        return End::Retry { held };
                    }
                    None => return End::Retry { held },
                }
            }
            () = &mut deadline => {
                let due = last + dead;
                if due > Instant::now() {
                    deadline.as_mut().reset(due);
                } else {
                    tracing::warn!(silent_ms = dead.as_millis() as u64, "no life from the relay; reconnecting");
                    return End::Retry { held: connected_at.elapsed() >= HELD };
                }
            }
            () = inner.outgoing_changed.notified() => {
                if let Err(end) = flush_outgoing(inner, sock, relay_hb, &mut interval).await {
                    return end;
                }
                dead = dead_after(interval);
                deadline.as_mut().reset(last + dead);
            }
            () = inner.token_changed.notified() => {
                tracing::info!("token changed; reconnecting");
                sock.close().await;
                return End::Now;
            }
        }
    }
}

/// Reads until `ready`. Returns its heartbeat, or how the session ended.
async fn wait_ready(inner: &Arc<Inner>, sock: &mut dyn Socket) -> Result<Option<u64>, End> {
    loop {
        match sock.recv().await {
            Some(WsEvent::Text(t)) => match protocol::parse(&t) {
                Inbound::Ready { heartbeat_sec } => return Ok(heartbeat_sec),
                _ => handle_frame(inner, &t),
            },
            Some(WsEvent::Activity) => {}
            Some(WsEvent::Close(code)) => return Err(classify(code, false)),
            Some(WsEvent::Error(e)) => {
                tracing::warn!(error = %e, "socket error before ready");
                return Err(End::Retry { held: false });
            }
            None => return Err(End::Retry { held: false }),
        }
    }
}

/// Sends what changed (token refresh, heartbeat, status) and updates the heartbeat
/// interval the liveness deadline is based on.
async fn flush_outgoing(
    inner: &Arc<Inner>,
    sock: &mut dyn Socket,
    relay_hb: u64,
    interval: &mut u64,
) -> Result<(), End> {
    let mut frames = Vec::new();
    {
        let mut o = lock(&inner.outgoing);
        if let Some(t) = o.refresh.take() {
            frames.push(protocol::auth_refresh(&t.0));
        }
        if o.heartbeat_dirty {
            o.heartbeat_dirty = false;
            let secs = if o.background {
                inner.cfg.background_heartbeat_secs
            } else {
                inner
                    .cfg
                    .heartbeat_secs
                    .unwrap_or(relay_hb.clamp(25, 600) as u32)
            };
            // The relay refuses intervals below its own; it then keeps pinging at its pace.
            *interval = u64::from(secs).max(relay_hb);
            frames.push(protocol::heartbeat(secs));
        }
        if o.status_dirty {
            o.status_dirty = false;
            if let Some(s) = &o.status {
                frames.push(s.clone());
            }
        }
    }
    for f in frames {
        if let Err(e) = sock.send(f).await {
            tracing::warn!(error = %e, "send failed");
            return Err(End::Retry { held: false });
        }
    }
    Ok(())
}

fn handle_frame(inner: &Arc<Inner>, text: &str) {
    match protocol::parse(text) {
        Inbound::CommandNew(data) => {
            inner.handle_commands(std::slice::from_ref(&data), "socket");
        }
        Inbound::Error { code } => {
            tracing::warn!(code = %code, "relay answered a frame with an error")
        }
        Inbound::Ready { .. } => tracing::debug!("extra ready frame ignored"),
        Inbound::Other(event) => tracing::debug!(event = %event, "frame ignored"),
        Inbound::Malformed => tracing::warn!(len = text.len(), "malformed frame ignored"),
    }
}
