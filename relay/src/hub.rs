//! This node's open sockets: rooms, mailboxes, presence, and the heartbeat sweep.
//!
//! Each socket is one task (see `ws/`) plus a small shared [`Conn`]: a bounded mailbox of
//! frames, a [`Notify`] that wakes the task, and a few atomics. Fan-out pushes an
//! `Arc<OutFrame>` into each mailbox — no copy of the text per recipient, no channel
//! allocation per socket. A mailbox that reaches its bound is cleared and its socket is
//! closed with 4509: a slow consumer never grows memory.
//!
//! There is no timer per socket. One sweeper task calls [`Hub::sweep`] eight times per
//! heartbeat interval; the sweep closes sockets that showed no life for 1.75 intervals (so a
//! vanished device is offline within two intervals) or whose token expired, and returns
//! those whose interval has passed, which the sweeper asks to ping, spread out over the
//! time until its next run.
//!
//! **Architecture Invariant:** nothing here awaits or does I/O; every method is a few
//! lock-protected memory operations, safe to call from the store's commit path.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dashmap::DashMap;
use serde_json::Value;
use smallvec::SmallVec;
use tokio::sync::Notify;

use crate::message::{room, BusMessage, OutFrame};
use crate::model::Millis;

/// Close code: token missing/invalid/expired.
pub const CLOSE_UNAUTHORIZED: u16 = wire::close::UNAUTHORIZED;
/// Close code: forbidden (revoked device, identity change).
pub const CLOSE_FORBIDDEN: u16 = wire::close::FORBIDDEN;
/// Close code: no auth in time, or heartbeat timeout.
pub const CLOSE_TIMEOUT: u16 = wire::close::TIMEOUT;
/// Close code: protocol violation.
pub const CLOSE_PROTOCOL: u16 = wire::close::PROTOCOL;
/// Close code: too many connections or frames.
pub const CLOSE_RATE_LIMITED: u16 = wire::close::TOO_MANY;
/// Close code: the send queue overflowed.
pub const CLOSE_SLOW_CONSUMER: u16 = wire::close::SLOW_CONSUMER;
/// Close code: the relay is shutting down.
pub const CLOSE_GOING_AWAY: u16 = wire::close::GOING_AWAY;

/// Who is on the other end of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A dashboard user.
    Parent,
    /// A child's device.
    Device,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Parent => "parent",
            Role::Device => "device",
        }
    }
}

/// What the socket task should do next, taken from its mailbox in one go.
#[derive(Default)]
pub struct Batch {
    /// Close with this code and reason, then stop.
    pub close: Option<(u16, &'static str)>,
    /// Send a WebSocket ping.
    pub ping: bool,
    /// Frames to write, in order.
    pub frames: VecDeque<Arc<OutFrame>>,
    /// Live frames may have been lost (the cross-node bus reconnected): catch up from the
    /// database before writing them.
    pub catch_up: bool,
    /// Devices: a pending token rotation to hand over (`auth:rotate`), as (generation,
    /// issued at ms).
    pub rotation: Option<(i64, i64)>,
}

#[derive(Default)]
struct Mailbox {
    queue: VecDeque<Arc<OutFrame>>,
    ping: bool,
    catch_up: bool,
    rotation: Option<(i64, i64)>,
    close: Option<(u16, &'static str)>,
}

/// The shared half of one socket.
pub struct Conn {
    /// Unique on this node.
    pub id: u64,
    /// Parent or device.
    pub role: Role,
    mailbox: Mutex<Mailbox>,
    notify: Notify,
    last_seen: AtomicU64,
    next_ping: AtomicU64,
    interval_ms: AtomicU64,
    token_exp: AtomicI64,
    /// Devices: the generation of the token the socket authenticated with.
    token_gen: AtomicI64,
    /// Parents: the position of the last event written (see `Session::last_seq`).
    sent_seq: AtomicI64,
}

impl Conn {
    /// Waits until there is something in the mailbox (or a ping or close is due).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// Takes everything pending.
    pub fn take(&self) -> Batch {
        let mut m = self.mailbox.lock().unwrap_or_else(|e| e.into_inner());
        Batch {
            close: m.close,
            ping: std::mem::take(&mut m.ping),
            frames: std::mem::take(&mut m.queue),
            catch_up: std::mem::take(&mut m.catch_up),
            rotation: m.rotation.take(),
        }
    }

