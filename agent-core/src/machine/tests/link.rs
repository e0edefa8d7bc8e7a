//! The link machine, driven directly.

use std::time::Duration;

use serde_json::json;

use crate::backoff::{Rng, SOCKET};
use crate::machine::link::{self, Heartbeats, Link, Outbound};
use crate::machine::Time;
use crate::platform::ConnectionState as St;
use crate::token::Secret;

use link::Action as L;
use link::Event as E;

const S: Duration = Duration::from_secs(1);

fn tok(t: &str) -> Secret {
    Secret(t.to_owned())
}

fn heartbeats(foreground: Option<u32>) -> Heartbeats {
    Heartbeats {
        foreground,
        background: 300,
    }
}

fn new_link(foreground: Option<u32>) -> Link {
    Link::new(heartbeats(foreground), Some(tok("t1")), Rng::seeded(1))
}

fn ready(hb: u64) -> E {
    E::Frame(json!({"event": "ready", "data": {"heartbeatSec": hb}}).to_string())
}

#[test]
fn the_relays_clock_in_ready_is_passed_on_before_anything_else() {
    let mut l = new_link(None);
    l.handle(Time::ZERO, E::Start);
    l.handle(Time::ZERO, E::Opened);
    let frame = json!({"event": "ready",
        "data": {"heartbeatSec": 25, "serverTime": "2026-11-25T19:30:00.000Z"}});
    let actions = l.handle(Time::ZERO, E::Frame(frame.to_string()));
    assert_eq!(actions.first(), Some(&L::RelayTime(1_795_635_000_000)));
    assert!(actions.contains(&L::RetryAcks));
    // Without a serverTime (an older relay) nothing is said about its clock.
    let mut l = new_link(None);
    assert!(!connect(&mut l, Time::ZERO, 25)
        .iter()
        .any(|a| matches!(a, L::RelayTime(_))));
}

fn command_frame(id: &str) -> E {
    E::Frame(json!({"event": "command:new", "data": {"id": id}}).to_string())
}

/// Start, open and ready at `at` (the machine is new or waiting at `at`).
fn connect(l: &mut Link, at: Time, hb: u64) -> Vec<L> {
    let first = if l.state() == St::Stopped {
        E::Start
    } else {
        E::Timer
    };
    let opened = l.handle(at, first);
    assert_eq!(opened.last(), Some(&L::Open), "{opened:?}");
    assert_eq!(
        l.handle(at, E::Opened),
        vec![L::Send(Outbound::Auth(tok("t1")))]
    );
    let actions = l.handle(at, ready(hb));
    assert_eq!(l.state(), St::Connected);
    actions
}

/// The wait the machine chose after a failure at `now`.
fn wait(l: &Link, now: Time) -> Duration {
    l.next_deadline().expect("waiting").since(now)
}

#[test]
fn start_authenticates_with_the_first_frame_then_is_connected() {
    let mut l = new_link(None);
    assert_eq!(l.next_deadline(), None);
    assert_eq!(
        l.handle(Time::ZERO, E::Start),
        vec![L::Report(St::Connecting), L::Open]
    );
    assert_eq!(l.next_deadline(), Some(Time::ZERO + link::CONNECT_TIMEOUT));
    let t = Time::ms(100);
    assert_eq!(
        l.handle(t, E::Opened),
        vec![L::Send(Outbound::Auth(tok("t1")))]
    );
    assert_eq!(l.next_deadline(), Some(t + link::READY_TIMEOUT));
    let t = Time::ms(200);
    assert_eq!(
        l.handle(t, ready(25)),
        vec![L::Report(St::Connected), L::RetryAcks]
    );
    assert_eq!(l.next_deadline(), Some(t + Duration::from_millis(62_500)));
    // The first frame's text: token in the frame, never anywhere else.
    assert_eq!(
        Outbound::Auth(tok("t1")).to_text(),
        r#"{"data":{"token":"t1"},"event":"auth"}"#
    );
    assert!(!format!("{:?}", L::Send(Outbound::Auth(tok("t1")))).contains("t1"));
}

