//! The connection's decisions: when to open the socket, what to send, when it is dead,
//! how long to wait before the next attempt, and what to tell the host.
//!
//! One attempt goes `Opening` (connect timeout 20 s) → `Authenticating` (the `auth` frame
//! is sent; `ready` within 15 s) → `Connected` (heartbeat negotiation, lazy liveness
//! deadline) and ends with a close, an error or silence. Then: 4401/4403 → `Unauthorized`
//! until a new token; a new token → at once; anything else → `Waiting` out the capped
//! full-jitter backoff (reset by a connection that held 30 s, by a new token and by the
//! host's network hint).
//!
//! Token rotation: `auth:rotate` from the relay → [`Action::StoreToken`] (the driver
//! stores the new token durably) → [`Event::TokenRefreshed`] once it is stored → the new
//! token is the current one and is announced with `auth:refresh` on the open socket (its
//! first use, which makes the relay retire the old one). When storing fails the old token
//! stays (still valid: the relay sends the new one again at the next connect).

use std::time::Duration;

use serde_json::Value;

use super::Time;
use crate::backoff::{self, Backoff, Rng};
use crate::platform::ConnectionState;
use crate::protocol::{self, Inbound};
use crate::token::{valid_token, Secret};

/// Time allowed to open the socket (TCP + TLS + upgrade).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed between sending `auth` and receiving `ready`.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection that stayed up this long resets the backoff.
pub(crate) const HELD: Duration = Duration::from_secs(30);
/// Relay heartbeat assumed when `ready` does not say.
pub(crate) const DEFAULT_HEARTBEAT: u64 = 25;

/// Silence after which the connection is considered dead: 2.5 heartbeat intervals.
pub(crate) fn dead_after(interval_secs: u64) -> Duration {
    Duration::from_millis(interval_secs.saturating_mul(2500))
}

/// The heartbeat settings of [`AgentConfig`](crate::AgentConfig).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Heartbeats {
    /// `heartbeat_secs`: asked of the relay in the foreground, if set.
    pub foreground: Option<u32>,
    /// `background_heartbeat_secs`: asked of the relay in the background.
    pub background: u32,
}

/// A frame to send. The tokens are redacted in `Debug`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Outbound {
    /// The first frame, `auth`.
    Auth(Secret),
    /// `auth:refresh` with a new token for the same device.
    Refresh(Secret),
    /// `heartbeat` asking for this interval (seconds).
    Heartbeat(u32),
    /// A `device:status` frame, built already.
    Status(String),
}

impl Outbound {
    /// The frame's text.
    pub(crate) fn to_text(&self) -> String {
        match self {
            Self::Auth(t) => protocol::auth(&t.0),
            Self::Refresh(t) => protocol::auth_refresh(&t.0),
            Self::Heartbeat(secs) => protocol::heartbeat(*secs),
            Self::Status(frame) => frame.clone(),
        }
    }
}

