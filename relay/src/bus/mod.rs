//! The event bus seam: how a committed change reaches the sockets that care about it.
//!
//! Everything the relay sends to sockets travels as a [`BusMessage`] addressed to a room
//! (`user:<id>`, `child:<id>`, `device:<id>`, `admins`). On one node the [`LocalBus`] hands
//! messages straight to the node's [`Hub`]. A multi-node bus (Redis) implements the same
//! trait: it publishes to every node, and each node's subscriber hands what it receives to its
//! own hub. Messages are plain data (text plus a little metadata) so they can cross a network.
//!
//! **Architecture Invariant:** `publish` never blocks and never awaits: it is called while the
//! store holds its write lock, so that events leave in commit order.
//!
//! # Layout
//! - `mod.rs`: the [`Bus`] trait and the one-node [`LocalBus`].
//! - `redis.rs`: [`RedisBus`](redis::RedisBus), Redis pub/sub across nodes.
//! - The messages themselves ([`BusMessage`], [`OutFrame`], [`room`]) live in
//!   [`crate::message`], which the hub uses too; they are re-exported here.

pub mod redis;

use std::sync::Arc;

pub use crate::message::{room, BusMessage, CommandMeta, OutFrame};

use crate::hub::Hub;

/// Cross-node fan-out. See the module doc.
pub trait Bus: Send + Sync + 'static {
    /// Sends a message to every node (this one included). Never blocks.
    fn publish(&self, msg: BusMessage);
}

/// What a multi-node bus tells the node's device cache (the store's): another node revoked
/// a device, or revocations may have been missed. A trait so the bus does not depend on the
/// store (the store depends on the bus).
pub trait DeviceCache: Send + Sync + 'static {
    /// Forgets a cached device (another node revoked it).
    fn forget_device(&self, id: &str);
    /// Forgets every cached device (the next authentication of each reads the database).
    fn forget_all_devices(&self);
}

/// The in-process bus: one node, no other service.
pub struct LocalBus {
    hub: Arc<Hub>,
}

impl LocalBus {
    /// A bus that delivers to `hub`.
    pub fn new(hub: Arc<Hub>) -> LocalBus {
        LocalBus { hub }
    }
}

impl Bus for LocalBus {
    fn publish(&self, msg: BusMessage) {
        self.hub.apply(msg);
    }
}
