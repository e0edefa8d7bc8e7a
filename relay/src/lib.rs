//! SafeStream relay: one small server between parents' dashboards, children's devices and
//! the main app's backend. WebSocket and HTTP share one port.
//!
//! The wire contract is `docs/protocol.md`; the design is in `ARCHITECTURE.md`.
//!
//! # Layout
//! - [`config`]: flags and `SAFESTREAM_*` variables.
//! - [`server`]: start, the accept loop (TLS optional), sweepers, graceful shutdown.
//! - [`app`]: the shared state and the rate limiters.
//! - [`auth`]: parent JWTs, device tokens, the server key.
//! - [`http`]: the REST API and its extractors.
//! - [`ws`]: `/api/socket` — first-frame auth, resume, delivery, client frames.
//! - [`sio`]: Socket.IO on the same path (`EIO=4`): polling, WebSocket, upgrade, recovery,
//!   forwarding between nodes.
//! - [`hub`]: this node's sockets, rooms, mailboxes, presence, heartbeat sweep.
//! - [`bus`]: the fan-out seam: in-process on one node, Redis pub/sub across nodes.
//! - [`message`]: what travels on the bus: frames, room-addressed messages, room names.
//! - [`presence`]: the presence seam: the hub alone on one node, Redis entries with expiry
//!   across nodes.
//! - [`store`]: durable state behind one seam: SQLite file, or PostgreSQL by URL.
//! - [`model`]: domain types, JSON shapes, validation.
//! - [`error`]: the JSON error shape.
//! - [`dev`]: `--dev` mode.
//! - [`webhooks`]: signed webhooks to the backend: settings, signatures, the delivery loop.
//! - [`push`]: wake-up pushes to sleeping phones (FCM, APNs) and the sender loop.

pub mod app;
pub mod auth;
pub mod bus;
pub mod config;
pub mod dev;
pub mod dev_device;
pub mod error;
pub mod http;
pub mod hub;
pub mod message;
pub mod metrics_setup;
pub mod model;
pub mod presence;
pub mod push;
pub mod server;
pub mod sio;
pub mod store;
pub mod tls;
pub mod webhooks;
pub mod ws;

pub use config::Config;
pub use server::{run, start, Running};