#[test]
fn without_a_token_waits_for_one() {
    let mut l = Link::new(heartbeats(None), None, Rng::seeded(1));
    assert_eq!(
        l.handle(Time::ZERO, E::Start),
        vec![L::Report(St::NotPaired)]
    );
    assert_eq!(l.next_deadline(), None);
    assert_eq!(l.handle(Time::ms(5), E::NetworkAvailable), vec![]);
    assert_eq!(
        l.handle(Time::ms(10), E::TokenChanged(Some(tok("t1")))),
        vec![L::Report(St::Connecting), L::Open]
    );
}

#[test]
fn connect_and_ready_timeouts_end_the_attempt() {
    let mut l = new_link(None);
    l.handle(Time::ZERO, E::Start);
    // A timer before the deadline changes nothing.
    assert_eq!(l.handle(Time::ms(19_999), E::Timer), vec![]);
    let t = Time::ZERO + link::CONNECT_TIMEOUT;
    assert_eq!(
        l.handle(t, E::Timer),
        vec![L::Drop, L::Report(St::Disconnected)]
    );
    let w = wait(&l, t);
    assert!(w >= SOCKET.floor && w <= SOCKET.ceiling(0), "{w:?}");
    let t = l.next_deadline().unwrap();
    assert_eq!(
        l.handle(t, E::Timer),
        vec![L::Report(St::Connecting), L::Open]
    );
    l.handle(t, E::Opened);
    let t = t + link::READY_TIMEOUT;
    assert_eq!(
        l.handle(t, E::Timer),
        vec![L::Drop, L::Report(St::Disconnected)]
    );
    let w = wait(&l, t);
    assert!(w >= SOCKET.floor && w <= SOCKET.ceiling(1), "{w:?}");
}

#[test]
fn backoff_is_capped_full_jitter_over_failed_attempts() {
    let mut l = new_link(None);
    let mut now = Time::ZERO;
    l.handle(now, E::Start);
    let mut waits = Vec::new();
    for n in 0..12u32 {
        assert_eq!(
            l.handle(now, E::OpenFailed("refused".into())),
            vec![L::Drop, L::Report(St::Disconnected)]
        );
        let w = wait(&l, now);
        assert!(
            w >= SOCKET.floor && w <= SOCKET.ceiling(n),
            "attempt {n}: {w:?}"
        );
        waits.push(w);
        assert_eq!(l.backoff_attempt(), n + 1);
        now = l.next_deadline().unwrap();
        assert_eq!(l.handle(now, E::Timer).last(), Some(&L::Open));
    }
    assert!(waits.iter().all(|w| *w <= Duration::from_secs(60)));
    assert!(
        waits[6..].iter().any(|w| *w > Duration::from_secs(16)),
        "{waits:?}"
    );
}

#[test]
fn backoff_resets_only_after_a_connection_that_held() {
    let mut l = new_link(None);
    let mut now = Time::ZERO;
    l.handle(now, E::Start);
    for _ in 0..3 {
        l.handle(now, E::OpenFailed("refused".into()));
        now = l.next_deadline().unwrap();
        l.handle(now, E::Timer);
    }
    assert_eq!(l.backoff_attempt(), 3);
    l.handle(now, E::Opened);
    l.handle(now, ready(25));
    // Closed after 10 s: not held, the backoff keeps growing.
    now = now + 10 * S;
    assert_eq!(
        l.handle(now, E::Closed(Some(1001))),
        vec![L::Drop, L::Report(St::Disconnected)]
    );
    assert_eq!(l.backoff_attempt(), 4);
    assert!(wait(&l, now) <= SOCKET.ceiling(3));
    now = l.next_deadline().unwrap();
    connect(&mut l, now, 25);
    // Held 30 s (kept alive by pings): back to the first step.
    for _ in 0..2 {
        now = now + 15 * S;
        l.handle(now, E::Activity);
    }
    l.handle(now, E::SocketFailed(None));
    assert_eq!(l.backoff_attempt(), 1);
    assert!(wait(&l, now) <= SOCKET.ceiling(0));
}

