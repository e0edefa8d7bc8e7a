//! Webhooks with real relay processes: a relay SIGKILLed while deliveries are in flight
//! loses no event (notifications, and every status change of commands checked against the
//! REST API), and three nodes on PostgreSQL + Redis send each event from one node at a
//! time and lose none when a node dies. The receiver (shared with the relay's own suite)
//! verifies every request with the `standardwebhooks` crate and notes any event id that
//! arrives while a request with the same id is still open.
//!
//! The cluster test needs `SAFESTREAM_TEST_PG` and `redis-server` (`./scripts/test.sh`
//! provides both) and fails without them.

#[path = "../../relay/tests/webhooks/receiver.rs"]
mod receiver;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use receiver::{Got, Receiver};
use reqwest::Method;
use safestream_tests::cluster::Cluster;
use safestream_tests::*;
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The environment that points a relay at `rx`.
fn hook_env(rx: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("SAFESTREAM_WEBHOOK_URLS", rx.url.clone()),
        ("SAFESTREAM_WEBHOOK_SECRETS", SECRET.to_string()),
        ("SAFESTREAM_WEBHOOK_TIMEOUT_SECS", "2".to_string()),
    ]
}

/// Posts notification `title` for `u1` through `relay` (as the backend).
async fn notify(relay: &Relay, title: &str) -> R<()> {
    Backend::new(relay)
        .0
        .ok(
            Method::POST,
            "/api/dashboard/notifications",
            Some(json!({"userId": "u1", "type": "RESTRICTED_CONTENT", "title": title, "message": "m"})),
        )
        .await
        .map(|_| ())
}

/// Title -> the ids it arrived under (answered 2xx), for notification events.
fn delivered_titles(got: &[Got]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for g in got.iter().filter(|g| g.status == 200) {
        assert!(g.verified_by_all(), "signature did not verify: {g:?}");
        assert_eq!(g.body["id"], g.id.as_str());
        if g.body["type"] == "notification.created" {
            let title = g.body["data"]["title"].as_str().unwrap_or("").to_string();
            out.entry(title).or_default().insert(g.id.clone());
        }
    }
    out
}

/// (command id, status) -> the ids and the `data` it arrived under (answered 2xx), for
/// `command.status` events.
fn delivered_statuses(got: &[Got]) -> BTreeMap<(String, String), (BTreeSet<String>, Value)> {
    let mut out: BTreeMap<(String, String), (BTreeSet<String>, Value)> = BTreeMap::new();
    for g in got.iter().filter(|g| g.status == 200) {
        if g.body["type"] == "command.status" {
            let data = &g.body["data"];
            let key = (
                data["id"].as_str().unwrap_or("").to_string(),
                data["status"].as_str().unwrap_or("").to_string(),
            );
            let e = out
                .entry(key)
                .or_insert_with(|| (BTreeSet::new(), data.clone()));
            e.0.insert(g.id.clone());
        }
    }
    out
}

