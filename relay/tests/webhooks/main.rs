//! Webhooks end to end against a local receiver (`receiver.rs`) that verifies every request
//! with the Standard Webhooks reference crate: what is sent for each change, signatures and
//! rotation, a receiver that is down then up, 4xx parking and the retry API, graceful
//! shutdown with a delivery in flight.
//!
//! `cargo test -p relay --test webhooks` (SQLite; with `SAFESTREAM_TEST_DB=postgres://...`
//! on PostgreSQL). Relay kills and three nodes: `tests/tests/webhooks.rs`.

#[path = "../common/mod.rs"]
mod common;
mod receiver;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use common::*;
use receiver::{Got, Receiver};
use serde_json::{json, Value};

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET_C: &str = "whsec_ZZECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const WAIT: Duration = Duration::from_secs(30);

/// A relay sending webhooks to `url`, signed with `secrets`.
async fn relay_to(url: &str, secrets: &str) -> Relay {
    let (url, secrets) = (url.to_string(), secrets.to_string());
    Relay::start_with(move |c| {
        c.webhook_urls = vec![url];
        c.webhook_secrets = Some(secrets);
        c.webhook_timeout_secs = 2;
    })
    .await
}

fn of_type<'a>(got: &'a [Got], kind: &str) -> Vec<&'a Got> {
    got.iter().filter(|g| g.body["type"] == kind).collect()
}

fn distinct_ids(got: &[Got]) -> BTreeSet<String> {
    got.iter().map(|g| g.id.clone()).collect()
}

