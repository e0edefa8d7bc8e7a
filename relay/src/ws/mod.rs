//! `/api/socket`: first-frame auth, parent resume, device delivery, client frames.
//!
//! One task per socket. It waits on two things only: the socket (client frames, pongs) and
//! its [`Conn`](crate::hub::Conn)'s mailbox (frames to send, a ping due, a close request).
//! See `hub.rs`.
//!
//! The sessions speak native frames (`{"event","seq"?,"data"}` text messages, WebSocket
//! pings and close codes) to a [`Socket`]: the native WebSocket itself, or a Socket.IO
//! socket (`crate::sio`) that translates each message to and from Engine.IO/Socket.IO
//! packets over WebSocket or long-polling. One set of sessions, rooms, authorization and
//! delivery rules serves both protocols.
//!
//! # Layout
//! - `upgrade.rs`: the HTTP upgrade ([`upgrade`]), the credential (header or first `auth`
//!   frame), the choice of session by who connected, and `auth:refresh`.
//! - `frames.rs`: the client frame shape, building and writing frames, close codes, and the
//!   limits on frame rate and malformed frames.
//! - `parent.rs`: the parent session: `ready`, resume and replay, `resync`, gap filling,
//!   catch-up after the bus lost messages.
//! - `device.rs`: the device session: device checks, presence and `device:status`, pending
//!   commands at connect, delivery records.
//! - `dispatch.rs`: the per-socket `Session` and its loop: the mailbox, client frames and
//!   what each one leads to.

mod device;
mod dispatch;
mod frames;
mod parent;
mod upgrade;

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

pub use upgrade::upgrade;
pub(crate) use upgrade::{accept, origin_allowed, run};

/// A server-side WebSocket: tokio-tungstenite straight over hyper's upgraded connection (no
/// wrapper task, no extra buffers: see `upgrade`).
pub(crate) type WsStream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// What a session talks to: native frames over a WebSocket, or the same frames translated
/// to Socket.IO. Both are boxed: a native socket pays one pointer and a tag for the choice.
pub(crate) enum Socket {
    /// The native protocol (`docs/protocol.md`).
    Native(Box<WsStream>),
    /// Socket.IO (Engine.IO v4 over WebSocket or long-polling): see `crate::sio`.
    Sio(Box<crate::sio::SioSocket>),
}

impl Stream for Socket {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Socket::Native(ws) => Pin::new(&mut **ws).poll_next(cx),
            Socket::Sio(s) => Pin::new(&mut **s).poll_next(cx),
        }
    }
}

impl Sink<Message> for Socket {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            Socket::Native(ws) => Pin::new(&mut **ws).poll_ready(cx),
            Socket::Sio(s) => Pin::new(&mut **s).poll_ready(cx),
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        match self.get_mut() {
            Socket::Native(ws) => Pin::new(&mut **ws).start_send(item),
            Socket::Sio(s) => Pin::new(&mut **s).start_send(item),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            Socket::Native(ws) => Pin::new(&mut **ws).poll_flush(cx),
            Socket::Sio(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            Socket::Native(ws) => Pin::new(&mut **ws).poll_close(cx),
            Socket::Sio(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}
