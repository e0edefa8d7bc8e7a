//! Scenario tests of the agent's logic over fake transport, API, storage and clock, with
//! tokio's paused time: no sockets, no sleeps.

pub(crate) mod fakes;
mod push;
mod reports;
mod scenarios;