#[test]
fn protocol_violation_close_never_resets_the_backoff() {
    let mut l = new_link(None);
    let mut now = Time::ZERO;
    l.handle(now, E::Start);
    l.handle(now, E::OpenFailed("refused".into()));
    now = l.next_deadline().unwrap();
    connect(&mut l, now, 25);
    now = now + 60 * S;
    l.handle(now, E::Activity);
    l.handle(now, E::Closed(Some(4400)));
    assert_eq!(
        l.backoff_attempt(),
        2,
        "a 4400 after 60 s does not count as held"
    );
}

#[test]
fn unauthorized_close_waits_for_a_new_token() {
    let mut l = new_link(None);
    let now = Time::ZERO;
    connect(&mut l, now, 25);
    let now = now + 40 * S;
    assert_eq!(
        l.handle(now, E::Closed(Some(4401))),
        vec![L::Drop, L::Report(St::Unauthorized)]
    );
    assert_eq!(
        l.next_deadline(),
        None,
        "no reconnect with the refused token"
    );
    assert_eq!(l.handle(now + 3600 * S, E::Timer), vec![]);
    assert_eq!(l.handle(now + 3600 * S, E::NetworkAvailable), vec![]);
    let now = now + 3601 * S;
    assert_eq!(
        l.handle(now, E::TokenChanged(Some(tok("t2")))),
        vec![L::Report(St::Connecting), L::Open]
    );
    assert_eq!(
        l.handle(now, E::Opened),
        vec![L::Send(Outbound::Auth(tok("t2")))]
    );
    // Refused again right away (4403 before ready): unauthorized again.
    assert_eq!(
        l.handle(now, E::Closed(Some(4403))),
        vec![L::Drop, L::Report(St::Unauthorized)]
    );
}

#[test]
fn token_changed_during_an_attempt_is_tried_at_once() {
    let mut l = new_link(None);
    l.handle(Time::ZERO, E::Start);
    l.handle(Time::ZERO, E::Opened);
    // The new token arrives while `auth` with the old one is under way.
    assert_eq!(
        l.handle(Time::ms(5), E::TokenChanged(Some(tok("t2")))),
        vec![]
    );
    assert_eq!(
        l.handle(Time::ms(10), E::Closed(Some(4401))),
        vec![L::Drop, L::Open],
        "still connecting: no state change, no backoff"
    );
    assert_eq!(
        l.handle(Time::ms(10), E::Opened),
        vec![L::Send(Outbound::Auth(tok("t2")))]
    );
}

#[test]
fn token_changes_while_connected_reconnect_or_disconnect() {
    let mut l = new_link(None);
    connect(&mut l, Time::ZERO, 25);
    assert_eq!(
        l.handle(S.into_time(), E::TokenChanged(Some(tok("t2")))),
        vec![L::Close, L::Report(St::Connecting), L::Open]
    );
    l.handle(S.into_time(), E::Opened);
    l.handle(S.into_time(), ready(25));
    assert_eq!(
        l.handle((2 * S).into_time(), E::TokenChanged(None)),
        vec![L::Close, L::Report(St::NotPaired)]
    );
    assert_eq!(l.next_deadline(), None);
}

#[test]
fn refresh_is_sent_on_the_open_socket_only() {
    let mut l = new_link(None);
    connect(&mut l, Time::ZERO, 25);
    assert_eq!(
        l.handle(S.into_time(), E::TokenRefreshed(tok("t2"))),
        vec![L::Send(Outbound::Refresh(tok("t2")))]
    );
    let now = (2 * S).into_time();
    l.handle(now, E::SocketFailed(Some("reset".into())));
    let now = l.next_deadline().unwrap();
    l.handle(now, E::Timer);
    assert_eq!(
        l.handle(now, E::Opened),
        vec![L::Send(Outbound::Auth(tok("t2")))],
        "the next connection uses the new token"
    );
    assert_eq!(
        l.handle(now, ready(25)),
        vec![L::Report(St::Connected), L::RetryAcks],
        "the refresh is not re-sent"
    );
    // A refresh hint handled after the socket already authenticated with it sends nothing.
    assert_eq!(l.handle(now, E::TokenRefreshed(tok("t2"))), vec![]);
}