/// What happened, as the driver saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The agent started. Handled once, before anything else matters.
    Start,
    /// The stored token was set, replaced or cleared (`set_token`, `clear_token`,
    /// pairing, or `refresh_token` while not connected).
    TokenChanged(Option<Secret>),
    /// `refresh_token`, or a rotated token stored after [`Action::StoreToken`]: the token
    /// to announce on the open socket with `auth:refresh` (and to use for the next
    /// connections).
    TokenRefreshed(Secret),
    /// The host said the network is back.
    NetworkAvailable,
    /// The host reported its status (a `device:status` frame).
    Status(String),
    /// The app went to the background (`true`) or came back.
    Background(bool),
    /// The socket asked for by [`Action::Open`] is open.
    Opened,
    /// Opening the socket failed.
    OpenFailed(String),
    /// A text frame arrived.
    Frame(String),
    /// A ping, pong or binary message arrived: proof of life.
    Activity,
    /// The relay closed the socket, with this code if it sent one.
    Closed(Option<u16>),
    /// The socket failed (`Some(reason)`) or its stream ended (`None`).
    SocketFailed(Option<String>),
    /// Sending a frame failed.
    SendFailed(String),
    /// [`Link::next_deadline`] passed.
    Timer,
    /// `stop` was called. Final.
    Stop,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Open a socket to the relay; report [`Event::Opened`] or [`Event::OpenFailed`].
    Open,
    /// Send this frame; report [`Event::SendFailed`] (and skip the rest of the actions)
    /// if that fails.
    Send(Outbound),
    /// Close the socket cleanly (or abandon the connect in progress).
    Close,
    /// Drop the socket (or the connect in progress) without a close handshake.
    Drop,
    /// Tell the host the connection state changed.
    Report(ConnectionState),
    /// Hand this `command:new` payload to the command executor.
    Command(Value),
    /// The relay is reachable: make every queued ack due now.
    RetryAcks,
    /// The relay said its clock reads this (Unix ms) now: command expiry is judged by it.
    RelayTime(i64),
    /// `auth:rotate`: store this token durably as the device token; report
    /// [`Event::TokenRefreshed`] once it is stored (nothing when storing failed: the
    /// current token stays).
    StoreToken(Secret),
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Close 4401/4403: do not reconnect with this token.
    Unauthorized,
    /// Reconnect after the backoff; `held` when the connection lasted long enough to
    /// reset it.
    Retry { held: bool },
}

/// An authenticated connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Session {
    /// When `ready` came.
    since: Time,
    /// When the relay last showed life.
    last: Time,
    /// The relay's heartbeat (`ready`).
    relay_hb: u64,
    /// The heartbeat interval the liveness window is based on.
    interval: u64,
    /// The armed liveness deadline: re-armed lazily, not on every inbound message.
    check_at: Time,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Before [`Event::Start`].
    Idle,
    /// No token: waiting for one.
    NoToken,
    /// Opening the socket.
    Opening { until: Time },
    /// `auth` sent, waiting for `ready`.
    Authenticating { until: Time },
    /// Ready; commands flow.
    Connected(Session),
    /// Waiting out the backoff.
    Waiting { until: Time },
    /// The relay refused the token; waiting for a new one.
    Unauthorized,
    /// Stopped for good.
    Stopped,
}

/// The connection state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Link {
    heartbeats: Heartbeats,
    phase: Phase,
    /// The state last reported to the host.
    state: ConnectionState,
    /// The current token.
    token: Option<Secret>,
    /// The token the current (or last) attempt authenticated with.
    attempt_token: Option<Secret>,
    backoff: Backoff,
    /// A network hint not acted on yet: it ends the next backoff wait at once.
    hint_pending: bool,
    /// A token change seen while an attempt was under way: acted on when it ends.
    token_pending: bool,
    /// The last status frame, re-sent after every reconnect.
    status: Option<String>,
    status_dirty: bool,
    background: bool,
    heartbeat_dirty: bool,
    /// An `auth:refresh` to send on the open socket.
    refresh: Option<Secret>,
}

impl Link {
    /// A machine that has not started, with the stored token and the jitter source of its
    /// reconnect backoff.
    pub(crate) fn new(heartbeats: Heartbeats, token: Option<Secret>, rng: Rng) -> Self {
        Self {
            heartbeats,
            phase: Phase::Idle,
            state: ConnectionState::Stopped,
            token,
            attempt_token: None,
            backoff: Backoff::new(backoff::SOCKET, rng),
            hint_pending: false,
            token_pending: false,
            status: None,
            status_dirty: false,
            background: false,
            heartbeat_dirty: false,
            refresh: None,
        }
    }

    /// The connection state last reported.
    #[cfg(test)]
    pub(crate) fn state(&self) -> ConnectionState {
        self.state
    }

    /// Whether [`Event::Stop`] was handled.
    pub(crate) fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Failed attempts counted by the reconnect backoff.
    #[cfg(test)]
    pub(crate) fn backoff_attempt(&self) -> u32 {
        self.backoff.attempt()
    }

