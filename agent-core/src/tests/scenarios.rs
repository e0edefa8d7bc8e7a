//! Agent scenarios in paused time.

use std::time::Duration;

use serde_json::json;

use super::fakes::*;
use crate::api::HttpError;
use crate::backoff::SOCKET;
use crate::command::{AckStatus, CommandOutcome};
use crate::error::AgentError;
use crate::ledger::INTERRUPTED;
use crate::platform::{AckResult, ConnectionState};
use crate::transport::WsEvent;

const S: Duration = Duration::from_secs(1);

async fn connected(h: &Harness) -> crate::Agent {
    let agent = h.start();
    assert!(
        until(5 * S, || agent.state() == ConnectionState::Connected).await,
        "never connected"
    );
    agent
}

#[tokio::test(start_paused = true)]
async fn first_frame_auth_token_never_in_url() {
    let h = Harness::new();
    let _agent = connected(&h).await;
    let st = h.relay.st();
    assert_eq!(st.urls, vec![SOCKET_URL.to_owned()]);
    assert!(!st.urls[0].contains("device-token-1"));
    let first: serde_json::Value = serde_json::from_str(&st.sent[0]).unwrap();
    assert_eq!(
        first,
        json!({"event": "auth", "data": {"token": "device-token-1"}})
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_schedule_is_capped_full_jitter() {
    let h = Harness::new();
    h.relay.st().accept = false;
    let agent = h.start();
    run_for(Duration::from_secs(1800)).await;
    let connects = h.relay.st().connects.clone();
    assert!(
        connects.len() >= 20,
        "only {} attempts in 30 min",
        connects.len()
    );
    let gaps: Vec<Duration> = connects.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, g) in gaps.iter().enumerate() {
        let ceiling = SOCKET.ceiling(i as u32);
        assert!(*g >= SOCKET.floor, "gap {i} {g:?} below the floor");
        // Paused time auto-advances exactly to the deadline; allow 1 ms of rounding.
        assert!(
            *g <= ceiling + Duration::from_millis(1),
            "gap {i} {g:?} above {ceiling:?}"
        );
    }
    // Capped: never more than 60 s, and the late gaps actually use the wide window.
    assert!(gaps.iter().all(|g| *g <= Duration::from_millis(60_001)));
    assert!(
        gaps[8..].iter().any(|g| *g > Duration::from_secs(16)),
        "{gaps:?}"
    );
    assert_eq!(agent.state(), ConnectionState::Disconnected);

    // The network hint reconnects at once instead of waiting out the backoff.
    let before = h.relay.connects();
    h.relay.st().accept = true;
    agent.network_available();
    run_for(Duration::from_millis(10)).await;
    assert_eq!(h.relay.connects(), before + 1);
    assert_eq!(agent.state(), ConnectionState::Connected);
}

#[tokio::test(start_paused = true)]
async fn backoff_resets_after_a_connection_that_held() {
    let h = Harness::new();
    let _agent = connected(&h).await;
    // Keep it alive for 2 minutes with pings, then drop it.
    for _ in 0..5 {
        run_for(25 * S).await;
        h.relay.push(WsEvent::Activity);
    }
    h.relay.cut();
    run_for(Duration::from_millis(1100)).await;
    assert_eq!(h.relay.connects(), 2, "first reconnect waits at most 1 s");
}

#[tokio::test(start_paused = true)]
async fn command_runs_once_over_socket_and_sync() {
    let h = Harness::new();
    let agent = connected(&h).await;
    h.relay.push_json(command_frame("c1", "PAUSE", 300));
    h.relay.push_json(command_frame("c1", "PAUSE", 300));
    run_for(S).await;
    h.api.st().pending = vec![command("c1", "PAUSE", 300)];
    assert_eq!(agent.sync_now().await.unwrap(), 0);
    assert_eq!(h.host.command_ids(), vec!["c1"]);

    agent
        .complete_command("c1".into(), CommandOutcome::Executed)
        .unwrap();
    assert!(until(5 * S, || h.host.st().acked.len() == 1).await);
    let acks = h.api.acks();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        (acks[0].id.as_str(), acks[0].status),
        ("c1", AckStatus::Executed)
    );
    assert_eq!(h.host.st().acked[0].2, AckResult::Confirmed);
    // Completing twice is refused, and redelivery after the ack runs nothing.
    assert_eq!(
        agent.complete_command("c1".into(), CommandOutcome::Executed),
        Err(AgentError::UnknownCommand)
    );
    h.relay.push_json(command_frame("c1", "PAUSE", 300));
    run_for(S).await;
    assert_eq!(h.host.command_ids().len(), 1);
    assert_eq!(h.api.acks().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn sync_runs_new_commands_and_socket_does_not_repeat_them() {
    let h = Harness::new();
    h.relay.st().accept = false;
    let agent = h.start();
    h.api.st().pending = vec![
        command("s1", "LOCK_DEVICE", 300),
        command("s2", "RESUME", 300),
    ];
    assert_eq!(agent.sync_now().await.unwrap(), 2);
    h.relay.st().accept = true;
    agent.network_available();
    assert!(until(5 * S, || agent.state() == ConnectionState::Connected).await);
    h.relay.push_json(command_frame("s1", "LOCK_DEVICE", 300));
    run_for(S).await;
    assert_eq!(h.host.command_ids(), vec!["s1", "s2"]);
}

#[tokio::test(start_paused = true)]
async fn completion_from_another_thread() {
    let h = Harness::new();
    let agent = std::sync::Arc::new(connected(&h).await);
    h.relay.push_json(command_frame("t1", "SHOW_MESSAGE", 300));
    run_for(S).await;
    let a = agent.clone();
    std::thread::spawn(move || {
        a.complete_command(
            "t1".into(),
            CommandOutcome::Failed {
                error: "no screen".into(),
            },
        )
    })
    .join()
    .unwrap()
    .unwrap();
    assert!(until(5 * S, || h.api.acks().len() == 1).await);
    assert_eq!(h.api.acks()[0].error.as_deref(), Some("no screen"));
}

#[tokio::test(start_paused = true)]
async fn expired_command_is_neither_run_nor_acked() {
    let h = Harness::new();
    let _agent = connected(&h).await;
    h.relay.push_json(command_frame("old", "PAUSE", -1));
    h.relay.push_json(command_frame("now", "PAUSE", 0));
    run_for(10 * S).await;
    assert!(h.host.command_ids().is_empty());
    assert!(h.api.acks().is_empty());
}

#[tokio::test(start_paused = true)]
async fn unknown_type_is_failed_unsupported_without_the_host() {
    let h = Harness::new();
    let _agent = connected(&h).await;
    h.relay.push_json(command_frame("u1", "SELF_DESTRUCT", 300));
    assert!(until(5 * S, || h.api.acks().len() == 1).await);
    let ack = &h.api.acks()[0];
    assert_eq!(
        (ack.id.as_str(), ack.status, ack.error.as_deref()),
        ("u1", AckStatus::Failed, Some("unsupported"))
    );
    assert!(h.host.command_ids().is_empty());
    h.relay.push_json(command_frame("u1", "SELF_DESTRUCT", 300));
    run_for(5 * S).await;
    assert_eq!(h.api.acks().len(), 1, "answered once");
}

#[tokio::test(start_paused = true)]
async fn uncompleted_command_times_out() {
    let h = Harness::new();
    let agent = connected(&h).await;
    h.relay.push_json(command_frame("slow", "LOCK_DEVICE", 300));
    run_for(29 * S).await;
    assert!(h.api.acks().is_empty(), "not before the timeout");
    run_for(2 * S).await;
    let acks = h.api.acks();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        (acks[0].status, acks[0].error.as_deref()),
        (AckStatus::Failed, Some("timeout"))
    );
    assert_eq!(
        agent.complete_command("slow".into(), CommandOutcome::Executed),
        Err(AgentError::UnknownCommand)
    );
}

#[tokio::test(start_paused = true)]
async fn dedup_survives_restart() {
    let mut h = Harness::new();
    let agent = connected(&h).await;
    h.relay.push_json(command_frame("r1", "PAUSE", 300));
    run_for(S).await;
    agent
        .complete_command("r1".into(), CommandOutcome::Executed)
        .unwrap();
    assert!(until(5 * S, || h.api.acks().len() == 1).await);
    agent.shutdown().await;
    drop(agent);

    h.new_host();
    let _agent = connected(&h).await;
    h.relay.push_json(command_frame("r1", "PAUSE", 300));
    h.api.st().pending = vec![command("r1", "PAUSE", 300)];
    run_for(S).await;
    assert!(h.host.command_ids().is_empty(), "run again after restart");
    assert_eq!(h.api.acks().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn started_but_unfinished_is_interrupted_after_restart() {
    let mut h = Harness::new();
    let agent = connected(&h).await;
    h.relay.push_json(command_frame("i1", "LOCK_DEVICE", 300));
    run_for(S).await;
    assert_eq!(h.host.command_ids(), vec!["i1"]);
    // The process dies: no completion, no clean stop of the ledger.
    agent.shutdown().await;
    drop(agent);

    h.new_host();
    let _agent = connected(&h).await;
    assert!(until(5 * S, || h.api.acks().len() == 1).await);
    let ack = &h.api.acks()[0];
    assert_eq!(
        (ack.id.as_str(), ack.status, ack.error.as_deref()),
        ("i1", AckStatus::Failed, Some(INTERRUPTED))
    );
    h.relay.push_json(command_frame("i1", "LOCK_DEVICE", 300));
    run_for(S).await;
    assert!(
        h.host.command_ids().is_empty(),
        "interrupted command run again"
    );
}

#[tokio::test(start_paused = true)]
async fn outbox_retries_network_5xx_429_then_succeeds() {
    let h = Harness::new();
    let agent = connected(&h).await;
    h.api.script(vec![
        Err(HttpError::Network("reset".into())),
        Err(HttpError::Status {
            status: 503,
            code: "unavailable".into(),
            retry_after: None,
        }),
        Err(HttpError::Status {
            status: 429,
            code: "rate_limited".into(),
            retry_after: Some(Duration::from_secs(40)),
        }),
        Ok(()),
    ]);
    h.relay.push_json(command_frame("o1", "PAUSE", 300));
    run_for(S).await;
    agent
        .complete_command("o1".into(), CommandOutcome::Executed)
        .unwrap();
    assert!(until(Duration::from_secs(300), || h.host.st().acked.len() == 1).await);
    let acks = h.api.acks();
    assert_eq!(acks.len(), 4);
    let gaps: Vec<Duration> = acks.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] <= Duration::from_millis(1001), "{gaps:?}");
    assert!(gaps[1] <= Duration::from_millis(2001), "{gaps:?}");
    assert!(
        gaps[2] >= Duration::from_secs(40),
        "Retry-After honoured: {gaps:?}"
    );
    assert_eq!(h.host.st().acked[0].2, AckResult::Confirmed);
    assert!(agent.wait_for_acks(S).await);
}

#[tokio::test(start_paused = true)]
async fn outbox_4xx_is_final() {
    let h = Harness::new();
    let agent = connected(&h).await;
    h.api.script(vec![Err(HttpError::Status {
        status: 409,
        code: "conflict".into(),
        retry_after: None,
    })]);
    h.relay.push_json(command_frame("f1", "PAUSE", 300));
    run_for(S).await;
    agent
        .complete_command("f1".into(), CommandOutcome::Executed)
        .unwrap();
    run_for(Duration::from_secs(600)).await;
    assert_eq!(h.api.acks().len(), 1, "a 409 is not retried");
    assert_eq!(h.host.st().acked[0].2, AckResult::Rejected { status: 409 });
}

#[tokio::test(start_paused = true)]
async fn ack_made_while_offline_is_posted_after_restart() {
    let mut h = Harness::new();
    let agent = connected(&h).await;
    h.relay.push_json(command_frame("d1", "PAUSE", 300));
    run_for(S).await;
    h.api
        .script(vec![Err(HttpError::Network("down".into())); 100]);
    agent
        .complete_command("d1".into(), CommandOutcome::Executed)
        .unwrap();
    run_for(2 * S).await;
    assert!(!h.api.acks().is_empty());
    assert!(h.host.st().acked.is_empty());
    agent.shutdown().await;
    drop(agent);

    h.api.script(vec![]);
    h.new_host();
    let before = h.api.acks().len();
    let _agent = connected(&h).await;
    assert!(until(10 * S, || h.host.st().acked.len() == 1).await);
    let acks = h.api.acks();
    assert_eq!(acks[before].id, "d1");
    assert_eq!(acks[before].status, AckStatus::Executed);
    assert!(h.host.command_ids().is_empty());
}

#[tokio::test(start_paused = true)]
async fn unauthorized_close_stops_reconnecting_until_new_token() {
    let h = Harness::new();
    h.relay.st().close_on_auth = Some(4403);
    let agent = h.start();
    run_for(Duration::from_secs(3600)).await;
    assert_eq!(
        h.relay.connects(),
        1,
        "no reconnect storm with a revoked token"
    );
    assert_eq!(agent.state(), ConnectionState::Unauthorized);
    assert!(h.host.st().states.contains(&ConnectionState::Unauthorized));

    h.relay.st().close_on_auth = None;
    agent.set_token("device-token-2".into()).unwrap();
    assert!(until(5 * S, || agent.state() == ConnectionState::Connected).await);
    let auth = h.relay.sent_events("auth");
    assert_eq!(auth.last().unwrap()["data"]["token"], "device-token-2");
}

#[tokio::test(start_paused = true)]
async fn silent_relay_is_detected_after_two_and_a_half_heartbeats() {
    let h = Harness::new();
    let agent = connected(&h).await;
    // Pings every 25 s keep it alive.
    for _ in 0..8 {
        run_for(25 * S).await;
        h.relay.push(WsEvent::Activity);
    }
    assert_eq!(h.relay.connects(), 1);
    // Then silence: dead after 62.5 s, not before.
    run_for(60 * S).await;
    assert_eq!(h.relay.connects(), 1);
    assert_eq!(agent.state(), ConnectionState::Connected);
    run_for(3 * S).await;
    assert!(h.host.st().states.contains(&ConnectionState::Disconnected));
    assert!(until(2 * S, || h.relay.connects() == 2).await);
}

#[tokio::test(start_paused = true)]
async fn background_asks_longer_heartbeat_and_waits_longer() {
    let h = Harness::new();
    let agent = connected(&h).await;
    agent.set_background(true);
    run_for(S).await;
    let hb = h.relay.sent_events("heartbeat");
    assert_eq!(hb.len(), 1);
    assert_eq!(hb[0]["data"]["intervalSec"], 300);
    run_for(Duration::from_secs(700)).await;
    assert_eq!(
        h.relay.connects(),
        1,
        "background silence below 750 s is fine"
    );
    agent.set_background(false);
    run_for(S).await;
    assert_eq!(
        h.relay.sent_events("heartbeat")[1]["data"]["intervalSec"],
        25
    );
}

#[tokio::test(start_paused = true)]
async fn status_is_sent_and_resent_after_reconnect() {
    let h = Harness::new();
    let agent = connected(&h).await;
    agent.report_status(true, Some(r#"{"videoId":"v1"}"#.into()));
    run_for(S).await;
    let st = h.relay.sent_events("device:status");
    assert_eq!(st.len(), 1);
    assert_eq!(
        st[0]["data"],
        json!({"activeViewing": true, "currentVideo": {"videoId": "v1"}})
    );
    h.relay.cut();
    assert!(until(5 * S, || h.relay.sent_events("device:status").len() == 2).await);
}

#[tokio::test(start_paused = true)]
async fn hostile_frames_do_not_panic_or_run_anything() {
    let h = Harness::new();
    let agent = connected(&h).await;
    let junk = [
        "".to_owned(),
        "not json".to_owned(),
        "[".repeat(100_000),
        r#"{"event":"command:new"}"#.to_owned(),
        r#"{"event":"command:new","data":[]}"#.to_owned(),
        r#"{"event":"command:new","data":{"id":null,"commandType":"PAUSE"}}"#.to_owned(),
        r#"{"event":"command:new","data":{"id":"../../etc","commandType":"PAUSE","expiresAt":"2026-11-25T20:00:00Z"}}"#.to_owned(),
        format!(r#"{{"event":"command:new","data":{{"id":"{}","commandType":"PAUSE"}}}}"#, "x".repeat(10_000)),
        r#"{"event":"command:new","data":{"id":"ok1","commandType":"PAUSE","expiresAt":"yesterday"}}"#.to_owned(),
        r#"{"event":"ready","data":{"heartbeatSec":0}}"#.to_owned(),
        r#"{"event":"error","data":{"code":"bad_frame"}}"#.to_owned(),
        "\u{feff}{}".to_owned(),
    ];
    for j in junk {
        h.relay.push(WsEvent::Text(j));
    }
    h.relay.push(WsEvent::Activity);
    run_for(5 * S).await;
    assert!(h.host.command_ids().is_empty());
    assert_eq!(agent.state(), ConnectionState::Connected);
    // Only the one with a usable id but a bad expiry is answered (FAILED invalid).
    let acks = h.api.acks();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].id, "ok1");
    assert_eq!(acks[0].status, AckStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn pairing_stores_token_and_connects() {
    let mut h = Harness::new();
    h.token = None;
    let agent = h.start();
    assert_eq!(
        agent.state(),
        ConnectionState::NotPaired,
        "known when start returns"
    );
    assert_eq!(h.relay.connects(), 0);
    let code = agent.pair("Mia's tablet".into()).await.unwrap();
    assert_eq!(code.code, "K7QF-M2XD");
    let dev = agent.wait_for_pairing().await.unwrap();
    assert_eq!(dev.device_id, "d9");
    assert!(until(5 * S, || agent.state() == ConnectionState::Connected).await);
    assert_eq!(
        h.relay.sent_events("auth")[0]["data"]["token"],
        "paired-token"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_is_clean_and_final() {
    let h = Harness::new();
    let agent = connected(&h).await;
    agent.shutdown().await;
    assert_eq!(agent.state(), ConnectionState::Stopped);
    h.relay.cut();
    run_for(Duration::from_secs(600)).await;
    assert_eq!(h.relay.connects(), 1);
}

#[tokio::test(start_paused = true)]
async fn storage_failure_never_runs_unrecorded_commands() {
    let h = Harness::new();
    let _agent = connected(&h).await;
    h.storage.set_fail_saves(true);
    h.relay.push_json(command_frame("nf", "PAUSE", 300));
    run_for(S).await;
    assert!(h.host.command_ids().is_empty());
    h.storage.set_fail_saves(false);
    h.relay.push_json(command_frame("nf", "PAUSE", 300));
    run_for(S).await;
    assert_eq!(h.host.command_ids(), vec!["nf"]);
}

/// A host that completes every command inside `run_command`, synchronously.
struct EagerHost {
    agent: std::sync::OnceLock<std::sync::Weak<crate::Agent>>,
    results: std::sync::Mutex<Vec<Result<(), AgentError>>>,
}

impl crate::Platform for EagerHost {
    fn run_command(&self, command: crate::Command) {
        if let Some(agent) = self.agent.get().and_then(std::sync::Weak::upgrade) {
            let r = agent.complete_command(command.id, CommandOutcome::Executed);
            self.results.lock().unwrap().push(r);
        }
    }
    fn connection_state_changed(&self, _: ConnectionState) {}
}

#[tokio::test(start_paused = true)]
async fn host_may_complete_inside_run_command() {
    let h = Harness::new();
    let host = std::sync::Arc::new(EagerHost {
        agent: std::sync::OnceLock::new(),
        results: Default::default(),
    });
    let agent = std::sync::Arc::new(h.start_on(host.clone()));
    let _ = host.agent.set(std::sync::Arc::downgrade(&agent));
    assert!(until(5 * S, || agent.state() == ConnectionState::Connected).await);
    h.relay.push_json(command_frame("e1", "RESUME", 300));
    assert!(
        until(5 * S, || h.api.acks().len() == 1).await,
        "no deadlock, ack posted"
    );
    assert_eq!(*host.results.lock().unwrap(), vec![Ok(())]);
    assert_eq!(h.api.acks()[0].status, AckStatus::Executed);
    // The timeout timer was disarmed: no second ack later.
    run_for(Duration::from_secs(120)).await;
    assert_eq!(h.api.acks().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn refresh_token_replaces_the_token_on_the_open_socket() {
    let h = Harness::new();
    let agent = connected(&h).await;
    // A malformed token is refused before anything is sent or stored.
    assert!(matches!(
        agent.refresh_token("two words".into()),
        Err(AgentError::Config { .. })
    ));
    agent.refresh_token("device-token-2".into()).unwrap();
    assert!(until(5 * S, || !h.relay.sent_events("auth:refresh").is_empty()).await);
    assert_eq!(
        h.relay.sent_events("auth:refresh"),
        vec![json!({"event": "auth:refresh", "data": {"token": "device-token-2"}})]
    );
    // The documented answer changes nothing; the socket stays open, no reconnect.
    h.relay
        .push_json(json!({"event": "auth:refreshed", "data": {"expiresAt": null}}));
    run_for(60 * S).await;
    h.relay.push(WsEvent::Activity);
    assert_eq!(h.relay.connects(), 1, "refreshed in place");
    assert_eq!(agent.state(), ConnectionState::Connected);
    // The next connection authenticates with the new token.
    h.relay.cut();
    assert!(
        until(120 * S, || h.relay.connects() == 2
            && agent.state() == ConnectionState::Connected)
        .await
    );
    let auth = h.relay.sent_events("auth");
    assert_eq!(auth.last().unwrap()["data"]["token"], "device-token-2");
    assert_eq!(
        h.relay.sent_events("auth:refresh").len(),
        1,
        "not re-sent on the new socket"
    );
}

#[tokio::test(start_paused = true)]
async fn token_expiry_close_4401_then_refresh_token_reconnects() {
    let h = Harness::new();
    let agent = connected(&h).await;
    // The relay closes at the token's expiry.
    h.relay.st().close_on_auth = Some(4401);
    h.relay.push(WsEvent::Close(Some(4401)));
    assert!(until(5 * S, || agent.state() == ConnectionState::Unauthorized).await);
    run_for(600 * S).await;
    assert_eq!(h.relay.connects(), 1, "no reconnect with the expired token");
    // The host refreshes the token: the agent comes back with it.
    h.relay.st().close_on_auth = None;
    agent.refresh_token("device-token-2".into()).unwrap();
    assert!(
        until(120 * S, || agent.state() == ConnectionState::Connected).await,
        "still {:?} after refresh_token",
        agent.state()
    );
    let auth = h.relay.sent_events("auth");
    assert_eq!(auth.last().unwrap()["data"]["token"], "device-token-2");
}

/// A host whose every callback panics (as a uniffi callback that threw does).
struct PanickingHost;

impl crate::Platform for PanickingHost {
    fn run_command(&self, _: crate::Command) {
        panic!("host threw in run_command")
    }
    fn connection_state_changed(&self, _: ConnectionState) {
        panic!("host threw in connection_state_changed")
    }
    fn ack_finished(&self, _: String, _: AckStatus, _: AckResult) {
        panic!("host threw in ack_finished")
    }
}

#[tokio::test(start_paused = true)]
async fn panicking_host_callbacks_are_contained_by_the_agent() {
    let h = Harness::new();
    let agent = h.start_on(std::sync::Arc::new(PanickingHost));
    assert!(until(5 * S, || agent.state() == ConnectionState::Connected).await);
    h.relay.push_json(command_frame("p1", "PAUSE", 300));
    assert!(until(5 * S, || h.api.acks().len() == 1).await);
    let ack = &h.api.acks()[0];
    assert_eq!(
        (ack.id.as_str(), ack.status, ack.error.as_deref()),
        ("p1", AckStatus::Failed, Some("host error"))
    );
    // The tasks survived the panicking ack_finished: the next command is answered too.
    h.relay.push_json(command_frame("p2", "PAUSE", 300));
    assert!(until(5 * S, || h.api.acks().len() == 2).await);
    assert_eq!(agent.state(), ConnectionState::Connected);
    assert_eq!(h.relay.connects(), 1);
}

/// The phone's clock a day ahead or behind changes nothing: the relay's clock (said in
/// `ready`, plus the monotonic time since) decides expiry (issue 18).
#[tokio::test(start_paused = true)]
async fn a_moved_device_clock_neither_dodges_nor_revives_a_command() {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    for wall in [NOW_MS + DAY_MS, NOW_MS - DAY_MS] {
        let h = Harness::new();
        h.clock.set(wall);
        let agent = connected(&h).await;
        // Five minutes left by the relay's clock: it runs, whatever the phone says.
        h.relay.push_json(command_frame("lock", "LOCK_DEVICE", 300));
        run_for(S).await;
        assert_eq!(h.host.command_ids(), vec!["lock"], "wall {wall}");
        agent
            .complete_command("lock".into(), CommandOutcome::Executed)
            .unwrap();
        // Ten minutes later by the monotonic clock (reconnects and new `ready`s included)
        // the same kind of command has expired by the relay's clock: never run, never acked.
        run_for(Duration::from_secs(600)).await;
        h.relay.push_json(command_frame("late", "LOCK_DEVICE", 300));
        run_for(S).await;
        assert_eq!(h.host.command_ids(), vec!["lock"], "wall {wall}");
        assert!(until(5 * S, || !h.api.acks().is_empty()).await);
        assert!(h.api.acks().iter().all(|a| a.id == "lock"), "wall {wall}");
        agent.stop();
    }
}

/// A token store that loads `device-token-1` and silently keeps nothing it is given.
struct ForgetfulStore;

impl crate::token::TokenStore for ForgetfulStore {
    fn load(&self) -> Result<Option<String>, String> {
        Ok(Some("device-token-1".into()))
    }
    fn save(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn clear(&self) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_rotated_token_the_store_does_not_keep_is_not_used() {
    let h = Harness::new();
    let agent = h.start_with_store(h.host.clone(), std::sync::Arc::new(ForgetfulStore));
    assert!(until(5 * S, || agent.state() == ConnectionState::Connected).await);
    h.relay
        .push_json(json!({"event": "auth:rotate", "data": {"token": "device-token-2"}}));
    run_for(60 * S).await;
    assert!(
        h.relay.sent_events("auth:refresh").is_empty(),
        "switched to a token the store lost"
    );
    // The next socket still authenticates with the old token (which the relay still takes).
    h.relay.cut();
    assert!(until(120 * S, || h.relay.connects() == 2).await);
    let auth = h.relay.sent_events("auth");
    assert_eq!(auth.last().unwrap()["data"]["token"], "device-token-1");
}

#[tokio::test(start_paused = true)]
async fn a_rotated_token_the_store_keeps_is_used_on_the_open_socket() {
    let h = Harness::new();
    let _agent = connected(&h).await;
    h.relay
        .push_json(json!({"event": "auth:rotate", "data": {"token": "device-token-2"}}));
    assert!(until(5 * S, || !h.relay.sent_events("auth:refresh").is_empty()).await);
    assert_eq!(
        h.relay.sent_events("auth:refresh"),
        vec![json!({"event": "auth:refresh", "data": {"token": "device-token-2"}})]
    );
}
