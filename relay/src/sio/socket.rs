//! [`SioSocket`]: a Socket.IO client seen by a session as a native socket.
//!
//! The session writes native messages (frames, pings, a close) and reads native ones; this
//! type translates both ways and carries the packets over the current transport: a
//! WebSocket, or long-polling through a [`Shared`] that the HTTP handlers fill and drain,
//! until the client upgrades (the WebSocket then replaces the polling mid-session).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::packet::{self, eio, Frame, Incoming};
use crate::hub::{CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED};
use crate::ws::WsStream;

/// Packets a long-polling client may have waiting, in bytes, before it counts as a slow
/// consumer (its session ends, as a native socket's does when its send times out).
const MAX_POLL_BACKLOG: usize = 1 << 20;
/// Packets waiting for a WebSocket transport after which the client's packets are not read
/// until it reads (replies to what it sends cannot pile up).
const MAX_PENDING: usize = 64;

/// What reaches a polling session from its HTTP handlers.
pub enum Inbound {
    /// One Engine.IO packet from a POST.
    Packet(String),
    /// The client finished the upgrade on this WebSocket.
    Upgrade(Box<WsStream>),
}

/// A polling session's half shared with the HTTP handlers (through the registry).
pub struct Shared {
    /// Packets waiting for the next GET, joined by the record separator.
    pub out: Mutex<String>,
    /// Wakes a waiting GET.
    pub out_ready: Notify,
    /// To the session: packets from POSTs, and the upgraded WebSocket.
    pub tx: mpsc::Sender<Inbound>,
    /// A GET is waiting (a second one at the same time is refused).
    pub polling: AtomicBool,
    /// The session ended or moved to a WebSocket: GETs and POSTs are refused.
    pub closed: AtomicBool,
}

impl Shared {
    /// Appends one packet for the next GET. False when the backlog is over its bound.
    pub fn push(&self, packet: &str) -> bool {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if out.len() + packet.len() > MAX_POLL_BACKLOG {
            return false;
        }
        if !out.is_empty() {
            out.push(packet::SEPARATOR);
        }
        out.push_str(packet);
        drop(out);
        self.out_ready.notify_one();
        true
    }