    /// When to deliver [`Event::Timer`], if a timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        match &self.phase {
            Phase::Opening { until }
            | Phase::Authenticating { until }
            | Phase::Waiting { until } => Some(*until),
            Phase::Connected(s) => Some(s.check_at),
            Phase::Idle | Phase::NoToken | Phase::Unauthorized | Phase::Stopped => None,
        }
    }

    /// Handles one event at `now`; returns what to do, in order.
    pub(crate) fn handle(&mut self, now: Time, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Stopped {
            return out;
        }
        match event {
            Event::Start => {
                if self.phase == Phase::Idle {
                    self.begin(now, &mut out);
                }
            }
            Event::Stop => {
                self.release(matches!(self.phase, Phase::Opening { .. }), &mut out);
                // Reported even when this machine never left `Stopped`: the agent tells the
                // host `NotPaired` or `Connecting` before its connection task first runs,
                // and a stop that comes first must still end in `Stopped` (the host's
                // connection dedupes repeats).
                self.state = ConnectionState::Stopped;
                out.push(Action::Report(ConnectionState::Stopped));
                self.phase = Phase::Stopped;
            }
            Event::TokenChanged(token) => {
                self.token = token;
                self.token_changed(now, &mut out);
            }
            Event::TokenRefreshed(token) => {
                self.token = Some(token.clone());
                // Announced only on a socket authenticated with another token (the host's
                // hint can arrive after a reconnect that already used it).
                if self.attempt_token.as_ref() != Some(&token) {
                    self.refresh = Some(token);
                    self.outgoing_changed(&mut out);
                }
            }
            Event::NetworkAvailable => {
                if let Phase::Waiting { .. } = self.phase {
                    tracing::info!("network available: reconnecting now");
                    self.backoff.reset();
                    self.begin(now, &mut out);
                } else {
                    self.hint_pending = true;
                }
            }
            Event::Status(frame) => {
                self.status = Some(frame);
                self.status_dirty = true;
                self.outgoing_changed(&mut out);
            }
            Event::Background(background) => {
                if self.background != background {
                    self.background = background;
                    self.heartbeat_dirty = true;
                    self.outgoing_changed(&mut out);
                }
            }
            Event::Opened => {
                if let Phase::Opening { .. } = self.phase {
                    if let Some(token) = self.attempt_token.clone() {
                        out.push(Action::Send(Outbound::Auth(token)));
                    }
                    self.phase = Phase::Authenticating {
                        until: now + READY_TIMEOUT,
                    };
                }
            }
            Event::OpenFailed(reason) => {
                if let Phase::Opening { .. } = self.phase {
                    tracing::warn!(error = %reason, "connect failed");
                    self.end(now, End::Retry { held: false }, &mut out);
                }
            }
            Event::Frame(text) => match &mut self.phase {
                Phase::Authenticating { .. } => match protocol::parse(&text) {
                    Inbound::Ready {
                        heartbeat_sec,
                        server_time_ms,
                    } => {
                        // Before anything else: the commands that follow are judged by it.
                        if let Some(ms) = server_time_ms {
                            out.push(Action::RelayTime(ms));
                        }
                        self.ready(now, heartbeat_sec, &mut out)
                    }
                    other => frame(other, &text, &mut out),
                },
                Phase::Connected(s) => {
                    s.last = now;
                    match protocol::parse(&text) {
                        Inbound::AuthRotate(token) => self.rotate(token, &mut out),
                        other => frame(other, &text, &mut out),
                    }
                }
                _ => {}
            },
            Event::Activity => {
                if let Phase::Connected(s) = &mut self.phase {
                    s.last = now;
                }
            }
            Event::Closed(code) => {
                if let Some(held) = self.held(now) {
                    self.end(now, classify(code, held), &mut out);
                }
            }
            Event::SocketFailed(reason) => {
                if let Some(held) = self.held(now) {
                    match (&reason, held) {
                        (Some(e), Some(_)) => tracing::warn!(error = %e, "socket error"),
                        (Some(e), None) => tracing::warn!(error = %e, "socket error before ready"),
                        (None, _) => {}
                    }
                    self.end(
                        now,
                        End::Retry {
                            held: held.unwrap_or(false),
                        },
                        &mut out,
                    );
                }
            }
            Event::SendFailed(reason) => {
                if self.held(now).is_some() {
                    tracing::warn!(error = %reason, "send failed");
                    self.end(now, End::Retry { held: false }, &mut out);
                }
            }
            Event::Timer => self.timer(now, &mut out),
        }
        out
    }

    /// For an event of the open socket: `None` when there is none (a stale event),
    /// else whether the connection held (`Some(None)` before `ready`).
    fn held(&self, now: Time) -> Option<Option<bool>> {
        match &self.phase {
            Phase::Authenticating { .. } => Some(None),
            Phase::Connected(s) => Some(Some(now.since(s.since) >= HELD)),
            _ => None,
        }
    }

    fn timer(&mut self, now: Time, out: &mut Vec<Action>) {
        match &mut self.phase {
            Phase::Opening { until } if now >= *until => {
                tracing::warn!("connect timed out");
                self.end(now, End::Retry { held: false }, out);
            }
            Phase::Authenticating { until } if now >= *until => {
                tracing::warn!("no ready from the relay in time");
                self.end(now, End::Retry { held: false }, out);
            }
            Phase::Connected(s) if now >= s.check_at => {
                let dead = dead_after(s.interval);
                let due = s.last + dead;
                if due > now {
                    // Traffic came since the deadline was armed: move it, nothing else.
                    s.check_at = due;
                } else {
                    tracing::warn!(
                        silent_ms = dead.as_millis() as u64,
                        "no life from the relay; reconnecting"
                    );
                    let held = now.since(s.since) >= HELD;
                    self.end(now, End::Retry { held }, out);
                }
            }
            Phase::Waiting { until } if now >= *until => self.begin(now, out),
            _ => {}
        }
    }

    fn token_changed(&mut self, now: Time, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Idle | Phase::Stopped => {}
            Phase::NoToken => self.begin(now, out),
            Phase::Unauthorized | Phase::Waiting { .. } => {
                self.backoff.reset();
                self.begin(now, out);
            }
            Phase::Opening { .. } | Phase::Authenticating { .. } => self.token_pending = true,
            Phase::Connected(_) => {
                tracing::info!("token changed; reconnecting");
                self.release(false, out);
                self.begin(now, out);
            }
        }
    }

    /// Starts an attempt with the current token, or waits for one.
    fn begin(&mut self, now: Time, out: &mut Vec<Action>) {
        self.token_pending = false;
        match self.token.clone() {
            None => {
                self.report(ConnectionState::NotPaired, out);
                self.phase = Phase::NoToken;
            }
            Some(token) => {
                self.report(ConnectionState::Connecting, out);
                self.attempt_token = Some(token);
                self.phase = Phase::Opening {
                    until: now + CONNECT_TIMEOUT,
                };
                out.push(Action::Open);
            }
        }
    }

    /// `auth:rotate` on the open socket: store the new token (then switch to it).
    fn rotate(&mut self, token: Option<Secret>, out: &mut Vec<Action>) {
        match token {
            Some(t) if !valid_token(&t.0) => {
                tracing::warn!("auth:rotate with a malformed token ignored");
            }
            None => tracing::warn!("auth:rotate without a token ignored"),
            // Sent again (a second request, a reconnect): already stored and announced.
            Some(t) if self.token.as_ref() == Some(&t) => {
                tracing::debug!("auth:rotate for the current token ignored");
            }
            Some(t) => {
                tracing::info!("relay rotated the device token: storing the new one");
                out.push(Action::StoreToken(t));
            }
        }
    }

    /// `ready` came: connected.
    fn ready(&mut self, now: Time, heartbeat_sec: Option<u64>, out: &mut Vec<Action>) {
        let relay_hb = heartbeat_sec.unwrap_or(DEFAULT_HEARTBEAT);
        self.report(ConnectionState::Connected, out);
        self.status_dirty = self.status.is_some();
        self.heartbeat_dirty = self.background || self.heartbeats.foreground.is_some();
        self.refresh = None;
        out.push(Action::RetryAcks);
        self.phase = Phase::Connected(Session {
            since: now,
            last: now,
            relay_hb,
            interval: relay_hb,
            check_at: now,
        });
        self.outgoing_changed(out);
        if self.token_pending {
            self.token_changed(now, out);
        }
    }

    /// Sends what changed (token refresh, heartbeat, status) when connected, and re-arms
    /// the liveness deadline on the (maybe new) heartbeat interval.
    fn outgoing_changed(&mut self, out: &mut Vec<Action>) {
        let Phase::Connected(s) = &mut self.phase else {
            return;
        };
        if let Some(t) = self.refresh.take() {
            out.push(Action::Send(Outbound::Refresh(t)));
        }
        if self.heartbeat_dirty {
            self.heartbeat_dirty = false;
            let secs = if self.background {
                self.heartbeats.background
            } else {
                self.heartbeats
                    .foreground
                    .unwrap_or(s.relay_hb.clamp(25, 600) as u32)
            };
            // The relay refuses intervals below its own; it then keeps pinging at its pace.
            s.interval = u64::from(secs).max(s.relay_hb);
            out.push(Action::Send(Outbound::Heartbeat(secs)));
        }
        if self.status_dirty {
            self.status_dirty = false;
            if let Some(frame) = &self.status {
                out.push(Action::Send(Outbound::Status(frame.clone())));
            }
        }
        s.check_at = s.last + dead_after(s.interval);
    }

    /// Lets go of the socket or the connect in progress, if any.
    fn release(&mut self, abrupt: bool, out: &mut Vec<Action>) {
        if matches!(
            self.phase,
            Phase::Opening { .. } | Phase::Authenticating { .. } | Phase::Connected(_)
        ) {
            out.push(if abrupt { Action::Drop } else { Action::Close });
        }
    }

    /// The attempt ended (the socket is gone or useless): decide what comes next.
    fn end(&mut self, now: Time, end: End, out: &mut Vec<Action>) {
        self.release(true, out);
        match end {
            End::Unauthorized => {
                // A token changed while this attempt was ending is tried at once.
                if self.token != self.attempt_token {
                    self.backoff.reset();
                    self.begin(now, out);
                    return;
                }
                tracing::warn!(
                    "relay refused the device token; staying offline until a new token is set"
                );
                self.report(ConnectionState::Unauthorized, out);
                self.phase = Phase::Unauthorized;
            }
            End::Retry { held } => {
                if held {
                    self.backoff.reset();
                }
                self.report(ConnectionState::Disconnected, out);
                let delay = self.backoff.next_delay();
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "reconnecting after backoff"
                );
                self.phase = Phase::Waiting { until: now + delay };
                // A hint or a new token that came meanwhile ends the wait at once.
                if self.hint_pending {
                    self.hint_pending = false;
                    tracing::info!("network available: reconnecting now");
                    self.backoff.reset();
                    self.begin(now, out);
                } else if self.token_pending {
                    self.backoff.reset();
                    self.begin(now, out);
                }
            }
        }
    }

    fn report(&mut self, state: ConnectionState, out: &mut Vec<Action>) {
        if self.state != state {
            self.state = state;
            out.push(Action::Report(state));
        }
    }
}

fn classify(code: Option<u16>, held: Option<bool>) -> End {
    let held = held.unwrap_or(false);
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

/// A frame other than the awaited `ready`.
fn frame(inbound: Inbound, text: &str, out: &mut Vec<Action>) {
    match inbound {
        Inbound::CommandNew(data) => out.push(Action::Command(data)),
        Inbound::Error { code } => {
            tracing::warn!(code = %code, "relay answered a frame with an error")
        }
        Inbound::Ready { .. } => tracing::debug!("extra ready frame ignored"),
        Inbound::AuthRotate(_) => tracing::debug!("auth:rotate before ready ignored"),
        Inbound::Other(event) => tracing::debug!(event = %event, "frame ignored"),
        Inbound::Malformed => tracing::warn!(len = text.len(), "malformed frame ignored"),
    }
}
