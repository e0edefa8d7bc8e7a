//! Frames: the client's frame shape, building and writing server frames, close codes and
//! their metric labels, and the per-socket limits on frame rate and malformed frames.

use std::time::Duration;
use wire::event;

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::dispatch::Session;
use super::Socket;
use crate::hub::{
    CLOSE_FORBIDDEN, CLOSE_PROTOCOL, CLOSE_RATE_LIMITED, CLOSE_TIMEOUT, CLOSE_UNAUTHORIZED,
};

/// How long one write (or flush) to a socket may take before the reader is called slow.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Dropped (over-rate) frames after which the socket is closed with 4429.
pub(super) const MAX_DROPPED: u32 = 50;
/// Length of the window in which dropped and malformed frames are counted.
pub(super) const FRAME_WINDOW: Duration = Duration::from_secs(10);
/// Malformed frames within one window after which the socket is closed with 4400.
pub(super) const MAX_BAD_FRAMES: u32 = 50;

/// The client's frame shape.
/// A client frame: the wire envelope with data still untyped (each event types its own).
pub(super) type ClientFrame = wire::Frame<Value>;

pub(super) fn error_frame(code: &str, message: &str) -> Message {
    Message::Text(Utf8Bytes::from(
        wire::Frame::new(
            event::ERROR,
            wire::frame::ErrorData {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        )
        .to_json(),
    ))
}

/// A server frame `{"event", "data"}` with typed (or untyped) data.
pub(super) fn frame<D: serde::Serialize>(event: &str, data: D) -> Message {
    Message::Text(Utf8Bytes::from(wire::Frame::new(event, data).to_json()))
}

/// A boxed future: call sites keep only a pointer in their state machines, which keeps the
/// per-socket task small (these run rarely; the box is freed when they finish).
type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Sends one message (10 s at most); false if the socket is gone.
pub(super) fn send(ws: &mut Socket, msg: Message) -> Boxed<'_, bool> {
    Box::pin(async move {
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, ws.send(msg)).await,
            Ok(Ok(()))
        )
    })
}

/// Sends a close frame (2 s at most) and counts the refusal.
pub(super) fn close<'a>(ws: &'a mut Socket, code: u16, reason: &'static str) -> Boxed<'a, ()> {
    Box::pin(async move {
        if code != crate::hub::CLOSE_GOING_AWAY {
            metrics::counter!("safestream_rejects_total", "reason" => close_label(code))
                .increment(1);
        }
        let msg = Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static(reason),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.send(msg)).await;
    })
}

fn close_label(code: u16) -> &'static str {
    match code {
        CLOSE_UNAUTHORIZED => "ws_unauthorized",
        CLOSE_FORBIDDEN => "ws_forbidden",
        CLOSE_TIMEOUT => "ws_timeout",
        CLOSE_PROTOCOL => "ws_protocol",
        CLOSE_RATE_LIMITED => "ws_rate_limited",
        crate::hub::CLOSE_SLOW_CONSUMER => "ws_slow_consumer",
        _ => "ws_other",
    }
}

impl Session<'_> {
    /// Whether one more client frame is within this socket's and this identity's rate.
    pub(super) fn allow_frame(&self) -> bool {
        self.limiter.check().is_ok()
            && self
                .app
                .limits
                .user_frames
                .check_key(&self.identity)
                .is_ok()
    }
}
