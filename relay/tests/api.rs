//! REST endpoints over real sockets on 127.0.0.1:0: registry, commands, acks, errors,
//! authorization negatives, notifications, screen time, publish, pairing, revocation.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test]
async fn children_guardians_and_devices() {
    let r = Relay::start().await;
    let p1 = parent("p1");
    let p2 = parent("p2");
    // Backend creates, then updates.
    let (s, b) = r
        .req("PUT", "/api/children/c1", Some(SERVER_KEY), Some(json!({"name": "Mia", "guardians": ["p1"], "timezone": "Europe/Paris", "dailyLimitMinutes": 90})))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["child"]["guardians"], json!(["p1"]));
    assert_eq!(b["child"]["timezone"], "Europe/Paris");
    let (s, _) = r
        .req(
            "PUT",
            "/api/children/c1",
            Some(SERVER_KEY),
            Some(json!({"dailyLimitMinutes": 100})),
        )
        .await;
    assert_eq!(s, 200);
    // The guardian updates; another parent may not.
    let (s, b) = r
        .req(
            "PUT",
            "/api/children/c1",
            Some(&p1),
            Some(json!({"name": "Mia R."})),
        )
        .await;
    assert_eq!((s, b["child"]["name"].as_str()), (200, Some("Mia R.")));
    assert_eq!(b["child"]["dailyLimitMinutes"], 100);
    let (s, b) = r
        .req(
            "PUT",
            "/api/children/c1",
            Some(&p2),
            Some(json!({"name": "Hijack"})),
        )
        .await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    // A parent creating a child becomes its guardian; may not set guardians.
    let (s, b) = r
        .req(
            "PUT",
            "/api/children/c2",
            Some(&p2),
            Some(json!({"name": "Leo"})),
        )
        .await;
    assert_eq!((s, b["child"]["guardians"].clone()), (201, json!(["p2"])));
    let (s, _) = r
        .req(
            "PUT",
            "/api/children/c2",
            Some(&p2),
            Some(json!({"guardians": ["p1"]})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, b) = r.get("/api/children", &p2).await;
    assert_eq!(s, 200);
    assert_eq!(b["children"].as_array().unwrap().len(), 1);
    // Bad input is 400 and changes nothing.
    for body in [
        json!({"name": "x", "timezone": "Mars/Olympus"}),
        json!({"name": "x", "dailyLimitMinutes": -1}),
        json!({"name": "x", "dailyLimitMinutes": "ten"}),
        json!({"name": ""}),
        json!({"name": 5}),
        json!([1, 2]),
    ] {
        let (s, b) = r
            .req(
                "PUT",
                "/api/children/c1",
                Some(SERVER_KEY),
                Some(body.clone()),
            )
            .await;
        assert_eq!((s, code(&b)), (400, "bad_request"), "{body}");
    }
    let (s, _) = r
        .req(
            "PUT",
            "/api/children/c3",
            Some(SERVER_KEY),
            Some(json!({"timezone": "UTC"})),
        )
        .await;
    assert_eq!(s, 400, "name is required to create");
    let (s, _) = r
        .req(
            "PUT",
            "/api/children/bad%20id",
            Some(SERVER_KEY),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, 400);
    let (_, b) = r.get("/api/children/c1", &p1).await;
    assert_eq!(b["child"]["name"], "Mia R.");
    assert_eq!(b["child"]["dailyLimitMinutes"], 100);
    // Reads.
    assert_eq!(r.get("/api/children/c1", &p2).await.0, 403);
    assert_eq!(r.get("/api/children/nope", SERVER_KEY).await.0, 404);
    // Devices: guardian or backend; listed with presence.
    let (s, b) = r
        .post("/api/children/c1/devices", &p1, json!({"name": "tablet"}))
        .await;
    assert_eq!(s, 201, "{b}");
    assert!(b["token"].as_str().unwrap().len() > 20);
    assert_eq!(
        r.post("/api/children/c1/devices", &p2, json!({"name": "x"}))
            .await
            .0,
        403
    );
    assert_eq!(
        r.post("/api/children/c1/devices", &p1, json!({})).await.0,
        400
    );
    assert_eq!(
        r.post(
            "/api/children/nope/devices",
            SERVER_KEY,
            json!({"name": "x"})
        )
        .await
        .0,
        404
    );
    let (s, b) = r.get("/api/children/c1/devices", &p1).await;
    assert_eq!(s, 200);
    assert_eq!(b["devices"][0]["online"], false);
    assert_eq!(b["devices"][0]["revoked"], false);
    r.stop().await;
}