#[test]
fn liveness_deadline_is_lazy_and_detects_silence() {
    let mut l = new_link(None);
    let t0 = Time::ZERO;
    connect(&mut l, t0, 25);
    let window = Duration::from_millis(62_500);
    assert_eq!(l.next_deadline(), Some(t0 + window));
    // Inbound traffic only records the time: the deadline is not moved.
    for i in 1..=3 {
        l.handle(t0 + 10 * i * S, E::Activity);
        assert_eq!(l.next_deadline(), Some(t0 + window));
    }
    // When it fires early it is moved to the last sign of life + the window.
    assert_eq!(l.handle(t0 + window, E::Timer), vec![]);
    assert_eq!(l.next_deadline(), Some(t0 + 30 * S + window));
    // Then silence: dead, and it held (≥ 30 s), so the first backoff step.
    let dead = t0 + 30 * S + window;
    assert_eq!(
        l.handle(dead, E::Timer),
        vec![L::Drop, L::Report(St::Disconnected)]
    );
    assert!(wait(&l, dead) <= SOCKET.ceiling(0));
}

#[test]
fn heartbeat_negotiation_and_liveness_window() {
    // Relay default, no preference: nothing asked.
    let mut l = new_link(None);
    let actions = connect(&mut l, Time::ZERO, 25);
    assert!(
        !actions.iter().any(|a| matches!(a, L::Send(_))),
        "{actions:?}"
    );
    // Background: ask 300 s, and wait 2.5 × 300 s.
    let now = Time::ms(1000);
    assert_eq!(
        l.handle(now, E::Background(true)),
        vec![L::Send(Outbound::Heartbeat(300))]
    );
    assert_eq!(l.next_deadline(), Some(Time::ZERO + 750 * S));
    assert_eq!(
        l.handle(now, E::Background(true)),
        vec![],
        "no change, no frame"
    );
    // Foreground again: the relay's default (clamped to 25–600), 2.5 × 25 s.
    assert_eq!(
        l.handle(now, E::Background(false)),
        vec![L::Send(Outbound::Heartbeat(25))]
    );
    assert_eq!(
        l.next_deadline(),
        Some(Time::ZERO + Duration::from_millis(62_500))
    );

    // A configured foreground interval is asked at every connection...
    let mut l = new_link(Some(60));
    let actions = connect(&mut l, Time::ZERO, 25);
    assert_eq!(actions.last(), Some(&L::Send(Outbound::Heartbeat(60))));
    assert_eq!(l.next_deadline(), Some(Time::ZERO + 150 * S));
    // ...but never below the relay's own interval for the liveness window.
    let mut l = new_link(Some(25));
    connect(&mut l, Time::ZERO, 40);
    assert_eq!(l.next_deadline(), Some(Time::ZERO + 100 * S));
}

#[test]
fn background_and_status_are_resent_after_a_reconnect() {
    let mut l = new_link(None);
    let status = r#"{"event":"device:status","data":{"activeViewing":true}}"#.to_owned();
    // Set while not connected: only remembered.
    l.handle(Time::ZERO, E::Start);
    assert_eq!(l.handle(Time::ZERO, E::Background(true)), vec![]);
    assert_eq!(l.handle(Time::ZERO, E::Status(status.clone())), vec![]);
    l.handle(Time::ZERO, E::Opened);
    let expected = vec![
        L::Report(St::Connected),
        L::RetryAcks,
        L::Send(Outbound::Heartbeat(300)),
        L::Send(Outbound::Status(status.clone())),
    ];
    assert_eq!(l.handle(Time::ZERO, ready(25)), expected);
    let now = Time::ms(500);
    l.handle(now, E::SocketFailed(None));
    let now = l.next_deadline().unwrap();
    l.handle(now, E::Timer);
    l.handle(now, E::Opened);
    assert_eq!(l.handle(now, ready(25)), expected);
}

