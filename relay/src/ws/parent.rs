//! The parent session: `ready`, resume from `lastSeq` (replay in pages, or `resync` when too
//! far behind or pruned), filling gaps in live positions, and catching up after the bus
//! lost messages.

use std::sync::Arc;
use wire::event;
use wire::frame::{ParentReady, Resync};

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::dispatch::{Session, Who};
use super::frames::{close, frame, send, SEND_TIMEOUT};
use super::Socket;
use crate::app::App;
use crate::bus::room;
use crate::hub::{Batch, Role, CLOSE_FORBIDDEN, CLOSE_RATE_LIMITED};

/// Largest replay; further behind, the client gets `resync`.
const MAX_REPLAY: i64 = 1000;
/// Events read from the database at a time during a replay.
const REPLAY_PAGE: i64 = 200;

/// Why a replay stopped.
pub(super) enum ReplayError {
    /// The socket failed or timed out.
    Socket,
    /// The database failed.
    Db(crate::store::StoreError),
}

pub(super) async fn parent_session(
    app: Arc<App>,
    mut ws: Socket,
    user_id: String,
    is_admin: bool,
    exp: i64,
    last_seq: Option<i64>,
) {
    let identity = room::user(&user_id);
    if !app
        .hub
        .acquire_identity(&identity, app.cfg.max_conn_per_user)
    {
        return close(
            &mut ws,
            CLOSE_RATE_LIMITED,
            "too many sockets for this user",
        )
        .await;
    }
    let mut rooms = vec![identity.clone()];
    if is_admin {
        rooms.push(room::ADMINS.to_string());
    }
    let conn = app.hub.register(Role::Parent, &rooms);
    conn.set_token_exp(exp);
    let who = Who::Parent { user_id, exp };
    let mut s = Session::new(&app, conn.clone(), who, identity.clone());
    if Box::pin(s.parent_start(&mut ws, last_seq)).await {
        s.run(&mut ws).await;
    }
    app.hub.unregister(&conn, &rooms);
    app.hub.release_identity(&identity);
}

