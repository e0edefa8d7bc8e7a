//! REST endpoints over real sockets on 127.0.0.1:0: registry, commands, acks, errors,
//! authorization negatives, notifications, screen time, publish, pairing, revocation.
//!
//! One test binary (`cargo test -p relay --test api`), split by area:
//! - [`registry`]: children, guardians, devices, revocation;
//! - [`access`]: authentication and authorization failures, bodies, health and metrics;
//! - [`commands`]: creation, listing, acks, expiry, the device's HTTPS sync;
//! - [`notifications`]: notifications, screen time, restricted attempts, publish;
//! - [`pairing`]: the pairing flow, its limits, refused claims;
//! - [`admin`]: the admin overview and the console's static files.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod admin;
mod commands;
mod notifications;
mod pairing;
mod registry;

use serde_json::Value;

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or("<no error code>")
}