#[tokio::test]
async fn authentication_failures_are_401_and_wrong_actors_403() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (_, dev) = r.device("c1").await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let future = now_secs() + 3600;
    let alg_none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(json!({"sub": "p1", "exp": future}).to_string())
    );
    let wrong_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "p1", "exp": future}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret"),
    )
    .unwrap();
    let bad = [
        ("garbage", "garbage".to_string()),
        ("expired", jwt(json!({"sub": "p1", "exp": now_secs() - 10}))),
        (
            "not yet valid",
            jwt(json!({"sub": "p1", "exp": future, "nbf": future - 60})),
        ),
        ("no exp", jwt(json!({"sub": "p1"}))),
        ("wrong secret", wrong_secret),
        ("alg none", alg_none),
    ];
    for (what, token) in &bad {
        let (s, b) = r.get("/api/dashboard/notifications", token).await;
        assert_eq!((s, code(&b)), (401, "unauthorized"), "{what}");
        let (s, _) = r.get("/api/children", token).await;
        assert_eq!(s, 401, "{what}");
    }
    let (s, b) = r
        .req("GET", "/api/dashboard/notifications", None, None)
        .await;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    let (s, _) = r.req("GET", "/api/children", Some("Basic abc"), None).await;
    assert_eq!(s, 401);
    // The server key is not a parent token, and a parent token is not the server key.
    let (s, b) = r.get("/api/dashboard/notifications", SERVER_KEY).await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    let (s, _) = r
        .post(
            "/api/dashboard/notifications",
            &parent("p1"),
            json!({"userId": "p1", "type": "RESTRICTED_CONTENT", "title": "t"}),
        )
        .await;
    assert_eq!(s, 403);
    // A device token is neither.
    assert_eq!(r.get("/api/dashboard/notifications", &dev).await.0, 403);
    assert_eq!(
        r.post(
            "/api/publish",
            &dev,
            json!({"room": "admins", "event": "x"})
        )
        .await
        .0,
        403
    );
    // Error bodies always have the JSON shape.
    let (s, b) = r.req("GET", "/api/nowhere", None, None).await;
    assert_eq!((s, code(&b)), (404, "not_found"));
    let (s, b) = r
        .req(
            "DELETE",
            "/api/dashboard/notifications",
            Some(SERVER_KEY),
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (405, "method_not_allowed"));
    r.stop().await;
}

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
    // Never delivered: the device does not get it, and its ack conflicts.
    let (mut dws, _) = Ws::ready(&r, &d1).await;
    dws.expect_none("command:new", Duration::from_millis(500))
        .await;
    assert_eq!(r.ack(&d1, &id, "EXECUTED").await.0, 409);
    let (_, b) = r.get("/api/devices/me/commands", &d1).await;
    assert_eq!(b["commands"].as_array().unwrap().len(), 0);
    r.stop().await;
}

