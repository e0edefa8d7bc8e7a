//! Report-queue scenarios in paused time: screen time and restricted attempts survive a
//! relay that answers 503, a restart, and a refused token.

use std::time::Duration;

use serde_json::json;

use super::fakes::*;
use crate::api::HttpError;
use crate::error::AgentError;
use crate::platform::ConnectionState;
use crate::RestrictedAttempt;

const S: Duration = Duration::from_secs(1);

/// A device token shaped like the relay's: `{"sub":"d1","cid":"c1","typ":"device"}`.
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldmljZSJ9.eyJzdWIiOiJkMSIsImNpZCI6ImMxIiwidHlwIjoiZGV2aWNlIn0.c2ln";

fn unavailable() -> Result<(), HttpError> {
    Err(HttpError::Status {
        status: 503,
        code: "unavailable".into(),
        retry_after: None,
    })
}

fn harness() -> Harness {
    let mut h = Harness::new();
    h.token = Some(TOKEN.into());
    h
}

async fn connected(h: &Harness) -> crate::Agent {
    let agent = h.start();
    assert!(
        until(5 * S, || agent.state() == ConnectionState::Connected).await,
        "never connected"
    );
    agent
}

fn blocked(url: &str) -> RestrictedAttempt {
    RestrictedAttempt {
        url: Some(url.into()),
        title: Some("Blocked video".into()),
        reason: Some("age".into()),
        metadata_json: Some(r#"{"rating":"18+"}"#.into()),
    }
}

#[tokio::test(start_paused = true)]
async fn reports_made_while_the_relay_answers_503_arrive_once_it_recovers() {
    let h = harness();
    let agent = connected(&h).await;
    h.api.script_reports(vec![unavailable(); 4]);
    agent.report_screen_time(42).unwrap();
    agent
        .report_restricted_attempt(blocked("https://v/1"))
        .unwrap();
    assert!(agent.wait_for_reports(120 * S).await, "queue never drained");

    let posts = h.api.reports();
    assert_eq!(posts.len(), 6, "4 refusals, then both reports: {posts:?}");
    assert!(posts[..4].iter().all(|p| !p.ok));
    // The queue-wide retries keep to the backoff window.
    for path in ["screen-time", "restricted-attempts"] {
        let at: Vec<_> = posts
            .iter()
            .filter(|p| p.path == path)
            .map(|p| p.at)
            .collect();
        for (n, w) in at.windows(2).enumerate() {
            let gap = w[1] - w[0];
            assert!(gap >= crate::backoff::ACK.floor, "{path}: {gap:?}");
            assert!(
                gap <= crate::backoff::ACK.ceiling(n as u32) + S,
                "{path}: {gap:?}"
            );
        }
    }
    let ok: Vec<_> = posts.iter().filter(|p| p.ok).collect();
    let screen = ok
        .iter()
        .find(|p| p.path == "screen-time")
        .expect("screen time sent");
    assert_eq!(
        screen.body,
        json!({"childId": "c1", "minutesUsed": 42}),
        "the wire body, child id from the token"
    );
    assert_eq!(screen.token, TOKEN);
    let attempt = ok
        .iter()
        .find(|p| p.path == "restricted-attempts")
        .expect("attempt sent");
    assert_eq!(
        attempt.body,
        json!({"url": "https://v/1", "title": "Blocked video", "reason": "age", "metadata": {"rating": "18+"}})
    );
    run_for(600 * S).await;
    assert_eq!(h.api.reports().len(), 6, "nothing posted twice");
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_the_queue_and_screen_time_keeps_only_the_latest_value() {
    let mut h = harness();
    let agent = connected(&h).await;
    h.api
        .script_reports(vec![Err(HttpError::Network("down".into())); 1000]);
    agent.report_screen_time(10).unwrap();
    agent
        .report_restricted_attempt(blocked("https://v/a"))
        .unwrap();
    agent
        .report_restricted_attempt(blocked("https://v/b"))
        .unwrap();
    agent.report_screen_time(20).unwrap();
    run_for(5 * S).await;
    assert!(h.api.reports().iter().all(|p| !p.ok));
    assert!(!agent.wait_for_reports(S).await);
    agent.shutdown().await;
    drop(agent);

    h.api.script_reports(vec![]);
    h.new_host();
    let before = h.api.reports().len();
    let agent = connected(&h).await;
    assert!(
        agent.wait_for_reports(10 * S).await,
        "queue not drained after restart"
    );
    let after: Vec<_> = h.api.reports()[before..].to_vec();
    let bodies: Vec<_> = after.iter().map(|p| p.body.clone()).collect();
    assert_eq!(
        bodies,
        vec![
            json!({"url": "https://v/a", "title": "Blocked video", "reason": "age", "metadata": {"rating": "18+"}}),
            json!({"url": "https://v/b", "title": "Blocked video", "reason": "age", "metadata": {"rating": "18+"}}),
            json!({"childId": "c1", "minutesUsed": 20}),
        ],
        "each attempt once, screen time only its latest value"
    );
    assert!(after.iter().all(|p| p.ok));
    // A third start finds nothing left to send.
    agent.shutdown().await;
    drop(agent);
    let n = h.api.reports().len();
    let _agent = connected(&h).await;
    run_for(30 * S).await;
    assert_eq!(h.api.reports().len(), n);
}

#[tokio::test(start_paused = true)]
async fn refused_token_holds_reports_until_a_new_token_and_4xx_is_final() {
    let h = harness();
    let agent = connected(&h).await;
    h.api.script_reports(vec![
        Err(HttpError::Status {
            status: 401,
            code: "unauthorized".into(),
            retry_after: None,
        }),
        Err(HttpError::Status {
            status: 400,
            code: "bad_request".into(),
            retry_after: None,
        }),
    ]);
    agent.report_screen_time(30).unwrap();
    run_for(600 * S).await;
    assert_eq!(h.api.reports().len(), 1, "no retry with the refused token");
    agent.set_token(format!("{TOKEN}x")).unwrap();
    // 400 for the screen time: dropped for good.
    assert!(agent.wait_for_reports(10 * S).await);
    let posts = h.api.reports();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].token, format!("{TOKEN}x"));
    run_for(600 * S).await;
    assert_eq!(h.api.reports().len(), 2, "a 400 is not retried");
}

