//! Push wake-ups on the device: the push token is kept and re-sent until the relay has it;
//! a sync within a budget asks the relay nothing while the socket is open or another sync
//! runs.

use std::time::Duration;

use serde_json::json;

use super::fakes::*;
use crate::api::HttpError;
use crate::command::CommandOutcome;
use crate::platform::ConnectionState;

const S: Duration = Duration::from_secs(1);

fn token_posts(h: &Harness) -> Vec<PostedReport> {
    h.api
        .reports()
        .into_iter()
        .filter(|r| r.path == "push-token")
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_push_token_is_kept_and_sent_again_until_the_relay_has_it() {
    let h = Harness::new();
    h.relay.st().accept = false;
    let agent = h.start();
    // Bad input is refused before anything is stored or sent.
    let e = agent
        .register_push_token("apns".into(), "not hex".into(), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("push token"), "{e}");
    assert!(token_posts(&h).is_empty());

    // The relay is down: the token is kept, the error says why.
    h.api
        .script_reports(vec![Err(HttpError::Network("down".into()))]);
    let tok = "ab".repeat(32);
    assert!(agent
        .register_push_token("apns".into(), tok.clone(), Some("sandbox".into()))
        .await
        .is_err());
    agent.shutdown().await;

    // The next process sends it at start.
    let again = h.start();
    run_for(S).await;
    let posts = token_posts(&h);
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(posts[1].ok);
    assert_eq!(
        posts[1].body,
        json!({"provider": "apns", "token": tok, "apnsEnvironment": "sandbox"})
    );
    assert_eq!(posts[1].token, "device-token-1");
    // The same token again costs nothing; a rotated one is sent.
    again
        .register_push_token("apns".into(), tok.clone(), Some("sandbox".into()))
        .await
        .unwrap();
    assert_eq!(token_posts(&h).len(), 2);
    again
        .register_push_token("fcm".into(), "fcm:new".into(), None)
        .await
        .unwrap();
    assert_eq!(token_posts(&h).len(), 3);
    again.shutdown().await;
    let third = h.start();
    run_for(S).await;
    assert_eq!(token_posts(&h).len(), 3, "a confirmed token is not re-sent");
    // A new device token (another device record): sent again at the next sync.
    third.set_token("device-token-2".into()).unwrap();
    third.sync_now_within(5 * S).await.unwrap();
    let posts = token_posts(&h);
    assert_eq!(posts.len(), 4);
    assert_eq!(posts[3].token, "device-token-2");
}

/// The relay pushes a device whose socket it thinks gone, or that has not acked for a while:
/// a socket that looks open here may be one the platform suspended. The push still pulls,
/// and a command the socket also delivers runs once.
#[tokio::test(start_paused = true)]
async fn a_push_while_the_socket_looks_open_still_pulls_and_runs_once() {
    let h = Harness::new();
    let agent = h.start();
    assert!(until(5 * S, || agent.state() == ConnectionState::Connected).await);
    h.api.st().pending = vec![command("p1", "PAUSE", 300)];
    let r = agent.sync_now_within(10 * S).await.unwrap();
    assert!(r.pulled);
    assert_eq!(r.ran, 1);
    assert_eq!(h.api.st().pulls, 1);
    assert_eq!(h.host.command_ids(), vec!["p1"]);
    // The same command on the socket afterwards: not run again.
    h.relay.push_json(command_frame("p1", "PAUSE", 300));
    run_for(S).await;
    assert_eq!(h.host.command_ids(), vec!["p1"]);
}

#[tokio::test(start_paused = true)]
async fn a_sync_pulls_runs_and_waits_for_the_acks_and_a_second_push_joins_it() {
    let h = Harness::new();
    h.relay.st().accept = false;
    let agent = std::sync::Arc::new(h.start());
    h.api.st().pending = vec![
        command("p1", "LOCK_DEVICE", 300),
        command("p2", "PAUSE", 300),
    ];
    // A slow network: the second push comes while the first pull is still out.
    h.api.st().pull_delay = 2 * S;
    let (a, b) = (agent.clone(), agent.clone());
    let (r1, r2) = tokio::join!(
        async move { a.sync_now_within(20 * S).await.unwrap() },
        async move { b.sync_now_within(20 * S).await.unwrap() }
    );
    assert_eq!(h.api.st().pulls, 1, "two pushes at once: one request");
    assert_eq!(r1.pulled as u8 + r2.pulled as u8, 1);
    assert_eq!(r1.ran + r2.ran, 2);
    assert!(r1.acks_done && r2.acks_done);
    assert_eq!(h.host.command_ids(), vec!["p1", "p2"]);
    for id in ["p1", "p2"] {
        agent
            .complete_command(id.into(), CommandOutcome::Executed)
            .unwrap();
    }
    assert!(agent.wait_for_acks(5 * S).await);
    assert_eq!(h.api.acks().len(), 2);
    // The same commands again (the relay re-sends until acked): nothing runs twice.
    let r = agent.sync_now_within(20 * S).await.unwrap();
    assert_eq!((r.pulled, r.ran), (true, 0));
    assert_eq!(h.host.command_ids().len(), 2);
}
