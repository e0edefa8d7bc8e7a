//! The device session: checking and registering the device, presence (announce, withdraw,
//! `device:status` to guardians), pending commands at connect, and recording delivery.

use std::sync::Arc;
use wire::event;

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::dispatch::{Handled, Session, Who};
use super::frames::{close, error_frame, frame, send, SEND_TIMEOUT};
use super::Socket;
use crate::app::App;
use crate::bus::room;
use crate::hub::{Conn, CLOSE_FORBIDDEN, CLOSE_RATE_LIMITED, CLOSE_UNAUTHORIZED};
use crate::model::{now_ms, rfc3339};
use crate::store::{Rotation, TokenGens, TokenVerdict};

/// Pending commands read from the database at a time when a device connects.
const PENDING_PAGE: i64 = 200;
/// Largest `currentVideo`, serialized.
const MAX_VIDEO_BYTES: usize = 2048;

/// A device socket, from authentication to the end. This future lives as long as the
/// socket, so it holds only what the steady state needs; the start and the end are separate
/// boxed futures that exist only while they run (memory per idle socket, BENCHMARKS.md).
pub(super) async fn device_session(
    app: Arc<App>,
    mut ws: Socket,
    device_id: String,
    child_id: String,
    gen: i64,
) {
    let Some((conn, mut s, live)) =
        Box::pin(device_open(&app, &mut ws, &device_id, &child_id, gen)).await
    else {
        return;
    };
    if live {
        s.run(&mut ws).await;
    }
    drop(s);
    Box::pin(device_close(&app, &conn, &device_id, &child_id)).await;
}

/// Checks the device, registers its socket, tells guardians it is online and sends its
/// pending commands. `None` when it was refused before registering (socket closed);
/// otherwise the socket's shared half, its session, and whether the session should run (it
/// was registered, so [`device_close`] must follow either way).
async fn device_open<'a>(
    app: &'a Arc<App>,
    ws: &mut Socket,
    device_id: &str,
    child_id: &str,
    gen: i64,
) -> Option<(Arc<Conn>, Session<'a>, bool)> {
    if let Err((code, reason)) = token_check(app, device_id, child_id, gen).await {
        close(ws, code, reason).await;
        return None;
    }
    let max = app.cfg.max_conn_per_device;
    let Ok(first) = app.hub.device_up(device_id, child_id, now_ms(), max) else {
        close(ws, CLOSE_RATE_LIMITED, "too many sockets for this device").await;
        return None;
    };
    let identity = room::device(device_id);
    // The room names are rebuilt to leave (not kept for the socket's lifetime: memory).
    // Registered with its generation: a promotion applied meanwhile must not take it for
    // generation 0 and close it as superseded.
    let conn = app
        .hub
        .register_device(&[identity.clone(), room::child(child_id)], gen);
    let who = Who::Device {
        device_id: device_id.to_string(),
        child_id: child_id.to_string(),
    };
    let mut s = Session::new(app, conn.clone(), who, identity);
    // A revocation or a token promotion that committed between the check above and
    // `register` found no socket to close: look again now that this one is reachable.
    let gens = match token_check(app, device_id, child_id, gen).await {
        Ok(g) => g,
        Err((code, reason)) => {
            close(ws, code, reason).await;
            return Some((conn, s, false));
        }
    };
    if let Some(p) = first {
        app.presence.announce(device_id, &p).await;
        Box::pin(crate::presence::publish(app, device_id, &p)).await;
        Box::pin(crate::presence::webhook(app, device_id, &p, true)).await;
    }
    let live = Box::pin(s.device_start(ws, gen, gens)).await;
    Some((conn, s, live))
}

/// Whether the device may use a token of generation `gen` (promoting a pending one); the
/// close code and reason when it may not.
async fn token_check(
    app: &App,
    device_id: &str,
    child_id: &str,
    gen: i64,
) -> Result<TokenGens, (u16, &'static str)> {
    match app
        .store
        .check_device_token(device_id, child_id, gen, now_ms())
        .await
    {
        Ok(TokenVerdict::Accepted(g)) => Ok(g),
        Ok(TokenVerdict::Revoked) => Err((CLOSE_FORBIDDEN, "device revoked")),
        Ok(TokenVerdict::Superseded) => Err((CLOSE_UNAUTHORIZED, "device token superseded")),
        Ok(TokenVerdict::Unknown) => Err((CLOSE_UNAUTHORIZED, "unknown device")),
        Err(e) => {
            tracing::error!(error = %e, "device lookup failed");
            Err((wire::close::INTERNAL, "internal error"))
        }
    }
}