#[test]
fn network_hint_ends_the_wait_or_is_kept_for_the_next_one() {
    let mut l = new_link(None);
    let mut now = Time::ZERO;
    l.handle(now, E::Start);
    for _ in 0..5 {
        l.handle(now, E::OpenFailed("refused".into()));
        now = l.next_deadline().unwrap();
        l.handle(now, E::Timer);
    }
    l.handle(now, E::OpenFailed("refused".into()));
    assert!(l.next_deadline().unwrap() > now);
    assert_eq!(
        l.handle(now, E::NetworkAvailable),
        vec![L::Report(St::Connecting), L::Open]
    );
    assert_eq!(l.backoff_attempt(), 0);
    // A hint while connected makes the next loss reconnect without waiting.
    l.handle(now, E::Opened);
    l.handle(now, ready(25));
    assert_eq!(l.handle(now, E::NetworkAvailable), vec![]);
    assert_eq!(
        l.handle(now + S, E::SocketFailed(None)),
        vec![
            L::Drop,
            L::Report(St::Disconnected),
            L::Report(St::Connecting),
            L::Open
        ]
    );
}

#[test]
fn send_failure_ends_the_connection_without_counting_as_held() {
    let mut l = new_link(None);
    let mut now = Time::ZERO;
    connect(&mut l, now, 25);
    now = now + 60 * S;
    l.handle(now, E::Activity);
    assert_eq!(
        l.handle(now, E::SendFailed("broken pipe".into())),
        vec![L::Drop, L::Report(St::Disconnected)]
    );
    assert_eq!(l.backoff_attempt(), 1);
}

#[test]
fn command_frames_are_handed_over_in_order_duplicates_included() {
    let mut l = new_link(None);
    l.handle(Time::ZERO, E::Start);
    // Not before the socket is open.
    assert_eq!(l.handle(Time::ZERO, command_frame("early")), vec![]);
    l.handle(Time::ZERO, E::Opened);
    // Before `ready` too (the relay may flush queued commands first).
    assert_eq!(
        l.handle(Time::ZERO, command_frame("c0")),
        vec![L::Command(json!({"id": "c0"}))]
    );
    l.handle(Time::ZERO, ready(25));
    // The executor dedups (it owns the ledger); the machine hands over every copy, in
    // order, and each copy is a sign of life.
    let a = l.handle(Time::ms(10), command_frame("c1"));
    let b = l.handle(Time::ms(20), command_frame("c1"));
    assert_eq!(a, vec![L::Command(json!({"id": "c1"}))]);
    assert_eq!(a, b);
    l.handle(Time::ms(62_500), E::Timer);
    assert_eq!(
        l.next_deadline(),
        Some(Time::ms(20) + Duration::from_millis(62_500))
    );
    // Junk is ignored, never a panic nor a disconnect.
    for junk in ["", "not json", r#"{"event":"error","data":{"code":"x"}}"#] {
        assert_eq!(l.handle(Time::ms(30), E::Frame(junk.into())), vec![]);
    }
    assert_eq!(l.state(), St::Connected);
}

#[test]
fn stop_is_final() {
    let mut l = new_link(None);
    connect(&mut l, Time::ZERO, 25);
    assert_eq!(
        l.handle(S.into_time(), E::Stop),
        vec![L::Close, L::Report(St::Stopped)]
    );
    assert!(l.is_stopped());
    assert_eq!(l.next_deadline(), None);
    for e in [E::Start, E::Timer, E::NetworkAvailable, E::Closed(None)] {
        assert_eq!(l.handle((2 * S).into_time(), e), vec![]);
    }
    // Stopping a connect in progress abandons it.
    let mut l = new_link(None);
    l.handle(Time::ZERO, E::Start);
    assert_eq!(
        l.handle(Time::ZERO, E::Stop),
        vec![L::Drop, L::Report(St::Stopped)]
    );
    // A stop before the machine ever started still reports `Stopped`: the agent told the
    // host `NotPaired` or `Connecting` before its connection task first ran.
    let mut l = new_link(None);
    assert_eq!(l.handle(Time::ZERO, E::Stop), vec![L::Report(St::Stopped)]);
    assert!(l.is_stopped());
}

