//! The dispatch loop: a socket's [`Session`] state and its steady state, which waits on the
//! socket and the mailbox, writes what the mailbox holds and routes client frames.

use std::collections::HashSet;
use std::sync::Arc;
use wire::event;

use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::frames::{
    close, error_frame, frame, send, ClientFrame, FRAME_WINDOW, MAX_BAD_FRAMES, MAX_DROPPED,
    SEND_TIMEOUT,
};
use super::Socket;
use crate::app::{per_second, App};
use crate::hub::{Conn, Presence, CLOSE_PROTOCOL, CLOSE_RATE_LIMITED};
use crate::model::now_ms;

/// Who is on the other end.
pub(super) enum Who {
    Parent { user_id: String, exp: i64 },
    Device { device_id: String, child_id: String },
}

/// What handling one client frame leads to.
pub(super) enum Handled {
    Nothing,
    Reply(Message),
    /// A malformed or unexpected frame: answered, and counted towards close 4400.
    Bad(Message),
    Close(u16, &'static str),
    /// The device's presence changed: tell the guardians.
    Presence(Presence),
    /// `auth:refresh` with a token of the device's own: check its generation (a write
    /// when it promotes a pending one), then answer.
    DeviceRefresh(i64),
}

/// One socket's state after authentication.
pub(super) struct Session<'a> {
    pub(super) app: &'a Arc<App>,
    pub(super) conn: Arc<Conn>,
    pub(super) who: Who,
    pub(super) identity: String,
    pub(super) limiter: DefaultDirectRateLimiter,
    pub(super) dropped: u32,
    pub(super) bad: u32,
    pub(super) window_start: std::time::Instant,
    /// Parents: the position of the last event written to this socket. Positions are per
    /// user and gap-free, so a live frame at or below it was already sent (skipped), and one
    /// further ahead means events in between are still in flight on the bus: they are read
    /// from the database and sent first, in order.
    pub(super) last_seq: i64,
    /// Commands sent from the database at connect; skipped once if they also arrive live.
    // Boxed: 8 bytes in every session instead of 48; it exists only just after connect.
    #[allow(clippy::box_collection)]
    pub(super) sent_at_connect: Option<Box<HashSet<String>>>,
}

impl<'a> Session<'a> {
    pub(super) fn new(app: &'a Arc<App>, conn: Arc<Conn>, who: Who, identity: String) -> Self {
        Session {
            app,
            conn,
            who,
            identity,
            limiter: RateLimiter::direct(per_second(app.cfg.frame_rate)),
            dropped: 0,
            bad: 0,
            window_start: std::time::Instant::now(),
            last_seq: 0,
            sent_at_connect: None,
        }
    }