#[tokio::test(start_paused = true)]
async fn bad_reports_are_refused_at_the_call() {
    let h = harness();
    let agent = connected(&h).await;
    assert!(matches!(
        agent.report_screen_time(1441),
        Err(AgentError::Config { .. })
    ));
    let mut bad = blocked("https://v");
    bad.metadata_json = Some("[1]".into());
    assert!(matches!(
        agent.report_restricted_attempt(bad),
        Err(AgentError::Config { .. })
    ));
    let mut big = blocked("https://v");
    big.metadata_json = Some(json!({"x": "y".repeat(9000)}).to_string());
    assert!(matches!(
        agent.report_restricted_attempt(big),
        Err(AgentError::Config { .. })
    ));
    // Long text is cut to the relay's 2,000 characters, not refused.
    let mut long = blocked("https://v");
    long.title = Some("t".repeat(5000));
    agent.report_restricted_attempt(long).unwrap();
    h.storage.set_fail_saves(true);
    assert!(matches!(
        agent.report_screen_time(5),
        Err(AgentError::Storage { .. })
    ));
    h.storage.set_fail_saves(false);
    assert!(agent.wait_for_reports(10 * S).await);
    let posts = h.api.reports();
    assert_eq!(
        posts.len(),
        1,
        "only the valid attempt was queued: {posts:?}"
    );
    assert_eq!(
        posts[0].body["title"].as_str().unwrap().chars().count(),
        2000
    );
}

/// A device token of another child: `{"sub":"d2","cid":"c2","typ":"device"}`.
const OTHER_CHILD: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldmljZSJ9.eyJzdWIiOiJkMiIsImNpZCI6ImMyIiwidHlwIjoiZGV2aWNlIn0.c2ln";

#[tokio::test(start_paused = true)]
async fn reports_are_never_posted_for_another_child_after_re_pairing() {
    let h = harness();
    let agent = connected(&h).await;
    h.api.script_reports(vec![unavailable(); 1000]);
    agent
        .report_restricted_attempt(blocked("https://v/secret"))
        .unwrap();
    agent.report_screen_time(77).unwrap();
    run_for(S).await;
    assert!(!agent.wait_for_reports(S).await, "still queued for c1");
    // Re-paired to another child (another family) without clearing the token.
    agent.set_token(OTHER_CHILD.into()).unwrap();
    assert!(
        agent.wait_for_reports(600 * S).await,
        "c1's reports dropped, not kept"
    );
    run_for(600 * S).await;
    let posts = h.api.reports();
    assert!(
        posts.iter().all(|p| p.token == TOKEN),
        "a c1 report went out with c2's token: {posts:?}"
    );
    // The new child's own reports go out with its token and its id.
    h.api.script_reports(vec![]);
    agent.report_screen_time(5).unwrap();
    assert!(agent.wait_for_reports(600 * S).await);
    let last = h.api.reports().last().cloned().unwrap();
    assert_eq!(last.token, OTHER_CHILD);
    assert_eq!(last.body, json!({"childId": "c2", "minutesUsed": 5}));
}

#[tokio::test(start_paused = true)]
async fn clearing_the_token_drops_unsent_reports() {
    let h = harness();
    let agent = connected(&h).await;
    h.api.script_reports(vec![unavailable(); 1000]);
    agent
        .report_restricted_attempt(blocked("https://v/secret"))
        .unwrap();
    run_for(S).await;
    let before = h.api.reports().len();
    agent.clear_token().unwrap();
    assert!(agent.wait_for_reports(S).await, "queue emptied at once");
    // Even a token of the same child later finds nothing to send.
    h.api.script_reports(vec![]);
    agent.set_token(TOKEN.into()).unwrap();
    run_for(600 * S).await;
    assert_eq!(h.api.reports().len(), before, "{:?}", h.api.reports());
}