#[tokio::test]
async fn bodies_limits_and_content_types() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let p1 = parent("p1");
    let big =
        json!({"childId": "c1", "commandType": "PAUSE", "payload": {"x": "y".repeat(70_000)}});
    let (s, b) = r.post("/api/dashboard/remote-control", &p1, big).await;
    assert_eq!((s, code(&b)), (413, "payload_too_large"));
    let resp = r
        .http
        .post(format!("{}/api/dashboard/remote-control", r.base))
        .header("Authorization", format!("Bearer {p1}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("childId=c1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    let resp = r
        .http
        .post(format!("{}/api/dashboard/remote-control", r.base))
        .header("Authorization", format!("Bearer {p1}"))
        .header("Content-Type", "application/json")
        .body("{\"childId\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "bad_request");
    // Deeply nested JSON is refused, not a crash.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let resp = r
        .http
        .put(format!("{}/api/children/c1", r.base))
        .header("Authorization", format!("Bearer {SERVER_KEY}"))
        .header("Content-Type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(r.req("GET", "/healthz", None, None).await.0, 200);
    assert_eq!(r.req("GET", "/readyz", None, None).await.0, 200);
    r.stop().await;
}

#[tokio::test]
async fn notifications_post_list_page_and_read() {
    let r = Relay::start().await;
    let p1 = parent("p1");
    let (mut ws, _) = Ws::ready(&r, &p1).await;
    for i in 0..3 {
        let (s, b) = r
            .post(
                "/api/dashboard/notifications",
                SERVER_KEY,
                json!({"userId": "p1", "type": "RESTRICTED_CONTENT", "title": format!("n{i}"), "message": "m", "metadata": {"i": i}}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let f = ws.expect_frame("notification:new").await;
        assert_eq!(f["data"]["title"], format!("n{i}"));
        assert!(f["seq"].as_i64().unwrap() > 0);
        for field in ["id", "type", "title", "message", "metadata", "createdAt"] {
            assert!(!f["data"][field].is_null(), "notification:new has {field}");
        }
    }
    let (s, b) = r.get("/api/dashboard/notifications", &p1).await;
    assert_eq!(s, 200);
    let list = b["notifications"].as_array().unwrap();
    assert_eq!(
        list.iter()
            .map(|n| n["title"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["n2", "n1", "n0"]
    );
    let (_, page) = r
        .get(
            &format!(
                "/api/dashboard/notifications?limit=1&before={}",
                list[0]["id"].as_str().unwrap()
            ),
            &p1,
        )
        .await;
    assert_eq!(page["notifications"][0]["title"], "n1");
    let (_, other) = r.get("/api/dashboard/notifications", &parent("p2")).await;
    assert_eq!(other["notifications"].as_array().unwrap().len(), 0);
    let id = list[0]["id"].as_str().unwrap();
    assert_eq!(
        r.post(
            &format!("/api/dashboard/notifications/{id}/read"),
            &parent("p2"),
            json!({})
        )
        .await
        .0,
        404
    );
    let (s, b) = r
        .post(
            &format!("/api/dashboard/notifications/{id}/read"),
            &p1,
            json!({}),
        )
        .await;
    assert_eq!((s, b["notification"]["read"].as_bool()), (200, Some(true)));
    for body in [
        json!({"userId": "p1", "type": "NOPE", "title": "t"}),
        json!({"userId": "p1", "type": "RESTRICTED_CONTENT"}),
        json!({"type": "RESTRICTED_CONTENT", "title": "t"}),
        json!({"userId": "p1", "type": "RESTRICTED_CONTENT", "title": "t", "metadata": [1]}),
    ] {
        assert_eq!(
            r.post("/api/dashboard/notifications", SERVER_KEY, body.clone())
                .await
                .0,
            400,
            "{body}"
        );
    }
    r.stop().await;
}

#[tokio::test]
async fn screen_time_alerts_once_per_day_even_across_restart() {
    let r = Relay::start().await;
    r.child("c1", &["p1", "p2"]).await; // limit 60
    r.child("c2", &["p3"]).await;
    let (_, d1) = r.device("c1").await;
    let (mut ws1, _) = Ws::ready(&r, &parent("p1")).await;
    let (mut ws2, _) = Ws::ready(&r, &parent("p2")).await;
    let (s, b) = r
        .post(
            "/api/dashboard/screen-time",
            &d1,
            json!({"childId": "c1", "minutesUsed": 30}),
        )
        .await;
    assert_eq!((s, b["alert"].as_bool()), (200, Some(false)), "{b}");
    let (s, b) = r
        .post(
            "/api/dashboard/screen-time",
            &d1,
            json!({"childId": "c1", "minutesUsed": 61}),
        )
        .await;
    assert_eq!((s, b["alert"].as_bool()), (200, Some(true)));
    for ws in [&mut ws1, &mut ws2] {
        let a = ws.expect("screentime:alert").await;
        assert_eq!(
            a,
            json!({"childId": "c1", "childName": "Child c1", "minutesUsed": 61, "limit": 60})
        );
        let n = ws.expect("notification:new").await;
        assert_eq!(n["type"], "SCREEN_TIME_LIMIT");
    }
    let (_, b) = r
        .post(
            "/api/dashboard/screen-time",
            SERVER_KEY,
            json!({"childId": "c1", "minutesUsed": 70}),
        )
        .await;
    assert_eq!(b["alert"], false);
    assert_eq!(
        r.post(
            "/api/dashboard/screen-time",
            &d1,
            json!({"childId": "c2", "minutesUsed": 99})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        r.post(
            "/api/dashboard/screen-time",
            &parent("p1"),
            json!({"childId": "c1", "minutesUsed": 99})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        r.post(
            "/api/dashboard/screen-time",
            &d1,
            json!({"childId": "c1", "minutesUsed": -5})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        r.post("/api/dashboard/screen-time", &d1, json!({"childId": "c1"}))
            .await
            .0,
        400
    );
    drop((ws1, ws2));
    let r = r.restart().await;
    let (_, b) = r
        .post(
            "/api/dashboard/screen-time",
            &d1,
            json!({"childId": "c1", "minutesUsed": 80}),
        )
        .await;
    assert_eq!(b["alert"], false, "a restart does not alert again");
    let (_, n) = r.get("/api/dashboard/notifications", &parent("p1")).await;
    let alerts = n["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "SCREEN_TIME_LIMIT")
        .count();
    assert_eq!(alerts, 1);
    r.stop().await;
}

#[tokio::test]
async fn publish_reaches_rooms() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (_, d1) = r.device("c1").await;
    let (mut p1, _) = Ws::ready(&r, &parent("p1")).await;
    let (mut adm, _) = Ws::ready(&r, &admin("a1")).await;
    let (mut dev, _) = Ws::ready(&r, &d1).await;
    let (s, _) = r
        .post(
            "/api/publish",
            SERVER_KEY,
            json!({"room": "user:p1", "event": "custom:hello", "data": {"x": 1}}),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(p1.expect("custom:hello").await, json!({"x": 1}));
    r.post(
        "/api/publish",
        SERVER_KEY,
        json!({"room": "child:c1", "event": "video:reload", "data": "now"}),
    )
    .await;
    assert_eq!(dev.expect("video:reload").await, json!("now"));
    r.post(
        "/api/publish",
        SERVER_KEY,
        json!({"room": "admins", "event": "maintenance", "data": {}}),
    )
    .await;
    adm.expect("maintenance").await;
    p1.expect_none("maintenance", Duration::from_millis(300))
        .await;
    for body in [
        json!({"room": "everyone", "event": "x"}),
        json!({"room": "user:", "event": "x"}),
        json!({"room": "user:p1", "event": "ready"}),
        json!({"room": "user:p1", "event": "has space"}),
        json!({"room": "user:p1"}),
    ] {
        assert_eq!(
            r.post("/api/publish", SERVER_KEY, body.clone()).await.0,
            400,
            "{body}"
        );
    }
    assert_eq!(
        r.post(
            "/api/publish",
            &parent("p1"),
            json!({"room": "admins", "event": "x"})
        )
        .await
        .0,
        403
    );
    r.stop().await;
}

#[tokio::test]
async fn pairing_flow_and_its_limits() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    r.child("c2", &["p2"]).await;
    let p1 = parent("p1");
    let (mut pws, _) = Ws::ready(&r, &p1).await;
    let (s, b) = r
        .req(
            "POST",
            "/api/pairing",
            None,
            Some(json!({"deviceName": "Mia's phone"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (pid, code, secret) = (
        b["pairingId"].as_str().unwrap().to_string(),
        b["code"].as_str().unwrap().to_string(),
        b["secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(code.len(), 9);
    // The device waits: still pending.
    let (s, b) = r.get(&format!("/api/pairing/{pid}?wait=0"), &secret).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("PENDING")));
    assert_eq!(
        r.get(&format!("/api/pairing/{pid}"), "wrong-secret")
            .await
            .0,
        401
    );
    // Wrong codes are 404, malformed ones 400.
    assert_eq!(
        r.post("/api/pairing/claim", &p1, json!({"code": "AAAA-AAAA"}))
            .await
            .0,
        404
    );
    assert_eq!(
        r.post("/api/pairing/claim", &p1, json!({"code": "short"}))
            .await
            .0,
        400
    );
    // The parent claims it (case and dash do not matter) and is notified.
    let (s, b) = r
        .post(
            "/api/pairing/claim",
            &p1,
            json!({"code": code.to_lowercase().replace('-', "")}),
        )
        .await;
    assert_eq!(
        (s, b["pairing"]["status"].as_str()),
        (200, Some("CLAIMED")),
        "{b}"
    );
    let n = pws.expect("notification:new").await;
    assert_eq!(
        (n["type"].as_str(), n["metadata"]["pairingId"].as_str()),
        (Some("DEVICE_PAIRING"), Some(pid.as_str()))
    );
    // Another parent cannot take it; the claimer cannot approve it for someone else's child.
    assert_eq!(
        r.post("/api/pairing/claim", &parent("p2"), json!({"code": code}))
            .await
            .0,
        409
    );
    assert_eq!(
        r.post(
            &format!("/api/pairing/{pid}/approve"),
            &parent("p2"),
            json!({"childId": "c2"})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        r.post(
            &format!("/api/pairing/{pid}/approve"),
            &p1,
            json!({"childId": "c2"})
        )
        .await
        .0,
        403
    );
    // A device long-polling receives its token as soon as it is approved.
    let waiter = {
        let url = format!("{}/api/pairing/{pid}?wait=10", r.base);
        let secret = secret.clone();
        let http = r.http.clone();
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(secret).send().await.unwrap();
            resp.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, b) = r
        .post(
            &format!("/api/pairing/{pid}/approve"),
            &p1,
            json!({"childId": "c1"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["status"], "APPROVED");
    assert_eq!(got["childId"], "c1");
    let token = got["token"].as_str().unwrap();
    let (_, ready) = Ws::ready(&r, token).await;
    assert_eq!(ready["deviceId"], b["deviceId"]);
    // Pairing requests are rate limited per address (10 per minute).
    let mut limited = false;
    for _ in 0..11 {
        if r.req("POST", "/api/pairing", None, None).await.0 == 429 {
            limited = true;
        }
    }
    assert!(limited, "the 11th pairing request from one address is 429");
    // Entered codes are limited per parent.
    let p3 = parent("p3");
    let mut statuses = vec![];
    for _ in 0..11 {
        statuses.push(
            r.post("/api/pairing/claim", &p3, json!({"code": "BBBB-BBBB"}))
                .await
                .0,
        );
    }
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 10);
    assert_eq!(*statuses.last().unwrap(), 429);
    r.stop().await;
}

#[tokio::test]
async fn revoked_devices_are_refused_everywhere() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    r.child("c2", &["p2"]).await;
    let (d1_id, d1) = r.device("c1").await;
    let p1 = parent("p1");
    let cmd = r.command(&p1, "c1", "PAUSE").await;
    let (mut ws, _) = Ws::ready(&r, &d1).await;
    ws.expect("command:new").await;
    assert_eq!(
        r.req(
            "DELETE",
            &format!("/api/devices/{d1_id}"),
            Some(&parent("p2")),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        r.req("DELETE", &format!("/api/devices/{d1_id}"), Some(&d1), None)
            .await
            .0,
        403
    );
    let (s, b) = r
        .req("DELETE", &format!("/api/devices/{d1_id}"), Some(&p1), None)
        .await;
    assert_eq!((s, b["revoked"].as_bool()), (200, Some(true)));
    assert_eq!(ws.expect_close(Duration::from_secs(5)).await, Some(4403));
    let (s, b) = r.ack(&d1, cmd["id"].as_str().unwrap(), "EXECUTED").await;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    assert_eq!(r.get("/api/devices/me/commands", &d1).await.0, 401);
    let mut again = Ws::open(&r, &d1, None).await;
    assert_eq!(again.expect_close(Duration::from_secs(5)).await, Some(4403));
    assert_eq!(
        r.req(
            "DELETE",
            &format!("/api/devices/{d1_id}"),
            Some(SERVER_KEY),
            None
        )
        .await
        .0,
        200,
        "idempotent"
    );
    assert_eq!(
        r.req("DELETE", "/api/devices/unknown", Some(SERVER_KEY), None)
            .await
            .0,
        404
    );
    let (_, b) = r.get("/api/children/c1/devices", &p1).await;
    assert_eq!(b["devices"][0]["revoked"], true);
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