    /// The socket's steady state: wait for the mailbox or a client frame. Kept small: this
    /// future lives as long as the socket (thousands of idle ones), so everything that
    /// handles a wake-up is a separate, boxed future that exists only while it runs.
    pub(super) async fn run(&mut self, ws: &mut Socket) {
        loop {
            let msg = tokio::select! {
                biased;
                _ = self.conn.notified() => None,
                msg = ws.next() => Some(msg),
            };
            let go_on = match msg {
                None => Box::pin(self.drain(ws)).await,
                // Pongs (most of an idle socket's traffic) need nothing more.
                Some(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {
                    self.conn.touch(&self.app.hub);
                    true
                }
                Some(msg) => Box::pin(self.on_message(ws, msg)).await,
            };
            if !go_on {
                return;
            }
        }
    }

    /// One frame (or the end) from the client. False when the socket must end.
    async fn on_message(
        &mut self,
        ws: &mut Socket,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> bool {
        match msg {
            Some(Ok(Message::Text(t))) => {
                self.conn.touch(&self.app.hub);
                if self.window_start.elapsed() >= FRAME_WINDOW {
                    self.window_start = std::time::Instant::now();
                    self.dropped = 0;
                    self.bad = 0;
                }
                if !self.allow_frame() {
                    self.dropped += 1;
                    if self.dropped >= MAX_DROPPED {
                        close(ws, CLOSE_RATE_LIMITED, "too many frames").await;
                        return false;
                    }
                    return self.dropped != 1
                        || send(
                            ws,
                            error_frame(
                                wire::error::frame::RATE_LIMITED,
                                "too many frames; slow down",
                            ),
                        )
                        .await;
                }
                match self.handle(&t) {
                    Handled::Nothing => true,
                    Handled::Reply(m) => send(ws, m).await,
                    Handled::Bad(m) => {
                        self.bad += 1;
                        if self.bad >= MAX_BAD_FRAMES {
                            close(ws, CLOSE_PROTOCOL, "too many malformed frames").await;
                            return false;
                        }
                        send(ws, m).await
                    }
                    Handled::Close(code, reason) => {
                        close(ws, code, reason).await;
                        false
                    }
                    Handled::DeviceRefresh(gen) => Box::pin(self.device_refresh(ws, gen)).await,
                    Handled::Presence(p) => {
                        if let Who::Device { device_id, .. } = &self.who {
                            self.app.presence.announce(device_id, &p).await;
                            Box::pin(crate::presence::publish(self.app, device_id, &p)).await;
                        }
                        true
                    }
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                self.conn.touch(&self.app.hub);
                true
            }
            Some(Ok(Message::Binary(_))) => {
                close(ws, CLOSE_PROTOCOL, "binary frames are not accepted").await;
                false
            }
            Some(Ok(Message::Close(_))) | None => false,
            Some(Ok(Message::Frame(_))) => true,
            Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                close(ws, wire::close::TOO_BIG, "frame too large").await;
                false
            }
            Some(Err(_)) => false,
        }
    }

    /// Writes whatever the mailbox holds. False when the socket must end.
    async fn drain(&mut self, ws: &mut Socket) -> bool {
        let batch = self.conn.take();
        if let Some((code, reason)) = batch.close {
            close(ws, code, reason).await;
            return false;
        }
        if batch.catch_up && !Box::pin(self.catch_up(ws)).await {
            return false;
        }
        if let Some((gen, issued_at)) = batch.rotation {
            if !self.send_rotation(ws, gen, issued_at).await {
                return false;
            }
        }
        let now = now_ms();
        // Parent events carry gap-free positions. A live event further ahead than the next
        // position means the ones in between were committed (positions are handed out in
        // commit order) but are still on their way from another writer or node: those are
        // read from the database and sent first (`fill_gaps`). The common case has no gap.
        let mut next = self.last_seq;
        let gap = batch.frames.iter().filter_map(|f| f.seq).any(|s| {
            if s == next + 1 {
                next = s;
            }
            s > next + 1
        });
        if gap {
            return Box::pin(self.fill_gaps(ws, batch, now)).await;
        }
        let sent_at_connect = self.sent_at_connect.take();
        let mut delivered = Vec::new();
        let mut last_seq = self.last_seq;
        let write = async {
            if batch.ping {
                ws.feed(Message::Ping(Default::default())).await?;
            }
            for f in &batch.frames {
                if let Some(s) = f.seq {
                    if s <= last_seq {
                        continue;
                    }
                    last_seq = s;
                }
                if let Some(meta) = &f.command {
                    if meta.expires_at <= now
                        || sent_at_connect
                            .as_ref()
                            .is_some_and(|s| s.contains(&meta.id))
                    {
                        continue;
                    }
                    delivered.push(meta.id.clone());
                }
                ws.feed(Message::Text(f.text.clone())).await?;
            }
            ws.flush().await
        };
        match tokio::time::timeout(SEND_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return false,
            Err(_) => {
                metrics::counter!("safestream_rejects_total", "reason" => "slow_consumer")
                    .increment(1);
                return false;
            }
        }
        if last_seq != self.last_seq {
            self.last_seq = last_seq;
            self.conn.set_sent_seq(last_seq);
        }
        self.record_delivery(delivered, now);
        true
    }

    /// Handles one client frame (after auth); awaits nothing.
    fn handle(&mut self, text: &str) -> Handled {
        let f: ClientFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(_) => {
                return Handled::Bad(error_frame(
                    wire::error::frame::BAD_FRAME,
                    "frames are JSON objects {\"event\", \"data\"}",
                ))
            }
        };
        match f.event.as_str() {
            event::AUTH => Handled::Bad(error_frame(
                wire::error::frame::BAD_FRAME,
                "already authenticated",
            )),
            event::AUTH_REFRESH => self.refresh(&f.data),
            event::DEVICE_STATUS => self.device_status(&f.data),
            event::HEARTBEAT => {
                let min = self.app.cfg.heartbeat_secs;
                match f.data.get("intervalSec").and_then(Value::as_u64) {
                    Some(n) if n >= min && n <= 600 => {
                        self.conn.set_interval(&self.app.hub, n * 1000);
                        Handled::Reply(frame(
                            event::HEARTBEAT,
                            wire::frame::Heartbeat { interval_sec: n },
                        ))
                    }
                    _ => Handled::Bad(error_frame(
                        wire::error::frame::BAD_FRAME,
                        &format!("heartbeat.intervalSec must be an integer from {min} to 600"),
                    )),
                }
            }
            event::PING => Handled::Reply(frame(event::PONG, f.data)),
            _ => Handled::Bad(error_frame(wire::error::frame::BAD_FRAME, "unknown event")),
        }
    }
}
