//! The presence seam: which devices are online, and where the answer comes from.
//!
//! A device is online while it has a socket on some node. Each node's [`Hub`] knows its own
//! sockets (and counts them for the per-device limit); a [`Presence`] answers for the whole
//! relay, chosen at start the way the [`Bus`](crate::bus::Bus) is:
//!
//! - one node: [`LocalPresence`]: the hub is the whole truth; nothing is shared;
//! - several nodes: [`RedisPresence`](redis::RedisPresence): each node also writes an entry
//!   with an expiry for every device it holds, and reaps the entries of nodes that died.
//!
//! Guardians learn of changes through `device:status` frames ([`publish`]).
//!
//! # Layout
//! - `mod.rs`: the [`Presence`] trait, [`LocalPresence`], and the helpers every caller uses
//!   ([`lookup`], [`lookup_many`], [`publish`]).
//! - `redis.rs`: [`RedisPresence`](redis::RedisPresence): entries in Redis, the refresher
//!   and the reaper.

pub mod redis;

use std::collections::HashMap;
use std::sync::Arc;
use wire::event;

use futures_util::future::BoxFuture;

use crate::app::App;
use crate::bus::{room, BusMessage, OutFrame};
use crate::hub::{self, Hub};

/// Where device presence is known. See the module doc.
///
/// Methods return boxed futures so that the trait can be used as `Arc<dyn Presence>` (and a
/// socket's future holds only a pointer while one runs).
pub trait Presence: Send + Sync + 'static {
    /// The presence of one device: this node's view first, then the other nodes'.
    fn lookup<'a>(&'a self, device_id: &'a str) -> BoxFuture<'a, Option<hub::Presence>>;

    /// The presence of several devices (those online anywhere).
    fn lookup_many<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, HashMap<String, hub::Presence>>;

    /// A device's first socket on this node opened, or it reported a new status.
    fn announce<'a>(&'a self, device_id: &'a str, p: &'a hub::Presence) -> BoxFuture<'a, ()>;

    /// A device's last socket on this node closed.
    fn withdraw<'a>(&'a self, device_id: &'a str) -> BoxFuture<'a, ()>;

    /// Writes this node's address for the other nodes (Socket.IO forwarding, `crate::sio`);
    /// nothing to do alone.
    fn advertise<'a>(&'a self, url: &'a str) -> BoxFuture<'a, ()>;

    /// The address another node advertised, if it is known.
    fn node_url<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Option<String>>;

    /// Background upkeep until shutdown (refreshing and reaping shared entries); ends at
    /// once when there is nothing to keep.
    fn maintain(self: Arc<Self>, app: Arc<App>) -> BoxFuture<'static, ()>;
}

/// One node, no other service: the hub is the whole truth.
pub struct LocalPresence {
    hub: Arc<Hub>,
}

impl LocalPresence {
    /// Presence as `hub` sees it.
    pub fn new(hub: Arc<Hub>) -> LocalPresence {
        LocalPresence { hub }
    }
}

impl Presence for LocalPresence {
    fn lookup<'a>(&'a self, device_id: &'a str) -> BoxFuture<'a, Option<hub::Presence>> {
        Box::pin(async move { self.hub.presence(device_id) })
    }

    fn lookup_many<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, HashMap<String, hub::Presence>> {
        Box::pin(async move {
            let mut out = HashMap::new();
            for id in ids {
                if let Some(p) = self.hub.presence(id) {
                    out.insert(id.clone(), p);
                }
            }
            out
        })
    }

    fn announce<'a>(&'a self, _device_id: &'a str, _p: &'a hub::Presence) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn withdraw<'a>(&'a self, _device_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn advertise<'a>(&'a self, _url: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn node_url<'a>(&'a self, _node: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async { None })
    }

    fn maintain(self: Arc<Self>, _app: Arc<App>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// The presence of one device: this node's view first, then the cluster's.
pub async fn lookup(app: &App, device_id: &str) -> Option<hub::Presence> {
    app.presence.lookup(device_id).await
}

/// The presence of several devices (those online anywhere).
pub async fn lookup_many(app: &App, ids: &[String]) -> HashMap<String, hub::Presence> {
    app.presence.lookup_many(ids).await
}

/// Writes the `device.online` / `device.offline` webhook event for a device whose first
/// socket on this node opened (`online`) or whose last one closed. Going offline is only
/// reported when the device is online on no other node. Presence is not stored, so this is
/// its own write, made when this node sees the change (after the fact, not with it).
pub async fn webhook(app: &App, device_id: &str, p: &hub::Presence, online: bool) {
    if !app.store.webhooks_on() {
        return;
    }
    let (kind, data) = if online {
        (wire::webhook::DEVICE_ONLINE, p.frame_data(device_id, true))
    } else {
        if lookup(app, device_id).await.is_some() {
            return;
        }
        (
            wire::webhook::DEVICE_OFFLINE,
            p.frame_data(device_id, false),
        )
    };
    if let Err(e) = app.store.emit_webhook(kind, data, p.last_seen).await {
        tracing::warn!(error = %e, kind, "presence: could not write the webhook event");
    }
}

/// Sends `device:status` to every guardian of the device's child.
///
/// What is published is the presence *after* the guardians were read, not the state the
/// caller saw: two sockets of one device racing (a quick drop and reconnect) then both
/// publish the truth, so on one node the last `device:status` a guardian gets is never
/// stale. Across nodes two such frames may arrive in either order; `lastSeen` tells which is
/// newer. `fallback` is what is reported when the device is online nowhere.
pub async fn publish(app: &App, device_id: &str, fallback: &hub::Presence) {
    let guardians = match app.store.guardians(&fallback.child_id).await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "presence: could not read guardians");
            return;
        }
    };
    let data = match lookup(app, device_id).await {
        Some(now) => now.frame_data(device_id, true),
        None => fallback.frame_data(device_id, false),
    };
    let f = Arc::new(OutFrame::event(event::DEVICE_STATUS, None, &data));
    for g in guardians {
        app.bus
            .publish(BusMessage::deliver(room::user(&g), f.clone()));
    }
}
