//! Commands: creation, validation and listing; acks (idempotent, 409 on conflict,
//! authorized); expiry; the device's HTTPS sync.

use std::time::Duration;

use serde_json::json;

use crate::code;
use crate::common::*;

#[tokio::test]
async fn command_creation_validation_and_listing() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    r.child("c2", &["p2"]).await;
    let (d2, _) = r.device("c2").await;
    let p1 = parent("p1");
    let before = now_secs();
    let cmd = r.command(&p1, "c1", "PAUSE").await;
    assert_eq!(cmd["status"], "PENDING");
    let expires = chrono_secs(cmd["expiresAt"].as_str().unwrap());
    assert!(
        (expires - before - 300).abs() <= 2,
        "default expiry is 300 s"
    );
    // Another family's child, an unknown child, a device of another child.
    let (s, b) = r
        .post(
            "/api/dashboard/remote-control",
            &p1,
            json!({"childId": "c2", "commandType": "PAUSE"}),
        )
        .await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    assert_eq!(
        r.post(
            "/api/dashboard/remote-control",
            &p1,
            json!({"childId": "zz", "commandType": "PAUSE"})
        )
        .await
        .0,
        404
    );
    let (s, _) = r
        .post(
            "/api/dashboard/remote-control",
            &p1,
            json!({"childId": "c1", "commandType": "PAUSE", "deviceId": d2}),
        )
        .await;
    assert_eq!(s, 404);
    // Bad input.
    for body in [
        json!({"childId": "c1", "commandType": "EXPLODE"}),
        json!({"childId": "c1"}),
        json!({"commandType": "PAUSE"}),
        json!({"childId": "c1", "commandType": "PAUSE", "payload": "text"}),
        json!({"childId": "c1", "commandType": "PAUSE", "expiresInSeconds": 0}),
        json!({"childId": "c1", "commandType": "PAUSE", "expiresInSeconds": 10_000_000}),
        json!({"childId": "c1", "commandType": "PAUSE", "payload": {"big": "x".repeat(9000)}}),
    ] {
        let (s, b) = r
            .post("/api/dashboard/remote-control", &p1, body.clone())
            .await;
        assert_eq!((s, code(&b)), (400, "bad_request"), "{body}");
    }
    // Only parents create.
    assert_eq!(
        r.post(
            "/api/dashboard/remote-control",
            SERVER_KEY,
            json!({"childId": "c1", "commandType": "PAUSE"})
        )
        .await
        .0,
        403
    );
    // Listing: own children only, filters.
    r.command(&p1, "c1", "LOCK_DEVICE").await;
    let (s, b) = r.get("/api/dashboard/remote-control", &p1).await;
    assert_eq!(s, 200);
    let list = b["commands"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["commandType"], "LOCK_DEVICE", "newest first");
    let (_, b) = r
        .get(
            "/api/dashboard/remote-control?status=PENDING&childId=c1&limit=1",
            &p1,
        )
        .await;
    assert_eq!(b["commands"].as_array().unwrap().len(), 1);
    assert_eq!(
        r.get("/api/dashboard/remote-control?childId=c2", &p1)
            .await
            .0,
        403
    );
    assert_eq!(
        r.get("/api/dashboard/remote-control?status=DONE", &p1)
            .await
            .0,
        400
    );
    assert_eq!(
        r.get("/api/dashboard/remote-control?limit=0", &p1).await.0,
        400
    );
    let (_, b) = r.get("/api/dashboard/remote-control", &parent("p2")).await;
    assert_eq!(b["commands"].as_array().unwrap().len(), 0);
    let (s, b) = r
        .get(
            &format!(
                "/api/dashboard/remote-control/{}",
                cmd["id"].as_str().unwrap()
            ),
            &p1,
        )
        .await;
    assert_eq!((s, b["command"]["id"].clone()), (200, cmd["id"].clone()));
    assert_eq!(
        r.get(
            &format!(
                "/api/dashboard/remote-control/{}",
                cmd["id"].as_str().unwrap()
            ),
            &parent("p2")
        )
        .await
        .0,
        403
    );
    r.stop().await;
}