    /// Queues a frame; on overflow clears the queue and asks the socket to close (4509).
    fn push(&self, frame: Arc<OutFrame>, cap: usize) {
        let mut m = self.mailbox.lock().unwrap_or_else(|e| e.into_inner());
        if m.close.is_some() {
            return;
        }
        if m.queue.len() >= cap {
            m.queue = VecDeque::new();
            m.close = Some((CLOSE_SLOW_CONSUMER, "slow consumer: send queue full"));
            metrics::counter!("safestream_rejects_total", "reason" => "slow_consumer").increment(1);
        } else {
            m.queue.push_back(frame);
        }
        drop(m);
        self.notify.notify_one();
    }

    /// Devices: the generation of the token this socket uses.
    pub fn token_gen(&self) -> i64 {
        self.token_gen.load(Ordering::Relaxed)
    }

    /// Devices: records the generation of the token this socket uses (at `auth`, and at
    /// `auth:refresh` before the new token is promoted, so that the promotion does not
    /// close this socket).
    pub fn set_token_gen(&self, gen: i64) {
        self.token_gen.store(gen, Ordering::Relaxed);
    }

    /// Asks the socket to close with `code` (the first request wins).
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut m = self.mailbox.lock().unwrap_or_else(|e| e.into_inner());
        if m.close.is_none() {
            m.close = Some((code, reason));
            m.queue.clear();
        }
        drop(m);
        self.notify.notify_one();
    }

    /// Records that the client showed life (any frame or pong).
    pub fn touch(&self, hub: &Hub) {
        self.last_seen.store(hub.elapsed_ms(), Ordering::Relaxed);
    }

    /// Asks the socket's task to send a ping.
    pub fn ping(&self) {
        let mut m = self.mailbox.lock().unwrap_or_else(|e| e.into_inner());
        m.ping = true;
        drop(m);
        self.notify.notify_one();
    }

    /// Changes this socket's heartbeat interval (the `heartbeat` frame).
    pub fn set_interval(&self, hub: &Hub, interval_ms: u64) {
        self.interval_ms.store(interval_ms, Ordering::Relaxed);
        self.next_ping
            .store(hub.elapsed_ms() + interval_ms, Ordering::Relaxed);
    }

    /// Records the position of the last event written to this (parent) socket.
    pub fn set_sent_seq(&self, seq: i64) {
        self.sent_seq.store(seq, Ordering::Relaxed);
    }

    /// Devices: asks the socket to send `auth:rotate` for pending generation `gen`.
    fn request_rotation(&self, gen: i64, issued_at: i64) {
        let mut m = self.mailbox.lock().unwrap_or_else(|e| e.into_inner());
        if m.close.is_some() {
            return;
        }
        m.rotation = Some((gen, issued_at));
        drop(m);
        self.notify.notify_one();
    }

    /// Devices: drops a request for generation `gen`'s `auth:rotate` (the socket just sent
    /// it at connect).
    pub fn rotation_sent(&self, gen: i64) {
        let mut m = self.mailbox.lock().unwrap_or_else(|e| e.into_inner());
        if m.rotation.is_some_and(|(g, _)| g == gen) {
            m.rotation = None;
        }
    }

    fn request_catch_up(&self) {
        let mut m = self.mailbox.lock().unwrap_or_else(|e| e.into_inner());
        m.catch_up = true;
        drop(m);
        self.notify.notify_one();
    }