/// Creates `n` notifications for `user` (as the backend).
async fn notifications(r: &Relay, user: &str, n: usize) {
    for i in 0..n {
        let (s, b) = r
            .post(
                "/api/dashboard/notifications",
                SERVER_KEY,
                json!({"userId": user, "type": "RESTRICTED_CONTENT", "title": format!("n{i}"), "message": "m"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
}

/// Every request is well formed: verified, the header id is the body's, the body has
/// `type`, an RFC 3339 `timestamp` and `data`.
fn check_shape(got: &[Got]) {
    for g in got {
        assert!(g.verified_by_all(), "signature did not verify: {g:?}");
        assert_eq!(g.body["id"], g.id.as_str(), "{g:?}");
        assert!(g.id.starts_with("evt_"), "{g:?}");
        assert!(
            g.body["type"].is_string() && g.body["data"].is_object(),
            "{g:?}"
        );
        let ts = g.body["timestamp"].as_str().unwrap_or("");
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "timestamp {ts:?}"
        );
    }
}

#[tokio::test]
async fn every_change_arrives_signed_with_the_data_the_rest_api_shows() {
    let rx = Receiver::start(&[SECRET_A]).await;
    let r = relay_to(&rx.url, SECRET_A).await;
    r.child("k1", &["u1"]).await;
    let (dev_id, dev_token) = r.device("k1").await;
    let p = parent("u1");
    let cmd = r.command(&p, "k1", "PAUSE").await;
    let cmd_id = cmd["id"].as_str().unwrap().to_string();
    let (s, b) = r.ack(&dev_token, &cmd_id, "EXECUTED").await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = r
        .post(
            "/api/dashboard/screen-time",
            &dev_token,
            json!({"childId": "k1", "minutesUsed": 61}),
        )
        .await;
    assert_eq!((s, b["alert"].as_bool()), (200, Some(true)), "{b}");
    let (s, _) = r
        .req(
            "DELETE",
            &format!("/api/devices/{dev_id}"),
            Some(SERVER_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200);

    // registered, 2 command statuses, the alert, its notification, revoked.
    let got = rx.wait_for("six events", WAIT, |g| g.len() >= 6).await;
    check_shape(&got);
    assert_eq!(distinct_ids(&got).len(), got.len(), "one id per event");

    let reg = of_type(&got, "device.registered");
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].body["data"]["id"], dev_id.as_str());
    assert_eq!(reg[0].body["data"]["childId"], "k1");
    assert_eq!(reg[0].body["data"]["createdBy"], "backend");

    let statuses = of_type(&got, "command.status");
    let seen: HashSet<&str> = statuses
        .iter()
        .map(|g| g.body["data"]["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(seen, HashSet::from(["PENDING", "EXECUTED"]));
    let (s, rest) = r
        .get(&format!("/api/dashboard/remote-control/{cmd_id}"), &p)
        .await;
    assert_eq!(s, 200);
    let executed = statuses
        .iter()
        .find(|g| g.body["data"]["status"] == "EXECUTED")
        .unwrap();
    assert_eq!(executed.body["data"], rest["command"], "the REST view");

    let alert = of_type(&got, "screentime.alert");
    assert_eq!(alert.len(), 1);
    assert_eq!(
        alert[0].body["data"],
        json!({"childId": "k1", "childName": "Child k1", "minutesUsed": 61, "limit": 60})
    );
    let notif = of_type(&got, "notification.created");
    assert_eq!(notif.len(), 1);
    assert_eq!(notif[0].body["data"]["type"], "SCREEN_TIME_LIMIT");
    assert_eq!(notif[0].body["data"]["userId"], "u1");
    let revoked = of_type(&got, "device.revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].body["data"]["revoked"], true);

    // Revoking again changes nothing and sends nothing.
    let (s, _) = r
        .req(
            "DELETE",
            &format!("/api/devices/{dev_id}"),
            Some(SERVER_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 6, "{:?}", rx.received());
    let text = reqwest::get(format!("{}/metrics", r.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("safestream_webhooks_sent_total"), "{text}");
    r.stop().await;
}

#[tokio::test]
async fn device_presence_is_sent_online_then_offline() {
    let rx = Receiver::start(&[SECRET_A]).await;
    let r = relay_to(&rx.url, SECRET_A).await;
    r.child("k1", &["u1"]).await;
    let (dev_id, dev_token) = r.device("k1").await;
    let (ws, _) = Ws::ready(&r, &dev_token).await;
    rx.wait_for("device.online", WAIT, |g| {
        of_type(g, "device.online").len() == 1
    })
    .await;
    drop(ws);
    let got = rx
        .wait_for("device.offline", WAIT, |g| {
            of_type(g, "device.offline").len() == 1
        })
        .await;
    check_shape(&got);
    let on = &of_type(&got, "device.online")[0].body["data"];
    let off = &of_type(&got, "device.offline")[0].body["data"];
    assert_eq!(
        (&on["deviceId"], &on["online"]),
        (&json!(dev_id), &json!(true))
    );
    assert_eq!(
        (&off["deviceId"], &off["online"]),
        (&json!(dev_id), &json!(false))
    );
    r.stop().await;
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_every_event_under_the_ids_it_was_first_sent_with() {
    // A port with nothing listening: connection refused.
    let addr = Receiver::start(&[SECRET_A]).await.stop().await;
    let r = relay_to(&format!("http://{addr}/hook"), SECRET_A).await;
    notifications(&r, "u1", 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, b) = r.get("/api/webhooks/endpoints", SERVER_KEY).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["endpoints"][0]["pending"], 10, "{b}");
    assert_eq!(b["endpoints"][0]["failed"], 0, "{b}");
    assert!(b["endpoints"][0]["oldestPendingAt"].is_string(), "{b}");

    // Up, but failing (503): every event is tried and keeps its id...
    let rx = Receiver::start_on(addr, &[SECRET_A]).await;
    rx.answer(503);
    let failing = rx
        .wait_for("ten ids tried", WAIT, |g| distinct_ids(g).len() == 10)
        .await;
    let first_ids = distinct_ids(&failing);
    // ...then well: each arrives, under the same ids.
    rx.answer(200);
    let got = rx
        .wait_for("ten delivered", Duration::from_secs(60), |g| {
            distinct_ids(
                &g.iter()
                    .filter(|x| x.status == 200)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
            .len()
                == 10
        })
        .await;
    check_shape(&got);
    let delivered = distinct_ids(&rx.delivered());
    assert_eq!(delivered, first_ids);
    let titles: BTreeSet<String> = rx
        .delivered()
        .iter()
        .map(|g| g.body["data"]["title"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(titles.len(), 10, "{titles:?}");
    // The outbox empties.
    let mut pending = json!(null);
    for _ in 0..100 {
        let (_, b) = r.get("/api/webhooks/endpoints", SERVER_KEY).await;
        pending = b["endpoints"][0]["pending"].clone();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending, 0);
    r.stop().await;
}

#[tokio::test]
async fn a_4xx_parks_the_event_and_the_backend_retries_it() {
    let rx = Receiver::start(&[SECRET_A]).await;
    rx.answer(400);
    let r = relay_to(&rx.url, SECRET_A).await;
    notifications(&r, "u1", 3).await;
    let mut failed = Vec::new();
    for _ in 0..200 {
        let (s, b) = r.get("/api/webhooks/failed", SERVER_KEY).await;
        assert_eq!(s, 200, "{b}");
        failed = b["events"].as_array().cloned().unwrap_or_default();
        if failed.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failed.len(), 3, "{failed:?}");
    for f in &failed {
        assert!(
            f["lastError"]
                .as_str()
                .unwrap_or("")
                .starts_with("HTTP 400"),
            "{f}"
        );
        assert_eq!(f["attempts"], 1, "parked at once: {f}");
        assert_eq!(f["type"], "notification.created");
        assert_eq!(f["payload"]["id"], f["id"]);
    }
    assert_eq!(rx.received().len(), 3, "a 4xx is not retried");

    // Pages, newest first, by the (failedAt, id) cursor.
    let (_, p1) = r.get("/api/webhooks/failed?limit=2", SERVER_KEY).await;
    let next = p1["next"].as_str().expect("a next cursor").to_string();
    let (_, p2) = r
        .get(
            &format!("/api/webhooks/failed?limit=2&after={next}"),
            SERVER_KEY,
        )
        .await;
    assert_eq!(p1["events"].as_array().unwrap().len(), 2);
    assert_eq!(p2["events"].as_array().unwrap().len(), 1);
    assert_eq!(p2["next"], Value::Null);
    let paged: BTreeSet<String> = p1["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["events"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let all: BTreeSet<String> = failed
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paged, all);

    // Refusals.
    for path in [
        "/api/webhooks/failed?after=garbage",
        "/api/webhooks/failed?limit=0",
    ] {
        assert_eq!(r.get(path, SERVER_KEY).await.0, 400, "{path}");
    }
    assert_eq!(r.get("/api/webhooks/failed", &parent("u1")).await.0, 403);
    assert_eq!(r.get("/api/webhooks/endpoints", &parent("u1")).await.0, 403);
    let (s, _) = r
        .post(
            "/api/webhooks/failed/evt_nosuchevent/retry",
            SERVER_KEY,
            json!({}),
        )
        .await;
    assert_eq!(s, 404);

    // Retry one: it is sent again, with its id, and arrives.
    rx.answer(200);
    let id = failed[0]["id"].as_str().unwrap().to_string();
    let (s, b) = r
        .post(
            &format!("/api/webhooks/failed/{id}/retry"),
            SERVER_KEY,
            json!({}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let got = rx
        .wait_for("the retried event", WAIT, |g| {
            g.iter().any(|x| x.id == id && x.status == 200)
        })
        .await;
    check_shape(&got);
    let retried = got.iter().find(|x| x.id == id && x.status == 200).unwrap();
    assert_eq!(retried.body, failed[0]["payload"], "the same body");
    // Delivered: gone from the outbox; the other two stay parked.
    let mut left = Vec::new();
    for _ in 0..100 {
        let (_, b) = r.get("/api/webhooks/failed", SERVER_KEY).await;
        left = b["events"].as_array().cloned().unwrap_or_default();
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left.len(), 2);
    let (s, _) = r
        .post(
            &format!("/api/webhooks/failed/{id}/retry"),
            SERVER_KEY,
            json!({}),
        )
        .await;
    assert_eq!(s, 404, "a delivered event is not retryable");
    let (_, b) = r.get("/api/webhooks/endpoints", SERVER_KEY).await;
    assert_eq!(b["endpoints"][0]["url"], rx.url.as_str());
    assert_eq!(b["endpoints"][0]["failed"], 2);
    assert_eq!(b["activeSecrets"], 1);
    r.stop().await;
}

#[tokio::test]
async fn while_rotating_both_signatures_are_sent_and_each_verifies_with_its_own_secret() {
    let rx = Receiver::start(&[SECRET_A, SECRET_B, SECRET_C]).await;
    let r = relay_to(&rx.url, &format!("{SECRET_A},{SECRET_B}")).await;
    notifications(&r, "u1", 2).await;
    let got = rx.wait_for("two events", WAIT, |g| g.len() == 2).await;
    for g in &got {
        assert_eq!(g.verified, vec![true, true, false], "{g:?}");
        let sigs: Vec<&str> = g.signature.split(' ').collect();
        assert_eq!(sigs.len(), 2, "{}", g.signature);
        assert!(sigs.iter().all(|s| s.starts_with("v1,")), "{}", g.signature);
        assert_ne!(sigs[0], sigs[1]);
    }
    let (_, b) = r.get("/api/webhooks/endpoints", SERVER_KEY).await;
    assert_eq!(b["activeSecrets"], 2);
    assert!(
        !b.to_string().contains("whsec_"),
        "secrets are never shown: {b}"
    );
    r.stop().await;
}

#[tokio::test]
async fn shutdown_waits_for_the_delivery_in_flight_and_records_it() {
    let rx = Receiver::start(&[SECRET_A]).await;
    rx.delay(Duration::from_millis(1200));
    let r = relay_to(&rx.url, SECRET_A).await;
    notifications(&r, "u1", 1).await;
    // The request is open at the receiver (sent at once on commit).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(rx.received().is_empty());
    let r = r.restart().await;
    assert_eq!(rx.delivered().len(), 1, "answered before shutdown ended");
    let (_, b) = r.get("/api/webhooks/endpoints", SERVER_KEY).await;
    assert_eq!(
        (&b["endpoints"][0]["pending"], &b["endpoints"][0]["failed"]),
        (&json!(0), &json!(0)),
        "the outcome was recorded: {b}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), 1, "not sent again");
    r.stop().await;
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_queued() {
    let r = Relay::start().await;
    notifications(&r, "u1", 2).await;
    let (s, b) = r.get("/api/webhooks/endpoints", SERVER_KEY).await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"endpoints": [], "activeSecrets": 0}));
    let (_, b) = r.get("/api/webhooks/failed", SERVER_KEY).await;
    assert_eq!(b["events"], json!([]));
    r.stop().await;
}

#[tokio::test]
async fn pairing_sends_requested_then_approved_and_the_device_it_registered() {
    let rx = Receiver::start(&[SECRET_A]).await;
    let r = relay_to(&rx.url, SECRET_A).await;
    r.child("c1", &["p1"]).await;
    let p1 = parent("p1");
    let (s, b) = r
        .req(
            "POST",
            "/api/pairing",
            None,
            Some(json!({"deviceName": "Mia's phone"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (pid, code) = (
        b["pairingId"].as_str().unwrap().to_string(),
        b["code"].as_str().unwrap().to_string(),
    );
    let (s, b) = r
        .post("/api/pairing/claim", &p1, json!({"code": code}))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = r
        .post(
            &format!("/api/pairing/{pid}/approve"),
            &p1,
            json!({"childId": "c1"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let device_id = b["deviceId"].as_str().unwrap().to_string();
    // requested (+ its notification), approved, registered (+ the guardians' notification).
    let got = rx.wait_for("five events", WAIT, |g| g.len() >= 5).await;
    check_shape(&got);
    let req = of_type(&got, "pairing.requested");
    assert_eq!(req.len(), 1);
    assert_eq!(req[0].body["data"]["pairingId"], pid.as_str());
    assert_eq!(req[0].body["data"]["deviceName"], "Mia's phone");
    assert_eq!(req[0].body["data"]["claimedBy"], "p1");
    assert!(
        !req[0].body.to_string().contains(&code),
        "the pairing code is not sent"
    );
    let ok = of_type(&got, "pairing.approved");
    assert_eq!(ok.len(), 1);
    assert_eq!(
        ok[0].body["data"],
        json!({"pairingId": pid, "childId": "c1", "deviceId": device_id,
               "deviceName": "Mia's phone", "approvedBy": "p1"})
    );
    let reg = of_type(&got, "device.registered");
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].body["data"]["id"], device_id.as_str());
    assert_eq!(reg[0].body["data"]["createdBy"], "p1");
    assert_eq!(of_type(&got, "notification.created").len(), 2);
    r.stop().await;
}

#[tokio::test]
async fn a_timeout_is_retried_under_the_same_id_and_a_redirect_is_parked() {
    let rx = Receiver::start(&[SECRET_A]).await;
    rx.delay(Duration::from_millis(1800));
    let (url, secrets) = (rx.url.clone(), SECRET_A.to_string());
    let r = Relay::start_with(move |c| {
        c.webhook_urls = vec![url];
        c.webhook_secrets = Some(secrets);
        c.webhook_timeout_secs = 1;
    })
    .await;
    notifications(&r, "u1", 1).await;
    // The first attempt times out (the relay gives up before the receiver answers)...
    for _ in 0..200 {
        if !rx.arrived().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let first = rx.arrived();
    assert_eq!(first.len(), 1, "{first:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(rx.received().is_empty(), "the relay gave up on it");
    rx.delay(Duration::ZERO);
    // ...and the retry is delivered, under the same id.
    let got = rx.wait_for("the retry", WAIT, |g| !g.is_empty()).await;
    check_shape(&got);
    assert_eq!(got[0].id, first[0]);
    assert!(rx.arrived().len() >= 2);
    let (_, b) = r.get("/api/webhooks/failed", SERVER_KEY).await;
    assert_eq!(b["events"], json!([]), "a timeout does not park");

    // A redirect is not followed: the event is parked, saying why.
    rx.answer(307);
    notifications(&r, "u1", 1).await;
    let mut failed = Vec::new();
    for _ in 0..200 {
        let (_, b) = r.get("/api/webhooks/failed", SERVER_KEY).await;
        failed = b["events"].as_array().cloned().unwrap_or_default();
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failed.len(), 1);
    let err = failed[0]["lastError"].as_str().unwrap_or("");
    assert!(
        err.starts_with("HTTP 307") && err.contains("redirects are not followed"),
        "{err}"
    );
    r.stop().await;
}