/// The outbox of `relay` is empty (every event delivered, none parked).
async fn outbox_empty(relay: &Relay) -> R<()> {
    for _ in 0..100 {
        let b = Backend::new(relay)
            .0
            .ok(Method::GET, "/api/webhooks/endpoints", None)
            .await?;
        if b["endpoints"][0]["pending"] == 0 && b["endpoints"][0]["failed"] == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the outbox did not empty".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_while_deliveries_are_in_flight_loses_no_event() {
    bounded(Duration::from_secs(120), async {
        let rx = Receiver::start(&[SECRET]).await;
        rx.delay(Duration::from_millis(400));
        let env = hook_env(&rx);
        let mut relay =
            Relay::start_with(env.iter().map(|(k, v)| (*k, v.as_str())).collect()).await?;
        // Commands too, half of them acknowledged: each status change is an event.
        let backend = Backend::new(&relay);
        backend.child("k1", "u1").await?;
        let (_, token) = backend.device("k1", "tablet").await?;
        let device = Client::new(&relay, &token);
        let mut commands = Vec::new();
        for i in 0..10 {
            let id = Parent::new(&relay, "u1")
                .command("k1", "PAUSE", 300)
                .await?;
            if i % 2 == 0 {
                let path = format!("/api/dashboard/remote-control/{id}");
                device
                    .ok(Method::PATCH, &path, Some(json!({"status": "EXECUTED"})))
                    .await?;
            }
            commands.push(id);
        }
        let n = 40;
        for i in 0..n {
            notify(&relay, &format!("n{i}")).await?;
        }
        // Some answered, many still open at the receiver: kill -9.
        rx.wait_for("a first delivery", Duration::from_secs(20), |g| {
            !g.is_empty()
        })
        .await;
        relay.kill();
        let before = rx.received().len();
        assert!(
            before < n,
            "the kill came before every event was sent ({before})"
        );
        relay.restart().await?;
        // Leases of the killed process run out (2 x 2 s + 5 s), then everything is resent.
        let statuses_of = |g: &[Got]| {
            let d = delivered_statuses(g);
            commands.iter().enumerate().all(|(i, id)| {
                let last = if i % 2 == 0 { "EXECUTED" } else { "PENDING" };
                d.contains_key(&(id.clone(), "PENDING".into()))
                    && d.contains_key(&(id.clone(), last.into()))
            })
        };
        let got = rx
            .wait_for("every event delivered", Duration::from_secs(60), |g| {
                delivered_titles(g).len() == n && statuses_of(g)
            })
            .await;
        // Every command's changes arrived, each under one id, the last one as REST has it.
        let statuses = delivered_statuses(&got);
        let parent = Parent::new(&relay, "u1");
        for id in &commands {
            let rest = parent.get_command(id).await?;
            let status = rest["status"].as_str().unwrap_or("").to_string();
            let (_, data) = &statuses[&(id.clone(), status.clone())];
            assert_eq!(
                data, &rest,
                "{id} {status}: the event's data is the REST view"
            );
            for ((cmd, st), (ids_of, _)) in &statuses {
                if cmd == id {
                    assert_eq!(
                        ids_of.len(),
                        1,
                        "{id} {st} arrived under one id: {ids_of:?}"
                    );
                }
            }
        }
        let titles = delivered_titles(&got);
        for (title, ids) in &titles {
            assert_eq!(
                ids.len(),
                1,
                "{title} arrived under one id on every attempt: {ids:?}"
            );
        }
        assert!(
            rx.overlaps().is_empty(),
            "sent twice at once: {:?}",
            rx.overlaps()
        );
        outbox_empty(&relay).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_send_each_event_from_one_node_at_a_time_and_lose_none_when_one_dies() {
    bounded(Duration::from_secs(180), async {
        let rx = Receiver::start(&[SECRET]).await;
        rx.delay(Duration::from_millis(50));
        let env = hook_env(&rx);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut c = Cluster::start(3, &env).await?;
        let n = 150;
        for i in 0..n {
            if i == n / 2 {
                // node-2 dies with whatever it had claimed.
                c.nodes[2].kill();
            }
            let node = if i < n / 2 { i % 3 } else { i % 2 };
            notify(&c.nodes[node], &format!("n{i}")).await?;
        }
        let got = rx
            .wait_for("every event delivered", Duration::from_secs(90), |g| {
                delivered_titles(g).len() == n
            })
            .await;
        let titles = delivered_titles(&got);
        for (title, ids) in &titles {
            assert_eq!(ids.len(), 1, "{title}: one id on every attempt: {ids:?}");
        }
        let overlaps = rx.overlaps();
        assert!(
            overlaps.is_empty(),
            "{} times an event was sent by two senders at once, first: {:?}",
            overlaps.len(),
            &overlaps[..overlaps.len().min(5)]
        );
        // Nodes 0 and 1 both sent (each claims rows, not only the ones it wrote).
        let mut senders = 0;
        for node in &c.nodes[..2] {
            let text = reqwest::get(format!("{}/metrics", node.http()))
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            if text
                .lines()
                .any(|l| l.starts_with("safestream_webhooks_sent_total") && !l.ends_with(" 0"))
            {
                senders += 1;
            }
        }
        assert_eq!(senders, 2, "both live nodes delivered");
        outbox_empty(&c.nodes[0]).await
    })
    .await;
}