    /// Sets when the socket's token expires (seconds since the epoch; 0 = never).
    pub fn set_token_exp(&self, exp: i64) {
        self.token_exp.store(exp, Ordering::Relaxed);
    }
}

/// Live presence of one device on this node.
#[derive(Debug, Clone)]
pub struct Presence {
    /// Its child.
    pub child_id: String,
    /// Open sockets.
    pub sockets: u32,
    /// Last reported: watching something now.
    pub active_viewing: bool,
    /// Last reported video (free-form).
    pub current_video: Value,
    /// Last time it connected, reported or disconnected.
    pub last_seen: Millis,
}

impl Presence {
    /// The `device:status` data for guardians.
    pub fn frame_data(&self, device_id: &str, online: bool) -> Value {
        serde_json::json!({
            "deviceId": device_id,
            "childId": self.child_id,
            "online": online,
            "activeViewing": self.active_viewing && online,
            "currentVideo": if online { self.current_video.clone() } else { Value::Null },
            "lastSeen": crate::model::rfc3339(self.last_seen),
        })
    }
}

/// This node's sockets. See the module doc.
pub struct Hub {
    /// A room's sockets; most rooms (a device, a child with one device) hold one, inline.
    rooms: DashMap<String, SmallVec<[Arc<Conn>; 1]>>,
    conns: DashMap<u64, Arc<Conn>>,
    identities: DashMap<String, usize>,
    presence: DashMap<String, Presence>,
    next_id: AtomicU64,
    queue_cap: usize,
    default_interval_ms: u64,
    epoch: Instant,
    count: AtomicUsize,
    devices: AtomicUsize,
}

impl Hub {
    /// An empty hub whose mailboxes hold `queue_cap` frames.
    pub fn new(queue_cap: usize, heartbeat_ms: u64) -> Hub {
        Hub {
            rooms: DashMap::new(),
            conns: DashMap::new(),
            identities: DashMap::new(),
            presence: DashMap::new(),
            next_id: AtomicU64::new(1),
            queue_cap,
            default_interval_ms: heartbeat_ms,
            epoch: Instant::now(),
            count: AtomicUsize::new(0),
            devices: AtomicUsize::new(0),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Open sockets on this node.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Open device sockets on this node (the rest are parents').
    pub fn devices(&self) -> usize {
        self.devices.load(Ordering::Relaxed)
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts one more socket for `identity` (`user:x` / `device:y`) unless it has `max`.
    pub fn acquire_identity(&self, identity: &str, max: usize) -> bool {
        let mut e = self.identities.entry(identity.to_string()).or_insert(0);
        if *e >= max {
            return false;
        }
        *e += 1;
        true
    }

    /// Undoes [`Hub::acquire_identity`].
    pub fn release_identity(&self, identity: &str) {
        if let dashmap::mapref::entry::Entry::Occupied(mut e) =
            self.identities.entry(identity.to_string())
        {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// Creates a socket's shared half and puts it in `rooms`.
    pub fn register(&self, role: Role, rooms: &[String]) -> Arc<Conn> {
        self.register_with(role, rooms, 0)
    }

    /// [`Hub::register`] for a device socket whose token has generation `token_gen`: set
    /// before the socket is reachable, so that a [`BusMessage::TokenPromoted`] applied
    /// meanwhile judges it by its real generation (not 0, which would close it).
    pub fn register_device(&self, rooms: &[String], token_gen: i64) -> Arc<Conn> {
        self.register_with(Role::Device, rooms, token_gen)
    }

    fn register_with(&self, role: Role, rooms: &[String], token_gen: i64) -> Arc<Conn> {
        let now = self.elapsed_ms();
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            role,
            mailbox: Mutex::new(Mailbox::default()),
            notify: Notify::new(),
            last_seen: AtomicU64::new(now),
            // The first ping comes after a random half to whole interval: sockets that
            // connected together (a reconnect storm, a benchmark) do not all get pinged in the
            // same sweep, which would put a burst of writes in front of live traffic.
            next_ping: AtomicU64::new(
                now + self.default_interval_ms / 2
                    + rand::random::<u64>() % (self.default_interval_ms / 2).max(1),
            ),
            interval_ms: AtomicU64::new(self.default_interval_ms),
            token_exp: AtomicI64::new(0),
            token_gen: AtomicI64::new(token_gen),
            sent_seq: AtomicI64::new(0),
        });
        for r in rooms {
            let mut list = self.rooms.entry(r.clone()).or_default();
            if list.is_empty() {
                metrics::gauge!("safestream_rooms").increment(1.0);
            }
            list.push(conn.clone());
        }
        self.conns.insert(conn.id, conn.clone());
        self.count.fetch_add(1, Ordering::Relaxed);
        if role == Role::Device {
            self.devices.fetch_add(1, Ordering::Relaxed);
        }
        metrics::gauge!("safestream_connections", "role" => role.label()).increment(1.0);
        conn
    }

    /// Takes a socket out of its rooms.
    pub fn unregister(&self, conn: &Arc<Conn>, rooms: &[String]) {
        for r in rooms {
            if let dashmap::mapref::entry::Entry::Occupied(mut e) = self.rooms.entry(r.clone()) {
                e.get_mut().retain(|c| c.id != conn.id);
                if e.get().is_empty() {
                    e.remove();
                    metrics::gauge!("safestream_rooms").decrement(1.0);
                }
            }
        }
        if self.conns.remove(&conn.id).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
            if conn.role == Role::Device {
                self.devices.fetch_sub(1, Ordering::Relaxed);
            }
            metrics::gauge!("safestream_connections", "role" => conn.role.label()).decrement(1.0);
        }
    }

    /// Delivers a bus message to this node's sockets.
    pub fn apply(&self, msg: BusMessage) {
        match msg {
            BusMessage::Deliver { room, frame } => {
                if let Some(list) = self.rooms.get(&room) {
                    for c in list.iter() {
                        c.push(frame.clone(), self.queue_cap);
                    }
                }
            }
            BusMessage::RevokeDevice { device_id } => {
                if let Some(list) = self.rooms.get(&room::device(&device_id)) {
                    for c in list.iter() {
                        c.close(CLOSE_FORBIDDEN, "device revoked");
                    }
                }
            }
            BusMessage::TokenPromoted { device_id, gen } => {
                if let Some(list) = self.rooms.get(&room::device(&device_id)) {
                    for c in list.iter().filter(|c| c.token_gen() < gen) {
                        c.close(CLOSE_UNAUTHORIZED, "device token superseded");
                    }
                }
            }
            BusMessage::RotationPending {
                device_id,
                gen,
                issued_at,
            } => {
                if let Some(list) = self.rooms.get(&room::device(&device_id)) {
                    for c in list.iter() {
                        c.request_rotation(gen, issued_at);
                    }
                }
            }
        }
    }

    /// Asks every socket to catch up from the database: devices get their pending commands
    /// again, parents the events after the last one they were sent. Called when messages
    /// from other nodes may have been lost (the bus reconnected).
    pub fn catch_up_all(&self) {
        for c in self.conns.iter() {
            c.request_catch_up();
        }
    }

    /// Asks the sockets of `room` that were sent events only up to below `seq` to catch up
    /// (the in-flight sweep found a newer committed event for that parent).
    pub fn catch_up_behind(&self, room: &str, seq: i64) {
        if let Some(list) = self.rooms.get(room) {
            for c in list.iter() {
                if c.sent_seq.load(Ordering::Relaxed) < seq {
                    c.request_catch_up();
                }
            }
        }
    }

    /// Device ids with a socket on this node (for presence refresh).
    pub fn local_devices(&self) -> Vec<(String, Presence)> {
        self.presence
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    /// Asks every socket to close (shutdown).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for c in self.conns.iter() {
            c.close(code, reason);
        }
    }

    /// One heartbeat sweep: closes silent and expired sockets and returns those due for a
    /// ping (the caller spreads them out with [`Conn::ping`]; see `server::heartbeat_sweeper`).
    pub fn sweep(&self, now_unix_secs: i64) -> Vec<Arc<Conn>> {
        let now = self.elapsed_ms();
        let mut due = Vec::new();
        for c in self.conns.iter() {
            let exp = c.token_exp.load(Ordering::Relaxed);
            if exp > 0 && now_unix_secs >= exp {
                c.close(CLOSE_UNAUTHORIZED, "token expired");
                continue;
            }
            let interval = c.interval_ms.load(Ordering::Relaxed);
            let silent = now.saturating_sub(c.last_seen.load(Ordering::Relaxed));
            if silent > interval * 7 / 4 {
                c.close(CLOSE_TIMEOUT, "heartbeat timeout");
                continue;
            }
            if now >= c.next_ping.load(Ordering::Relaxed) {
                c.next_ping.store(now + interval, Ordering::Relaxed);
                due.push(c.value().clone());
            }
        }
        due
    }

    // ---- presence -------------------------------------------------------------------

    /// A device socket opened, unless the device already has `max` sockets here (`Err`).
    /// Returns its presence if this is its first socket here. The presence entry doubles as
    /// the per-device connection count (no second map, no second key per device).
    #[allow(clippy::result_unit_err)]
    pub fn device_up(
        &self,
        device_id: &str,
        child_id: &str,
        now: Millis,
        max: usize,
    ) -> Result<Option<Presence>, ()> {
        let mut e = self
            .presence
            .entry(device_id.to_string())
            .or_insert_with(|| Presence {
                child_id: child_id.to_string(),
                sockets: 0,
                active_viewing: false,
                current_video: Value::Null,
                last_seen: now,
            });
        if e.sockets as usize >= max {
            return Err(());
        }
        e.sockets += 1;
        e.last_seen = now;
        Ok((e.sockets == 1).then(|| e.clone()))
    }

    /// A device socket closed. Returns its presence if it was its last socket here.
    pub fn device_down(&self, device_id: &str, now: Millis) -> Option<Presence> {
        if let dashmap::mapref::entry::Entry::Occupied(mut e) =
            self.presence.entry(device_id.to_string())
        {
            let p = e.get_mut();
            p.sockets = p.sockets.saturating_sub(1);
            p.last_seen = now;
            if p.sockets == 0 {
                return Some(e.remove());
            }
        }
        None
    }

    /// A device reported its status. Returns the updated presence.
    pub fn device_status(
        &self,
        device_id: &str,
        active: bool,
        video: Value,
        now: Millis,
    ) -> Option<Presence> {
        let mut e = self.presence.get_mut(device_id)?;
        e.active_viewing = active;
        e.current_video = video;
        e.last_seen = now;
        Some(e.clone())
    }

    /// Live presence of a device on this node.
    pub fn presence(&self, device_id: &str) -> Option<Presence> {
        self.presence.get(device_id).map(|p| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: i64) -> Arc<OutFrame> {
        Arc::new(OutFrame::event("x", Some(n), &Value::Null))
    }

    #[test]
    fn fan_out_reaches_room_members_only() {
        let hub = Hub::new(8, 25_000);
        let a = hub.register(Role::Parent, &["user:a".into()]);
        let b = hub.register(Role::Parent, &["user:b".into()]);
        hub.apply(BusMessage::deliver("user:a".into(), frame(1)));
        assert_eq!(a.take().frames.len(), 1);
        assert_eq!(b.take().frames.len(), 0);
        hub.unregister(&a, &["user:a".into()]);
        hub.apply(BusMessage::deliver("user:a".into(), frame(2)));
        assert_eq!(a.take().frames.len(), 0);
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn overflow_closes_instead_of_growing() {
        let hub = Hub::new(4, 25_000);
        let a = hub.register(Role::Device, &["child:c".into()]);
        for i in 0..10 {
            hub.apply(BusMessage::deliver("child:c".into(), frame(i)));
        }
        let batch = a.take();
        assert_eq!(batch.close.map(|c| c.0), Some(CLOSE_SLOW_CONSUMER));
        assert!(batch.frames.is_empty());
    }

    #[test]
    fn revoke_closes_device_sockets() {
        let hub = Hub::new(4, 25_000);
        let d = hub.register(Role::Device, &["device:d1".into()]);
        let other = hub.register(Role::Device, &["device:d2".into()]);
        hub.apply(BusMessage::RevokeDevice {
            device_id: "d1".into(),
        });
        assert_eq!(d.take().close.map(|c| c.0), Some(CLOSE_FORBIDDEN));
        assert!(other.take().close.is_none());
    }

    #[test]
    fn a_promoted_token_closes_the_sockets_of_older_generations() {
        let hub = Hub::new(4, 25_000);
        let old = hub.register(Role::Device, &["device:d1".into()]);
        let new = hub.register(Role::Device, &["device:d1".into()]);
        new.set_token_gen(2);
        let other = hub.register(Role::Device, &["device:d2".into()]);
        hub.apply(BusMessage::TokenPromoted {
            device_id: "d1".into(),
            gen: 2,
        });
        assert_eq!(old.take().close.map(|c| c.0), Some(CLOSE_UNAUTHORIZED));
        assert!(new.take().close.is_none());
        assert!(other.take().close.is_none());
    }

    #[test]
    fn a_device_socket_is_reachable_only_with_its_real_generation() {
        let hub = Hub::new(4, 25_000);
        let s = hub.register_device(&["device:d1".into()], 2);
        assert_eq!(s.token_gen(), 2);
        // A promotion to the generation this socket uses never closes it.
        hub.apply(BusMessage::TokenPromoted {
            device_id: "d1".into(),
            gen: 2,
        });
        assert!(s.take().close.is_none());
    }

    #[test]
    fn a_pending_rotation_asks_the_device_sockets_to_send_it() {
        let hub = Hub::new(4, 25_000);
        let d = hub.register(Role::Device, &["device:d1".into()]);
        let other = hub.register(Role::Device, &["device:d2".into()]);
        hub.apply(BusMessage::RotationPending {
            device_id: "d1".into(),
            gen: 3,
            issued_at: 77,
        });
        assert_eq!(d.take().rotation, Some((3, 77)));
        assert_eq!(d.take().rotation, None, "taken once");
        assert_eq!(other.take().rotation, None);
        // Sent at connect already: the request is dropped (only for that generation).
        hub.apply(BusMessage::RotationPending {
            device_id: "d1".into(),
            gen: 3,
            issued_at: 77,
        });
        d.rotation_sent(2);
        d.rotation_sent(3);
        assert_eq!(d.take().rotation, None);
    }

    #[test]
    fn sweep_pings_then_times_out_and_expires_tokens() {
        let hub = Hub::new(4, 0); // interval 0: everything is due at once
        let c = hub.register(Role::Device, &[]);
        c.set_interval(&hub, 1_000_000);
        c.next_ping.store(0, Ordering::Relaxed); // its ping is due now
        let due = hub.sweep(0);
        assert_eq!(due.len(), 1, "due for its first ping");
        assert!(Arc::ptr_eq(&due[0], &c));
        let b = c.take();
        assert!(
            b.close.is_none() && !b.ping,
            "the sweep itself sends nothing"
        );
        due[0].ping();
        assert!(c.take().ping);
        assert!(hub.sweep(0).is_empty(), "not due again before its interval");
        let t = hub.register(Role::Parent, &[]);
        t.set_token_exp(100);
        hub.sweep(99);
        assert!(t.take().close.is_none());
        hub.sweep(100);
        assert_eq!(t.take().close.map(|c| c.0), Some(CLOSE_UNAUTHORIZED));
        // A silent socket with a tiny interval times out.
        let s = hub.register(Role::Device, &[]);
        s.set_interval(&hub, 1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        hub.sweep(0);
        assert_eq!(s.take().close.map(|c| c.0), Some(CLOSE_TIMEOUT));
    }

    #[test]
    fn identities_are_limited() {
        let hub = Hub::new(4, 25_000);
        assert!(hub.acquire_identity("user:a", 2));
        assert!(hub.acquire_identity("user:a", 2));
        assert!(!hub.acquire_identity("user:a", 2));
        hub.release_identity("user:a");
        assert!(hub.acquire_identity("user:a", 2));
    }

    #[test]
    fn presence_counts_sockets() {
        let hub = Hub::new(4, 25_000);
        assert!(hub.device_up("d", "c", 1, 2).unwrap().is_some());
        assert!(hub.device_up("d", "c", 2, 2).unwrap().is_none());
        assert!(
            hub.device_up("d", "c", 2, 2).is_err(),
            "a third socket is over the limit"
        );
        assert!(hub.device_status("d", true, Value::from("v1"), 3).is_some());
        assert!(hub.device_down("d", 4).is_none());
        let p = hub.device_down("d", 5).unwrap();
        assert_eq!(p.frame_data("d", false)["online"], false);
        assert!(hub.presence("d").is_none());
    }
}