trait IntoTime {
    fn into_time(self) -> Time;
}

impl IntoTime for Duration {
    fn into_time(self) -> Time {
        Time(self)
    }
}

/// Random walks through the link machine with a driver that only reports what a real one
/// could: never a second socket while one is open or opening, frames only to an open
/// socket, never the same state reported twice in a row, always a deadline while a
/// connect or socket is in progress, nothing left open once stopped.
#[test]
fn random_walks_keep_the_driver_contract() {
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Sock {
        None,
        Opening,
        Open,
    }
    let mut rng = Rng::seeded(99);
    let mut seen = std::collections::HashSet::new();
    let mut steps = 0;
    for walk in 0..300 {
        let mut l = new_link(if walk % 2 == 0 { None } else { Some(60) });
        let mut sock = Sock::None;
        let mut now = Time::ZERO;
        let mut last_report = None;
        let mut events = vec![E::Start];
        for step in 0..200 {
            let Some(event) = events.pop() else { break };
            // As the driver: the connect's outcome replaces it before the machine hears.
            match event {
                E::Opened => sock = Sock::Open,
                E::OpenFailed(_) => sock = Sock::None,
                _ => {}
            }
            let mut follow = Vec::new();
            for a in l.handle(now, event.clone()) {
                match a {
                    L::Open => {
                        assert_eq!(sock, Sock::None, "walk {walk} step {step}: {event:?}");
                        sock = Sock::Opening;
                    }
                    L::Send(_) => assert_eq!(sock, Sock::Open, "walk {walk} step {step}"),
                    L::Close | L::Drop => sock = Sock::None,
                    L::Report(s) => {
                        assert_ne!(last_report, Some(s), "walk {walk} step {step}");
                        last_report = Some(s);
                        seen.insert(s);
                    }
                    // Stored at once: the driver reports it before anything else.
                    L::StoreToken(t) => follow.push(E::TokenRefreshed(t)),
                    L::Command(_) | L::RetryAcks | L::RelayTime(_) => {}
                }
            }
            if sock != Sock::None {
                assert!(l.next_deadline().is_some(), "walk {walk} step {step}");
            }
            if l.is_stopped() {
                assert_eq!(sock, Sock::None);
                break;
            }
            steps += 1;
            now = now + Duration::from_millis(rng.below(5000));
            let next = match (sock, rng.below(12)) {
                (_, 0) => E::NetworkAvailable,
                (_, 1) => E::TokenChanged(Some(tok(if rng.below(2) == 0 { "t1" } else { "t2" }))),
                (_, 2) if rng.below(4) == 0 => E::TokenChanged(None),
                (_, 3) => E::Background(rng.below(2) == 0),
                (_, 4) => E::Status("{}".into()),
                (_, 5) => E::TokenRefreshed(tok("t3")),
                (Sock::Opening, 6..=7) => E::Opened,
                (Sock::Opening, 8) => E::OpenFailed("refused".into()),
                (Sock::Open, 6) => ready(25),
                (Sock::Open, 7) if rng.below(2) == 0 => {
                    E::Frame(json!({"event": "auth:rotate", "data": {"token": "t4"}}).to_string())
                }
                (Sock::Open, 7) => E::Activity,
                (Sock::Open, 8) => E::Closed(Some([1000, 4401, 4403, 4400][rng.below(4) as usize])),
                (Sock::Open, 9) => E::SocketFailed(None),
                (Sock::Open, 10) => E::SendFailed("broken".into()),
                (_, 11) if walk % 50 == 0 && step > 150 => E::Stop,
                _ => match l.next_deadline() {
                    Some(t) => {
                        now = now.max(t);
                        E::Timer
                    }
                    None => E::TokenChanged(Some(tok("t1"))),
                },
            };
            events.push(next);
            events.extend(follow);
        }
    }
    // The walks went everywhere.
    assert!(steps > 50_000, "{steps} steps");
    assert_eq!(seen.len(), 6, "{seen:?}");
}