    /// Takes everything waiting.
    pub fn take(&self) -> String {
        std::mem::take(&mut *self.out.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

enum Transport {
    Ws(Box<WsStream>),
    Poll {
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Inbound>,
    },
}

/// One Socket.IO client (Engine.IO session + the main namespace). See the module doc.
pub struct SioSocket {
    transport: Transport,
    /// The Socket.IO socket id, sent in the CONNECT answer.
    sid: Box<str>,
    /// The private session id the client sent to recover, if any.
    client_pid: Option<Box<str>>,
    /// The offset the client sent with it (its `lastSeq`).
    client_offset: Option<i64>,
    /// The CONNECT was answered: later native frames are events.
    connected: bool,
    /// The CONNECT packet was read (a second one is malformed).
    connect_read: bool,
    /// Packets for a WebSocket transport not yet written (replies made while reading).
    pending: VecDeque<String>,
    /// The session wrote a close: nothing more goes out.
    closed: bool,
    /// Dropped when the CONNECT is answered (the polling handshake's admission count).
    until_connected: Option<Box<dyn std::any::Any + Send>>,
}

impl SioSocket {
    /// A session on a WebSocket opened directly (`transport=websocket`).
    pub fn websocket(ws: Box<WsStream>) -> SioSocket {
        SioSocket::new(Transport::Ws(ws))
    }

    /// A long-polling session.
    pub fn polling(shared: Arc<Shared>, rx: mpsc::Receiver<Inbound>) -> SioSocket {
        SioSocket::new(Transport::Poll { shared, rx })
    }

    fn new(transport: Transport) -> SioSocket {
        SioSocket {
            transport,
            sid: packet::random_id().into(),
            client_pid: None,
            client_offset: None,
            connected: false,
            connect_read: false,
            pending: VecDeque::new(),
            closed: false,
            until_connected: None,
        }
    }

    /// Keeps `guard` until the CONNECT is answered (or the socket ends).
    pub fn on_authenticated(&mut self, guard: Box<dyn std::any::Any + Send>) {
        self.until_connected = Some(guard);
    }

    /// Queues one packet to the client. False when a polling client's backlog is full.
    fn out(&mut self, p: String) -> bool {
        match &self.transport {
            Transport::Ws(_) => {
                self.pending.push_back(p);
                true
            }
            Transport::Poll { shared, .. } => shared.push(&p),
        }
    }

    /// Translates one native message from the session into packets.
    fn translate(&mut self, msg: Message) -> bool {
        match msg {
            Message::Text(t) => {
                let Some(f) = Frame::read(&t) else {
                    return true;
                };
                if !self.connected {
                    if f.event != wire::event::READY {
                        // Nothing but `ready` comes first; anything else would be lost to a
                        // client that is not connected yet.
                        return true;
                    }
                    // A parent's `ready` says whether its history was replayed; a device's
                    // pending commands are always sent again at connect.
                    let resumed = serde_json::from_str::<serde_json::Value>(f.data())
                        .ok()
                        .and_then(|d| d.get("resumed").and_then(|r| r.as_bool()))
                        .unwrap_or(true);
                    let pid = match (&self.client_pid, resumed) {
                        (Some(p), true) => p.to_string(),
                        _ => packet::random_id(),
                    };
                    self.connected = true;
                    self.until_connected = None;
                    let ack = packet::connected(&self.sid, &pid);
                    if !self.out(ack) {
                        return false;
                    }
                }
                let offset = f.offset.or_else(|| {
                    if f.event != wire::event::READY {
                        return None;
                    }
                    let data = serde_json::from_str::<serde_json::Value>(f.data()).ok()?;
                    // A resumed `ready` is followed by the replay: its offset is where the
                    // replay starts (the client's own), or a drop during the replay would
                    // skip the rest of it. A fresh one carries the newest position: the
                    // offset a client that gets no event before it reconnects sends back.
                    if data.get("resumed").and_then(|r| r.as_bool()) == Some(true) {
                        return self.client_offset;
                    }
                    data.get("seq")?.as_i64()
                });
                let p = f.to_packet(offset);
                self.out(p)
            }
            Message::Ping(_) => self.out((eio::PING as char).to_string()),
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1000, String::new()));
                // No Engine.IO close after a CONNECT_ERROR or a DISCONNECT: socket.io-client
                // handles a decoded packet a tick later than a close in the same payload, so
                // the close would win (`disconnect` with "transport close" before
                // `connect_error`, and a reconnection after a server-side disconnect). The
                // client closes the connection itself once its socket is refused or
                // disconnected.
                if !self.connected {
                    // Refused at the start: the client's `connect_error` fires with why.
                    self.out(packet::connect_error("/", &reason, code));
                } else {
                    let data = serde_json::json!({ "code": code, "reason": reason });
                    self.out(format!(r#"42["closing",{data}]"#));
                    if code == CLOSE_UNAUTHORIZED || code == CLOSE_FORBIDDEN {
                        // A server-side disconnect: the client does not reconnect on its
                        // own (a new token is needed first).
                        self.out("41".into());
                    } else {
                        self.out((eio::CLOSE as char).to_string());
                    }
                }
                self.closed = true;
                true
            }
            Message::Pong(_) | Message::Binary(_) | Message::Frame(_) => true,
        }
    }

    /// Writes pending packets to a WebSocket transport as far as it accepts them.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let Transport::Ws(ws) = &mut self.transport else {
            return Poll::Ready(Ok(()));
        };
        while !self.pending.is_empty() {
            match Pin::new(&mut **ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let p = self.pending.pop_front().unwrap_or_default();
            Pin::new(&mut **ws).start_send(Message::Text(Utf8Bytes::from(p)))?;
        }
        Pin::new(&mut **ws).poll_flush(cx)
    }

    /// One packet from the client, as what the session should read (`None`: read on).
    fn incoming(&mut self, p: &str) -> Option<Option<Result<Message, WsError>>> {
        match packet::parse(p) {
            Incoming::Pong => Some(Some(Ok(Message::Pong(Default::default())))),
            Incoming::Connect(auth) => {
                if self.connect_read {
                    return Some(Some(Ok(Message::Text("".into()))));
                }
                self.connect_read = true;
                self.client_pid = packet::connect_pid(p).map(Into::into);
                self.client_offset = packet::connect_offset(p);
                Some(Some(Ok(Message::Text(auth.into()))))
            }
            Incoming::OtherNamespace(nsp) => {
                // Answered, and also counted by the session as a malformed frame (rate
                // limits, the bad-frame budget and the auth deadline all apply).
                self.out(packet::connect_error(&nsp, "Invalid namespace", 4404));
                Some(Some(Ok(Message::Text("".into()))))
            }
            Incoming::Event { frame, ack } => {
                if let Some(id) = ack {
                    self.out(packet::ack(id));
                }
                Some(Some(Ok(Message::Text(frame.into()))))
            }
            Incoming::Leave => Some(None),
            Incoming::Nothing => None,
            Incoming::Binary => Some(Some(Ok(Message::Binary(Default::default())))),
            // An empty text is not JSON: the session answers it as a malformed frame.
            Incoming::Malformed => Some(Some(Ok(Message::Text("".into())))),
        }
    }
}

impl Drop for SioSocket {
    fn drop(&mut self) {
        if let Transport::Poll { shared, .. } = &self.transport {
            if !self.closed {
                shared.push("1");
            }
            shared.closed.store(true, Ordering::Relaxed);
            shared.out_ready.notify_one();
        }
    }
}

impl Stream for SioSocket {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            // Replies made while reading (acks) go out as soon as the transport takes them;
            // a client that does not read them is not read either (no unbounded backlog).
            if !this.pending.is_empty() {
                match this.poll_write(cx) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Poll::Pending if this.pending.len() >= MAX_PENDING => return Poll::Pending,
                    _ => {}
                }
            }
            let text = match &mut this.transport {
                Transport::Ws(ws) => match Pin::new(&mut **ws).poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Some(Ok(Message::Text(t)))) => t,
                    Poll::Ready(Some(Ok(other))) => return Poll::Ready(Some(Ok(other))),
                },
                Transport::Poll { rx, shared } => match rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Ready(Some(Inbound::Packet(p))) => Utf8Bytes::from(p),
                    Poll::Ready(Some(Inbound::Upgrade(ws))) => {
                        // The client moved to the WebSocket: what the last GET did not take
                        // goes out on it, in order, and the polling side is closed.
                        shared.closed.store(true, Ordering::Relaxed);
                        let left = shared.take();
                        shared.out_ready.notify_one();
                        for p in left.split(packet::SEPARATOR) {
                            if !p.is_empty() && p != "6" {
                                this.pending.push_back(p.to_string());
                            }
                        }
                        this.transport = Transport::Ws(ws);
                        metrics::counter!("safestream_sio_upgrades_total").increment(1);
                        continue;
                    }
                },
            };
            if let Some(out) = this.incoming(&text) {
                return Poll::Ready(out);
            }
        }
    }
}

impl Sink<Message> for SioSocket {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if this.pending.len() >= MAX_PENDING {
            return this.poll_write(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        let this = self.get_mut();
        if this.closed {
            return Err(WsError::AlreadyClosed);
        }
        if this.translate(item) {
            Ok(())
        } else {
            metrics::counter!("safestream_rejects_total", "reason" => "slow_consumer").increment(1);
            Err(WsError::Capacity(
                tokio_tungstenite::tungstenite::error::CapacityError::MessageTooLong {
                    size: MAX_POLL_BACKLOG,
                    max_size: MAX_POLL_BACKLOG,
                },
            ))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.get_mut().poll_write(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        match this.poll_write(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match &mut this.transport {
            Transport::Ws(ws) => Pin::new(&mut **ws).poll_close(cx),
            Transport::Poll { .. } => Poll::Ready(Ok(())),
        }
    }
}
