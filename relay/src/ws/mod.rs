//! `/api/socket`: first-frame auth, parent resume, device delivery, client frames.
//!
//! One task per socket. It waits on two things only: the socket (client frames, pongs) and
//! its [`Conn`](crate::hub::Conn)'s mailbox (frames to send, a ping due, a close request).
//! See `hub.rs`.
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

use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;

pub use upgrade::upgrade;

/// A server-side socket: tokio-tungstenite straight over hyper's upgraded connection (no
/// wrapper task, no extra buffers: see `upgrade`).
type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
