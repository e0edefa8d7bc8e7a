//! Token rotation in the link machine: `auth:rotate` → store → `auth:refresh`.

use serde_json::json;

use crate::backoff::Rng;
use crate::machine::link::{Action as L, Event as E, Heartbeats, Link, Outbound};
use crate::machine::Time;
use crate::platform::ConnectionState as St;
use crate::token::Secret;

fn tok(t: &str) -> Secret {
    Secret(t.to_owned())
}

fn rotate(t: &str) -> E {
    E::Frame(json!({"event": "auth:rotate", "data": {"token": t}}).to_string())
}

/// A machine connected with token `t1`.
fn connected() -> Link {
    let mut l = Link::new(
        Heartbeats {
            foreground: None,
            background: 300,
        },
        Some(tok("t1")),
        Rng::seeded(1),
    );
    l.handle(Time::ZERO, E::Start);
    l.handle(Time::ZERO, E::Opened);
    l.handle(
        Time::ms(10),
        E::Frame(json!({"event": "ready", "data": {"heartbeatSec": 25}}).to_string()),
    );
    assert_eq!(l.state(), St::Connected);
    l
}

#[test]
fn a_rotated_token_is_stored_first_then_announced_on_the_open_socket() {
    let mut l = connected();
    // The decision: store it (durably), nothing sent yet.
    let actions = l.handle(Time::ms(20), rotate("t2"));
    assert_eq!(actions, vec![L::StoreToken(tok("t2"))]);
    assert!(
        !format!("{actions:?}").contains("t2"),
        "tokens are redacted"
    );
    // Stored: switch to it with `auth:refresh` on the same socket (no reconnect).
    assert_eq!(
        l.handle(Time::ms(30), E::TokenRefreshed(tok("t2"))),
        vec![L::Send(Outbound::Refresh(tok("t2")))]
    );
    assert_eq!(l.state(), St::Connected);
    // The same token sent again (a second request) changes nothing.
    assert_eq!(l.handle(Time::ms(40), rotate("t2")), vec![]);
    // A later reconnect authenticates with the new token.
    l.handle(Time::ms(50), E::Closed(Some(1001)));
    l.handle(Time::ms(100_000), E::Timer);
    assert_eq!(
        l.handle(Time::ms(100_001), E::Opened),
        vec![L::Send(Outbound::Auth(tok("t2")))]
    );
}

#[test]
fn when_storing_fails_the_old_token_stays() {
    let mut l = connected();
    assert_eq!(
        l.handle(Time::ms(20), rotate("t2")),
        vec![L::StoreToken(tok("t2"))]
    );
    // The driver reports nothing (storing failed): nothing is sent, and the next
    // connection uses the old token, which the relay still accepts (and sends t2 again).
    l.handle(Time::ms(50), E::Closed(Some(1001)));
    l.handle(Time::ms(100_000), E::Timer);
    assert_eq!(
        l.handle(Time::ms(100_001), E::Opened),
        vec![L::Send(Outbound::Auth(tok("t1")))]
    );
    l.handle(
        Time::ms(100_002),
        E::Frame(json!({"event": "ready", "data": {}}).to_string()),
    );
    assert_eq!(
        l.handle(Time::ms(100_003), rotate("t2")),
        vec![L::StoreToken(tok("t2"))]
    );
}

#[test]
fn malformed_rotations_are_ignored() {
    let mut l = connected();
    for bad in [
        json!({"event": "auth:rotate", "data": {}}),
        json!({"event": "auth:rotate", "data": {"token": 5}}),
        json!({"event": "auth:rotate", "data": {"token": ""}}),
        json!({"event": "auth:rotate", "data": {"token": "has space"}}),
        json!({"event": "auth:rotate", "data": {"token": "x".repeat(9000)}}),
    ] {
        assert_eq!(l.handle(Time::ms(20), E::Frame(bad.to_string())), vec![]);
    }
    assert_eq!(l.state(), St::Connected);
}

#[test]
fn a_rotation_before_ready_is_ignored() {
    let mut l = Link::new(
        Heartbeats {
            foreground: None,
            background: 300,
        },
        Some(tok("t1")),
        Rng::seeded(1),
    );
    l.handle(Time::ZERO, E::Start);
    l.handle(Time::ZERO, E::Opened);
    assert_eq!(l.handle(Time::ms(5), rotate("t2")), vec![]);
}