impl Session<'_> {
    /// `ready`, then the replay (or `resync`). False if the socket is gone.
    async fn parent_start(&mut self, ws: &mut Socket, last_seq: Option<i64>) -> bool {
        let Who::Parent { user_id, .. } = &self.who else {
            return false;
        };
        let user_id = user_id.clone();
        let (newest, next_kept) = match self.app.store.event_positions(&user_id, last_seq).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reading event positions");
                close(ws, wire::close::INTERNAL, "internal error").await;
                return false;
            }
        };
        let mut resync = false;
        if let Some(ls) = last_seq {
            if ls > newest || !next_kept {
                resync = true;
            } else {
                match self
                    .app
                    .store
                    .more_events_than(&user_id, ls, MAX_REPLAY)
                    .await
                {
                    Ok(too_many) => resync = too_many,
                    Err(e) => {
                        tracing::error!(error = %e, "counting events for resume");
                        resync = true;
                    }
                }
            }
        }
        let ready = ParentReady {
            role: "parent".into(),
            user_id: user_id.to_string(),
            heartbeat_sec: self.app.cfg.heartbeat_secs,
            seq: newest,
            resumed: last_seq.is_some() && !resync,
        };
        if !send(ws, frame(event::READY, ready)).await {
            return false;
        }
        self.last_seq = newest;
        self.conn.set_sent_seq(newest);
        if resync {
            let why = history_gap(newest);
            return send(ws, frame(event::RESYNC, why)).await;
        }
        let Some(after) = last_seq else {
            return true;
        };
        // Replay in pages until a short page: every event committed before the last page was
        // read is replayed; anything later arrives live with a larger seq.
        self.last_seq = after;
        self.conn.set_sent_seq(after);
        self.replay_rest(ws, "resume").await
    }

    /// Writes this parent's logged events after `self.last_seq` and below `before`, oldest
    /// first, in pages, until a short page or `before`; advances `last_seq`. Flushes.
    async fn replay(&mut self, ws: &mut Socket, before: i64) -> Result<(), ReplayError> {
        let Who::Parent { user_id, .. } = &self.who else {
            return Ok(());
        };
        let user_id = user_id.clone();
        loop {
            let page = self
                .app
                .store
                .events_after(&user_id, self.last_seq, REPLAY_PAGE)
                .await
                .map_err(ReplayError::Db)?;
            let short = (page.len() as i64) < REPLAY_PAGE;
            let mut reached = false;
            for ev in page {
                if ev.seq >= before {
                    reached = true;
                    break;
                }
                if ev.seq > self.last_seq + 1 {
                    // Events in between are gone (pruned while we read): say so, go on.
                    let why = history_gap(ev.seq - 1);
                    if !send(ws, frame(event::RESYNC, why)).await {
                        return Err(ReplayError::Socket);
                    }
                }
                let text = format!(
                    r#"{{"event":{},"seq":{},"data":{}}}"#,
                    Value::String(ev.event),
                    ev.seq,
                    ev.data
                );
                self.last_seq = ev.seq;
                self.conn.set_sent_seq(ev.seq);
                if tokio::time::timeout(SEND_TIMEOUT, ws.feed(Message::Text(text.into())))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    return Err(ReplayError::Socket);
                }
            }
            if !matches!(
                tokio::time::timeout(SEND_TIMEOUT, ws.flush()).await,
                Ok(Ok(()))
            ) {
                return Err(ReplayError::Socket);
            }
            if short || reached {
                return Ok(());
            }
        }
    }

    /// The slow path of [`Session::drain`] for a parent: frame by frame, filling each gap in
    /// the positions from the database before the frame that revealed it.
    pub(super) async fn fill_gaps(&mut self, ws: &mut Socket, batch: Batch, now: i64) -> bool {
        metrics::counter!("safestream_event_gap_fills_total").increment(1);
        if batch.ping && !send(ws, Message::Ping(Default::default())).await {
            return false;
        }
        for f in &batch.frames {
            if let Some(s) = f.seq {
                if s <= self.last_seq {
                    continue;
                }
                if s > self.last_seq + 1 {
                    if s - self.last_seq - 1 > MAX_REPLAY {
                        let why = history_gap(s - 1);
                        if !send(ws, frame(event::RESYNC, why)).await {
                            return false;
                        }
                        self.last_seq = s - 1;
                    }
                    match self.replay(ws, s).await {
                        Ok(()) => {}
                        Err(ReplayError::Socket) => return false,
                        Err(ReplayError::Db(e)) => {
                            tracing::error!(error = %e, "reading events to fill a gap");
                            close(ws, wire::close::INTERNAL, "internal error").await;
                            return false;
                        }
                    }
                    if s > self.last_seq + 1 {
                        // The events just before this one are gone (pruned meanwhile): the
                        // replay had nothing to send, so say so rather than skip them
                        // silently (found by the model checker, `model/src/resume.rs`).
                        let why = history_gap(s - 1);
                        if !send(ws, frame(event::RESYNC, why)).await {
                            return false;
                        }
                    }
                }
                self.last_seq = s;
                self.conn.set_sent_seq(s);
            }
            if f.command.as_ref().is_some_and(|m| m.expires_at <= now) {
                continue;
            }
            if !send(ws, Message::Text(f.text.clone())).await {
                return false;
            }
        }
        true
    }

    /// After the bus reconnected: whatever other nodes published meanwhile may be lost, so
    /// a device gets its open commands again (the agent drops ids it already ran) and a
    /// parent every event after the last one it was sent.
    pub(super) async fn catch_up(&mut self, ws: &mut Socket) -> bool {
        metrics::counter!("safestream_catch_ups_total").increment(1);
        // Taken in turn across the node's sockets (the semaphore is never closed).
        let _turn = self.app.catch_ups.acquire().await;
        match &self.who {
            Who::Device { device_id, .. } => {
                // A revocation announced while the bus was away never closed this socket.
                match self.app.store.device_auth(device_id).await {
                    Ok(Some(d)) if !d.revoked => {}
                    Ok(_) => {
                        close(ws, CLOSE_FORBIDDEN, "device revoked").await;
                        return false;
                    }
                    // Not a verdict: the device stays; the next catch-up checks again.
                    Err(e) => tracing::warn!(error = %e, "catch-up: device check failed"),
                }
                self.send_pending(ws).await
            }
            Who::Parent { user_id, .. } => {
                // Too far behind to replay (a long outage): the client refetches instead.
                if let Ok(true) = self
                    .app
                    .store
                    .more_events_than(user_id, self.last_seq, MAX_REPLAY)
                    .await
                {
                    let newest = match self.app.store.event_positions(user_id, None).await {
                        Ok((n, _)) => n,
                        Err(_) => self.last_seq,
                    };
                    let why = history_gap(newest);
                    self.last_seq = newest;
                    self.conn.set_sent_seq(newest);
                    return send(ws, frame(event::RESYNC, why)).await;
                }
                self.replay_rest(ws, "catch-up").await
            }
        }
    }

    /// Every event after the last one this parent was sent (resume, catch-up); a database
    /// failure closes the socket with 1011. False when the socket must end.
    async fn replay_rest(&mut self, ws: &mut Socket, why: &'static str) -> bool {
        match self.replay(ws, i64::MAX).await {
            Ok(()) => true,
            Err(ReplayError::Socket) => false,
            Err(ReplayError::Db(e)) => {
                tracing::error!(error = %e, why, "reading events to replay");
                close(ws, wire::close::INTERNAL, "internal error").await;
                false
            }
        }
    }
}

/// `resync` data: the replay cannot be proven complete; continue from `seq`.
fn history_gap(seq: i64) -> Resync {
    Resync {
        reason: "history_gap".into(),
        seq,
    }
}
