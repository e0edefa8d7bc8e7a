//! SafeStream's wire contract, in one place: what crosses a socket or an HTTP body between
//! the relay, the agent, dashboards and the main app's backend.
//!
//! It depends on serde alone (and `serde_json` for free-form payloads): no runtime, no I/O,
//! no clock. The relay, agent-core, the bindings and the fuzz targets use it; the TypeScript
//! types in `src/generated/wire.ts` are generated from it (`scripts/generate-types.sh`, and a
//! unit test here fails when that file is stale).
//!
//! | module | holds |
//! |---|---|
//! | [`event`] | every event name of the socket protocol |
//! | [`frame`] | the `{"event", "seq"?, "data"}` envelope and the control frames' data |
//! | [`command`] | command types (the one list), statuses, ack status, the command frames' data, the REST view of a command |
//! | [`records`] | the REST views of children, devices, notifications; notification types |
//! | [`rest`] | typed REST request bodies, each validated in one place |
//! | [`validate`] | the field checks those bodies use, and [`Invalid`] |
//! | [`close`] | WebSocket close codes |
//! | [`error`] | error codes of REST answers and `error` frames |
//! | [`push`] | push tokens and the wake-up push's data |
//! | [`webhook`] | webhook event types and the Standard Webhooks header names |
//!
//! To add a command type, add one line to [`with_command_types!`]; everything else (the
//! relay's validation, the agent's parsing, the uniffi enum, the TypeScript union) follows.

pub mod close;
pub mod command;
pub mod error;
pub mod event;
pub mod frame;
pub mod push;
pub mod records;
pub mod rest;
pub mod validate;
pub mod webhook;

#[cfg(test)]
mod typescript;

pub use command::{
    AckStatus, CommandNew, CommandSent, CommandStatus, CommandStatusData, CommandType, CommandView,
};
pub use frame::Frame;
pub use validate::Invalid;