fn chrono_secs(s: &str) -> i64 {
    relay::model::parse_rfc3339(s).unwrap() / 1000
}

#[tokio::test]
async fn acks_are_idempotent_conflicts_409_and_authorized() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    r.child("c2", &["p2"]).await;
    let (_, d1) = r.device("c1").await;
    let (d1b_id, d1b) = r.device("c1").await;
    let (_, d2) = r.device("c2").await;
    let p1 = parent("p1");
    let cmd = r.command(&p1, "c1", "PAUSE").await;
    let id = cmd["id"].as_str().unwrap();
    // Another child's device, a parent, the backend: refused; nothing changes.
    assert_eq!(r.ack(&d2, id, "EXECUTED").await.0, 403);
    let (s, _) = r
        .req(
            "PATCH",
            &format!("/api/dashboard/remote-control/{id}"),
            Some(&p1),
            Some(json!({"status": "EXECUTED"})),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(r.ack(&d1, "no-such-command", "EXECUTED").await.0, 404);
    let (s, b) = r.ack(&d1, id, "EXECUTED").await;
    assert_eq!(
        (s, b["command"]["status"].as_str()),
        (200, Some("EXECUTED"))
    );
    assert!(b["command"]["executedAt"].is_string());
    // The same ack again is 200; the contradicting one 409.
    assert_eq!(r.ack(&d1, id, "EXECUTED").await.0, 200);
    let (s, b) = r.ack(&d1, id, "FAILED").await;
    assert_eq!((s, code(&b)), (409, "conflict"));
    // Input is validated before state: a malformed ack on a finished command is 400.
    for body in [
        json!({"status": "DONE"}),
        json!({}),
        json!({"status": "EXECUTED", "error": 5}),
        json!("EXECUTED"),
    ] {
        let (s, _) = r
            .req(
                "PATCH",
                &format!("/api/dashboard/remote-control/{id}"),
                Some(&d1),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{body}");
    }
    let (_, b) = r
        .get(&format!("/api/dashboard/remote-control/{id}"), &p1)
        .await;
    assert_eq!(b["command"]["status"], "EXECUTED");
    // A command for one device may not be acked by its sibling.
    let (s, b) = r
        .post(
            "/api/dashboard/remote-control",
            &p1,
            json!({"childId": "c1", "commandType": "LOCK_DEVICE", "deviceId": d1b_id}),
        )
        .await;
    assert_eq!(s, 201);
    let targeted = b["command"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.ack(&d1, &targeted, "EXECUTED").await.0, 403);
    let (s, b) = r
        .req(
            "PATCH",
            &format!("/api/dashboard/remote-control/{targeted}"),
            Some(&d1b),
            Some(json!({"status": "FAILED", "error": "no permission"})),
        )
        .await;
    assert_eq!(
        (s, b["command"]["error"].as_str()),
        (200, Some("no permission"))
    );
    r.stop().await;
}

#[tokio::test]
async fn commands_expire_and_are_never_delivered_after() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (_, d1) = r.device("c1").await;
    let p1 = parent("p1");
    let (mut pws, _) = Ws::ready(&r, &p1).await;
    let (s, b) = r
        .post(
            "/api/dashboard/remote-control",
            &p1,
            json!({"childId": "c1", "commandType": "PAUSE", "expiresInSeconds": 1}),
        )
        .await;
    assert_eq!(s, 201);
    let id = b["command"]["id"].as_str().unwrap().to_string();
    pws.expect("command:sent").await;
    let st = pws.expect("command:status").await;
    assert_eq!(
        (st["commandId"].as_str(), st["status"].as_str()),
        (Some(id.as_str()), Some("EXPIRED"))
    );
    let (_, b) = r
        .get(&format!("/api/dashboard/remote-control/{id}"), &p1)
        .await;
    assert_eq!(b["command"]["status"], "EXPIRED");
    // Expired: the device does not get it, over the socket or the pull.
    let (mut dws, _) = Ws::ready(&r, &d1).await;
    dws.expect_none("command:new", Duration::from_millis(500))
        .await;
    let (_, b) = r.get("/api/devices/me/commands", &d1).await;
    assert_eq!(b["commands"].as_array().unwrap().len(), 0);
    r.stop().await;
}