/// The socket ended: leave the rooms; if it was the device's last socket here, withdraw its
/// presence, tell guardians and record when it was last seen.
async fn device_close(app: &App, conn: &Arc<Conn>, device_id: &str, child_id: &str) {
    app.hub
        .unregister(conn, &[room::device(device_id), room::child(child_id)]);
    let now = now_ms();
    if let Some(p) = app.hub.device_down(device_id, now) {
        app.presence.withdraw(device_id).await;
        Box::pin(crate::presence::publish(app, device_id, &p)).await;
        Box::pin(crate::presence::webhook(app, device_id, &p, false)).await;
        if let Err(e) = app.store.set_last_seen(device_id, now).await {
            tracing::warn!(error = %e, "could not record last_seen");
        }
    }
}

impl Session<'_> {
    /// A device session's `(device id, child id)`; `None` for a parent.
    fn device_ids(&self) -> Option<(String, String)> {
        match &self.who {
            Who::Device {
                device_id,
                child_id,
            } => Some((device_id.clone(), child_id.clone())),
            Who::Parent { .. } => None,
        }
    }

    /// `ready`, the pending token rotation if any (starting one when the token is older
    /// than `--device-token-max-age-days`), then every pending unexpired command. False if the
    /// socket is gone.
    async fn device_start(&mut self, ws: &mut Socket, gen: i64, gens: TokenGens) -> bool {
        let Some((device_id, child_id)) = self.device_ids() else {
            return false;
        };
        let ready = wire::frame::DeviceReady {
            role: "device".into(),
            device_id: device_id.to_string(),
            child_id: child_id.to_string(),
            heartbeat_sec: self.app.cfg.heartbeat_secs,
            server_time: rfc3339(now_ms()),
        };
        if !send(ws, frame(event::READY, ready)).await {
            return false;
        }
        if let Some(rotation) = self
            .rotation_at_connect(&device_id, &child_id, gen, gens)
            .await
        {
            let data = crate::http::rotation_data(self.app, &device_id, &rotation);
            if !send(ws, frame(event::AUTH_ROTATE, data)).await {
                return false;
            }
            // Starting it announced it to this socket too: once is enough.
            self.conn.rotation_sent(rotation.gen);
        }
        self.send_pending(ws).await
    }

    /// `auth:rotate` for pending generation `gen` issued at `issued_at` (announced on the
    /// bus without the token: derived here). False if the socket is gone.
    pub(super) async fn send_rotation(
        &mut self,
        ws: &mut Socket,
        gen: i64,
        issued_at: i64,
    ) -> bool {
        let Some((device_id, child_id)) = self.device_ids() else {
            return true;
        };
        let rotation = Rotation {
            child_id,
            gen,
            issued_at,
            started: false,
        };
        let data = crate::http::rotation_data(self.app, &device_id, &rotation);
        send(ws, frame(event::AUTH_ROTATE, data)).await
    }

    /// The rotation to hand this socket at connect: the one pending (unless this socket
    /// uses it already), or a new one when the current token is older than the relay's
    /// maximum age.
    async fn rotation_at_connect(
        &self,
        device_id: &str,
        child_id: &str,
        gen: i64,
        gens: TokenGens,
    ) -> Option<Rotation> {
        if let Some((pending, issued_at)) = gens.pending {
            return (pending != gen).then(|| Rotation {
                child_id: child_id.to_string(),
                gen: pending,
                issued_at,
                started: false,
            });
        }
        let days = self.app.cfg.device_token_max_age_days;
        let now = now_ms();
        let max_age = i64::try_from(days)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400_000);
        if days == 0 || now.saturating_sub(gens.issued_at) < max_age {
            return None;
        }
        match self.app.store.rotate_device_token(device_id, now).await {
            Ok(r) => {
                tracing::info!(device_id = %device_id, gen = r.gen, "device token past its maximum age: rotating");
                Some(r)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start a token rotation");
                None
            }
        }
    }

    /// `auth:refresh` with a token of this device's: the generation must be accepted (its
    /// first use promotes a pending one, which closes the device's sockets of older
    /// generations, so this socket takes the new generation first). A refused token is
    /// answered with an `error` frame; the socket keeps its own token.
    pub(super) async fn device_refresh(&mut self, ws: &mut Socket, gen: i64) -> bool {
        let Some((device_id, child_id)) = self.device_ids() else {
            return false;
        };
        let before = self.conn.token_gen();
        self.conn.set_token_gen(gen.max(before));
        let reply = match token_check(self.app, &device_id, &child_id, gen).await {
            Ok(_) => {
                self.conn.set_token_gen(gen);
                frame(
                    event::AUTH_REFRESHED,
                    wire::frame::AuthRefreshed { expires_at: None },
                )
            }
            Err((CLOSE_FORBIDDEN, reason)) => {
                close(ws, CLOSE_FORBIDDEN, reason).await;
                return false;
            }
            Err((_, reason)) => {
                self.conn.set_token_gen(before);
                error_frame(wire::error::frame::UNAUTHORIZED, reason)
            }
        };
        send(ws, reply).await
    }

    /// Writes every open, unexpired command for this device from the database (at connect,
    /// and again when the bus may have lost some). False if the socket is gone.
    pub(super) async fn send_pending(&mut self, ws: &mut Socket) -> bool {
        let Some((device_id, child_id)) = self.device_ids() else {
            return false;
        };
        let mut ids = self.sent_at_connect.take().unwrap_or_default();
        let mut after = None;
        loop {
            let now = now_ms();
            let page = match self
                .app
                .store
                .pending_for_device(&device_id, &child_id, now, after.clone(), PENDING_PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "reading pending commands");
                    close(ws, wire::close::INTERNAL, "internal error").await;
                    return false;
                }
            };
            let short = (page.len() as i64) < PENDING_PAGE;
            for c in &page {
                let f = crate::message::OutFrame::command_new(c);
                if tokio::time::timeout(SEND_TIMEOUT, ws.feed(Message::Text(f.text.clone())))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    return false;
                }
                ids.insert(c.id.clone());
            }
            if !matches!(
                tokio::time::timeout(SEND_TIMEOUT, ws.flush()).await,
                Ok(Ok(()))
            ) {
                return false;
            }
            if let Some(last) = page.last() {
                after = Some((last.created_at, last.id.clone()));
            }
            self.record_delivery(page.into_iter().map(|c| c.id).collect(), now);
            if short {
                break;
            }
        }
        self.sent_at_connect = Some(ids);
        true
    }

    /// Records (in the background) that these commands were written to this device.
    pub(super) fn record_delivery(&self, ids: Vec<String>, now: i64) {
        let Who::Device { device_id, .. } = &self.who else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        self.app.store.mark_delivered_later(ids, device_id, now);
    }

    pub(super) fn device_status(&mut self, data: &Value) -> Handled {
        let Who::Device { device_id, .. } = &self.who else {
            return Handled::Reply(error_frame(
                wire::error::frame::FORBIDDEN,
                "only a device reports device:status",
            ));
        };
        if !matches!(data, Value::Null | Value::Object(_)) {
            return Handled::Bad(error_frame(
                wire::error::frame::BAD_FRAME,
                "device:status data must be an object",
            ));
        }
        let active = match data.get("activeViewing") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Handled::Bad(error_frame(
                    wire::error::frame::BAD_FRAME,
                    "activeViewing must be a boolean",
                ))
            }
        };
        let video = data.get("currentVideo").cloned().unwrap_or(Value::Null);
        let ok_shape = matches!(video, Value::Null | Value::String(_) | Value::Object(_));
        if !ok_shape || video.to_string().len() > MAX_VIDEO_BYTES {
            return Handled::Bad(error_frame(
                wire::error::frame::BAD_FRAME,
                "currentVideo must be null, a string or an object of at most 2 KiB",
            ));
        }
        match self
            .app
            .hub
            .device_status(device_id, active, video, now_ms())
        {
            Some(p) => Handled::Presence(p),
            None => Handled::Nothing,
        }
    }
}
