//! Notifications (post, list, page, read), screen-time alerts, restricted attempts and
//! publish to rooms.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

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
async fn restricted_attempts_notify_every_guardian() {
    let r = Relay::start().await;
    r.child("c1", &["p1", "p2"]).await;
    let (_, d1) = r.device("c1").await;
    let (mut ws, _) = Ws::ready(&r, &parent("p2")).await;
    let (s, b) = r
        .post(
            "/api/devices/me/restricted-attempts",
            &d1,
            json!({"url": "https://bad.example/v/1", "title": "Scary", "reason": "rating"}),
        )
        .await;
    assert_eq!((s, b["notified"].as_u64()), (201, Some(2)));
    let n = ws.expect("notification:new").await;
    assert_eq!(n["type"], "RESTRICTED_CONTENT");
    assert_eq!(n["metadata"]["url"], "https://bad.example/v/1");
    assert!(n["message"].as_str().unwrap().contains("Scary"));
    assert_eq!(
        r.post(
            "/api/devices/me/restricted-attempts",
            &d1,
            json!({"url": 5})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        r.post(
            "/api/devices/me/restricted-attempts",
            &parent("p1"),
            json!({})
        )
        .await
        .0,
        403
    );
    r.stop().await;
}