/// Regression (found by the model checker, `model/`): a command written to a device whose
/// delivery record never committed (the relay died between the frame write and the
/// background `mark_delivered`) expires with no `delivered_at`. The device did get it and
/// may have run it: its late ack is recorded and guardians are told, instead of a 409 that
/// left the command EXPIRED although it ran. The relay cannot tell this case from "never
/// delivered", and only a device that got the id can ack it.
#[tokio::test]
async fn a_late_ack_is_recorded_even_without_a_delivery_record() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    r.child("c2", &["p2"]).await;
    let (_, d1) = r.device("c1").await;
    let (_, d2) = r.device("c2").await;
    let p1 = parent("p1");
    let (mut pws, _) = Ws::ready(&r, &p1).await;
    let (s, b) = r
        .post(
            "/api/dashboard/remote-control",
            &p1,
            json!({"childId": "c1", "commandType": "LOCK_DEVICE", "expiresInSeconds": 1}),
        )
        .await;
    assert_eq!(s, 201);
    let id = b["command"]["id"].as_str().unwrap().to_string();
    pws.expect("command:sent").await;
    let st = pws.expect("command:status").await;
    assert_eq!(st["status"], "EXPIRED");
    let (_, b) = r
        .get(&format!("/api/dashboard/remote-control/{id}"), &p1)
        .await;
    assert!(b["command"]["deliveredAt"].is_null(), "{b}");
    // Another child's device still may not touch it.
    assert_eq!(r.ack(&d2, &id, "EXECUTED").await.0, 403);
    let (s, b) = r.ack(&d1, &id, "EXECUTED").await;
    assert_eq!(
        (s, b["command"]["status"].as_str()),
        (200, Some("EXECUTED")),
        "{b}"
    );
    let st = pws.expect("command:status").await;
    assert_eq!(
        (st["commandId"].as_str(), st["status"].as_str()),
        (Some(id.as_str()), Some("EXECUTED"))
    );
    // Recorded once: the same ack is 200 unchanged, the other outcome 409.
    assert_eq!(r.ack(&d1, &id, "EXECUTED").await.0, 200);
    assert_eq!(r.ack(&d1, &id, "FAILED").await.0, 409);
    pws.expect_none("command:status", Duration::from_millis(300))
        .await;
    r.stop().await;
}

#[tokio::test]
async fn device_https_sync_delivers_pending_commands_once_marked() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (_, d1) = r.device("c1").await;
    let p1 = parent("p1");
    let (mut pws, _) = Ws::ready(&r, &p1).await;
    let c = r.command(&p1, "c1", "LOCK_DEVICE").await;
    let (s, b) = r.get("/api/devices/me/commands", &d1).await;
    assert_eq!(s, 200);
    let list = b["commands"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["id"].clone(), list[0]["commandType"].as_str()),
        (c["id"].clone(), Some("LOCK_DEVICE"))
    );
    let st = pws.expect("command:status").await;
    assert_eq!(st["status"], "DELIVERED");
    r.ack(&d1, c["id"].as_str().unwrap(), "EXECUTED").await;
    let (_, b) = r.get("/api/devices/me/commands", &d1).await;
    assert_eq!(b["commands"].as_array().unwrap().len(), 0);
    assert_eq!(r.get("/api/devices/me/commands", &p1).await.0, 403);
    r.stop().await;
}
