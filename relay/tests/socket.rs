//! `/api/socket` over real sockets: auth, delivery, status fan-out, presence, resume, token
//! expiry and refresh, limits and malformed frames.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn bad_tokens_close_4401_and_silence_4408() {
    let r = Relay::start_with(|c| c.handshake_timeout_secs = 1).await;
    r.child("c1", &["p1"]).await;
    let bad = [
        "garbage".to_string(),
        jwt(json!({"sub": "p1", "exp": now_secs() - 5})),
        SERVER_KEY.to_string(),
        format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            "eyJzdWIiOiJwMSIsImV4cCI6OTk5OTk5OTk5OX0"
        ),
    ];
    for t in &bad {
        let mut ws = Ws::open(&r, t, None).await;
        assert_eq!(
            ws.expect_close(Duration::from_secs(3)).await,
            Some(4401),
            "token {t}"
        );
    }
    // A first frame that is not auth.
    let (inner, _) = tokio_tungstenite::connect_async(r.ws_url.as_str())
        .await
        .unwrap();
    let mut ws = Ws { inner };
    ws.send(json!({"event": "ping", "data": {}})).await;
    assert_eq!(ws.expect_close(Duration::from_secs(3)).await, Some(4401));
    // Nothing at all within the handshake timeout.
    let (inner, _) = tokio_tungstenite::connect_async(r.ws_url.as_str())
        .await
        .unwrap();
    let mut ws = Ws { inner };
    assert_eq!(ws.expect_close(Duration::from_secs(3)).await, Some(4408));
    // An Authorization header on the upgrade authenticates at once.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = r.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", parent("p1")).parse().unwrap(),
    );
    let (inner, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut ws = Ws { inner };
    let ready = ws.expect("ready").await;
    assert_eq!(
        (ready["role"].as_str(), ready["userId"].as_str()),
        (Some("parent"), Some("p1"))
    );
    r.stop().await;
}

#[tokio::test]
async fn command_round_trip_reaches_every_guardian() {
    let r = Relay::start().await;
    r.child("c1", &["p1", "p2"]).await;
    let (d1_id, d1) = r.device("c1").await;
    let (mut g1, _) = Ws::ready(&r, &parent("p1")).await;
    let (mut g2, _) = Ws::ready(&r, &parent("p2")).await;
    let (mut other, _) = Ws::ready(&r, &parent("p9")).await;
    let (mut dev, ready) = Ws::ready(&r, &d1).await;
    assert_eq!(
        (ready["deviceId"].as_str(), ready["childId"].as_str()),
        (Some(d1_id.as_str()), Some("c1"))
    );
    let cmd = r
        .post(
            "/api/dashboard/remote-control",
            &parent("p1"),
            json!({"childId": "c1", "commandType": "SHOW_MESSAGE", "payload": {"text": "dinner"}}),
        )
        .await
        .1["command"]
        .clone();
    let id = cmd["id"].as_str().unwrap();
    let got = dev.expect("command:new").await;
    assert_eq!(got["id"], id);
    assert_eq!(got["commandType"], "SHOW_MESSAGE");
    assert_eq!(got["payload"], json!({"text": "dinner"}));
    assert_eq!(got["expiresAt"], cmd["expiresAt"]);
    for g in [&mut g1, &mut g2] {
        let sent = g.expect_frame("command:sent").await;
        assert_eq!(
            (
                sent["data"]["commandId"].as_str(),
                sent["data"]["status"].as_str()
            ),
            (Some(id), Some("PENDING"))
        );
        assert!(sent["seq"].is_i64());
        let st = g.expect("command:status").await;
        assert_eq!(
            (st["status"].as_str(), st["deviceId"].as_str()),
            (Some("DELIVERED"), Some(d1_id.as_str()))
        );
    }
    assert_eq!(r.ack(&d1, id, "EXECUTED").await.0, 200);
    for g in [&mut g1, &mut g2] {
        let st = g.expect("command:status").await;
        assert_eq!(st["commandId"], id);
        assert_eq!(st["status"], "EXECUTED");
        assert_eq!(st["deviceId"], d1_id.as_str());
        assert!(st["executedAt"].is_string());
        assert!(st["error"].is_null());
    }
    other
        .expect_none("command:status", Duration::from_millis(300))
        .await;
    r.stop().await;
}

#[tokio::test]
async fn pending_commands_are_delivered_on_connect_and_targeted_ones_only_to_their_device() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (_, d1) = r.device("c1").await;
    let (d2_id, d2) = r.device("c1").await;
    let p1 = parent("p1");
    let a = r.command(&p1, "c1", "PAUSE").await;
    let b = r
        .post(
            "/api/dashboard/remote-control",
            &p1,
            json!({"childId": "c1", "commandType": "LOCK_DEVICE", "deviceId": d2_id}),
        )
        .await
        .1["command"]
        .clone();
    let short = r
        .post(
            "/api/dashboard/remote-control",
            &p1,
            json!({"childId": "c1", "commandType": "RESUME", "expiresInSeconds": 1}),
        )
        .await
        .1["command"]
        .clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut w1, _) = Ws::ready(&r, &d1).await;
    assert_eq!(w1.expect("command:new").await["id"], a["id"]);
    w1.expect_none("command:new", Duration::from_millis(400))
        .await; // not b (other device), not the expired one
    let (mut w2, _) = Ws::ready(&r, &d2).await;
    let first = w2.expect("command:new").await;
    let second = w2.expect("command:new").await;
    assert_eq!(
        (first["id"].clone(), second["id"].clone()),
        (a["id"].clone(), b["id"].clone()),
        "oldest first"
    );
    assert_ne!(second["id"], short["id"]);
    // Delivered but not acknowledged: a reconnect gets it again (at-least-once).
    drop(w1);
    let (mut w1, _) = Ws::ready(&r, &d1).await;
    assert_eq!(w1.expect("command:new").await["id"], a["id"]);
    r.stop().await;
}

#[tokio::test]
async fn presence_online_status_offline_and_vanishing() {
    let r = Relay::start_with(|c| c.heartbeat_secs = 2).await;
    r.child("c1", &["p1"]).await;
    let (d1_id, d1) = r.device("c1").await;
    let (mut p, _) = Ws::ready(&r, &parent("p1")).await;
    let (mut dev, _) = Ws::ready(&r, &d1).await;
    let on = p.expect("device:status").await;
    assert_eq!(
        (on["deviceId"].as_str(), on["online"].as_bool()),
        (Some(d1_id.as_str()), Some(true))
    );
    assert!(on["lastSeen"].is_string());
    dev.send(json!({"event": "device:status", "data": {"activeViewing": true, "currentVideo": {"id": "v1", "title": "Cats"}}}))
        .await;
    let st = p.expect("device:status").await;
    assert_eq!(
        (
            st["activeViewing"].as_bool(),
            st["currentVideo"]["id"].as_str()
        ),
        (Some(true), Some("v1"))
    );
    let (_, list) = r.get("/api/children/c1/devices", &parent("p1")).await;
    assert_eq!(
        (
            list["devices"][0]["online"].as_bool(),
            list["devices"][0]["activeViewing"].as_bool()
        ),
        (Some(true), Some(true))
    );
    dev.send(json!({"event": "device:status", "data": {"activeViewing": "yes"}}))
        .await;
    assert_eq!(dev.expect("error").await["code"], "bad_frame");
    dev.inner.close(None).await.unwrap();
    let off = p.expect("device:status").await;
    assert_eq!(
        (off["online"].as_bool(), off["activeViewing"].as_bool()),
        (Some(false), Some(false))
    );
    // A device that vanishes (stops answering pings, never closes) is offline within two
    // heartbeat intervals of its last sign of life.
    let (dev2, _) = Ws::ready(&r, &d1).await;
    p.expect("device:status").await;
    let silent_since = Instant::now();
    let off = p.expect("device:status").await; // `dev2` is never read again, so it never pongs
    let took = silent_since.elapsed();
    assert_eq!(off["online"], false);
    assert!(
        took <= Duration::from_millis(4500),
        "offline after {took:?} (heartbeat 2 s)"
    );
    drop(dev2);
    r.stop().await;
}

#[tokio::test]
async fn parent_resume_replays_missed_events_in_order() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (_, d1) = r.device("c1").await;
    let p1 = parent("p1");
    let (mut ws, ready) = Ws::ready(&r, &p1).await;
    assert_eq!(ready["resumed"], false);
    let c = r.command(&p1, "c1", "PAUSE").await;
    let last = ws.expect_frame("command:sent").await["seq"]
        .as_i64()
        .unwrap();
    drop(ws);
    // While the parent is away: an ack, a notification, a second command.
    r.ack(&d1, c["id"].as_str().unwrap(), "FAILED").await;
    r.post(
        "/api/dashboard/notifications",
        SERVER_KEY,
        json!({"userId": "p1", "type": "COMMAND_FAILED", "title": "t"}),
    )
    .await;
    r.command(&p1, "c1", "RESUME").await;
    let (mut ws, ready) = Ws::ready_from(&r, &p1, Some(last)).await;
    assert_eq!(ready["resumed"], true);
    let mut seen = vec![];
    let mut prev = last;
    for _ in 0..3 {
        let f = match ws.next(Duration::from_secs(3)).await {
            Next::Event(f) => f,
            _ => panic!("replay ended early"),
        };
        let seq = f["seq"].as_i64().expect("replayed frames carry seq");
        assert!(seq > prev, "increasing seq");
        prev = seq;
        seen.push(format!(
            "{}:{}",
            f["event"].as_str().unwrap(),
            f["data"]["status"].as_str().unwrap_or("-")
        ));
    }
    assert_eq!(
        seen,
        [
            "command:status:FAILED",
            "notification:new:-",
            "command:sent:PENDING"
        ]
    );
    ws.expect_none("command:sent", Duration::from_millis(300))
        .await;
    // Live events continue after the replay, without duplicates.
    r.post(
        "/api/dashboard/notifications",
        SERVER_KEY,
        json!({"userId": "p1", "type": "COMMAND_FAILED", "title": "live"}),
    )
    .await;
    let f = ws.expect_frame("notification:new").await;
    assert_eq!(f["data"]["title"], "live");
    assert!(f["seq"].as_i64().unwrap() > prev);
    // A position from the future, or from before the retained history: refetch.
    drop(ws);
    let (mut ws, ready) = Ws::ready_from(&r, &p1, Some(prev + 1000)).await;
    assert_eq!(ready["resumed"], false);
    assert_eq!(ws.expect("resync").await["reason"], "history_gap");
    r.stop().await;
}

#[tokio::test]
async fn resume_survives_a_relay_restart() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let p1 = parent("p1");
    let (mut ws, _) = Ws::ready(&r, &p1).await;
    r.command(&p1, "c1", "PAUSE").await;
    let last = ws.expect_frame("command:sent").await["seq"]
        .as_i64()
        .unwrap();
    drop(ws);
    r.post(
        "/api/dashboard/notifications",
        SERVER_KEY,
        json!({"userId": "p1", "type": "RESTRICTED_CONTENT", "title": "while away"}),
    )
    .await;
    let r = r.restart().await;
    let (mut ws, ready) = Ws::ready_from(&r, &p1, Some(last)).await;
    assert_eq!(ready["resumed"], true);
    assert_eq!(ws.expect("notification:new").await["title"], "while away");
    r.stop().await;
}

#[tokio::test]
async fn token_expiry_closes_the_socket_unless_refreshed() {
    let r = Relay::start_with(|c| c.heartbeat_secs = 1).await;
    let short = jwt(json!({"sub": "p1", "exp": now_secs() + 2}));
    let (mut ws, _) = Ws::ready(&r, &short).await;
    assert_eq!(ws.expect_close(Duration::from_secs(5)).await, Some(4401));
    // Refreshed before expiry: stays open past the first token's expiry.
    let short = jwt(json!({"sub": "p1", "exp": now_secs() + 2}));
    let (mut ws, _) = Ws::ready(&r, &short).await;
    ws.send(json!({"event": "auth:refresh", "data": {"token": parent("p1")}}))
        .await;
    assert!(ws.expect("auth:refreshed").await["expiresAt"].is_string());
    // Keep reading (so pings are answered) past the first token's expiry.
    ws.expect_none("error", Duration::from_millis(3500)).await;
    ws.send(json!({"event": "ping", "data": {"n": 1}})).await;
    assert_eq!(ws.expect("pong").await, json!({"n": 1}));
    // A refresh with an invalid token is refused without closing; another identity closes.
    ws.send(json!({"event": "auth:refresh", "data": {"token": "garbage"}}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "unauthorized");
    ws.send(json!({"event": "auth:refresh", "data": {"token": parent("p2")}}))
        .await;
    assert_eq!(ws.expect_close(Duration::from_secs(3)).await, Some(4403));
    r.stop().await;
}

#[tokio::test]
async fn malformed_oversize_binary_and_flooding_frames() {
    let r = Relay::start_with(|c| {
        c.frame_rate = 5;
        c.user_frame_rate = 100;
    })
    .await;
    let p1 = parent("p1");
    let (mut ws, _) = Ws::ready(&r, &p1).await;
    for bad in ["not json", "[]", "{\"data\": {}}", "{\"event\": 5}"] {
        ws.send_raw(Message::Text(bad.into())).await;
        assert_eq!(ws.expect("error").await["code"], "bad_frame", "{bad}");
    }
    ws.send(json!({"event": "launch:missiles", "data": {}}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "bad_frame");
    ws.send(json!({"event": "device:status", "data": {"activeViewing": true}}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "forbidden");
    ws.send(json!({"event": "heartbeat", "data": {"intervalSec": 5}}))
        .await;
    assert_eq!(
        ws.expect("error").await["code"],
        "bad_frame",
        "below the relay's heartbeat"
    );
    ws.send(json!({"event": "heartbeat", "data": {"intervalSec": 120}}))
        .await;
    assert_eq!(ws.expect("heartbeat").await["intervalSec"], 120);
    // Flooding: over the per-socket rate, frames are dropped, then the socket is closed.
    for i in 0..200 {
        ws.send_raw(Message::Text(
            json!({"event": "ping", "data": i}).to_string().into(),
        ))
        .await;
    }
    assert_eq!(ws.expect_close(Duration::from_secs(5)).await, Some(4429));
    // Others stay served.
    let (mut ok, _) = Ws::ready(&r, &parent("p2")).await;
    ok.send(json!({"event": "ping", "data": {}})).await;
    ok.expect("pong").await;
    // Binary frames and oversize frames close the socket.
    let (mut ws, _) = Ws::ready(&r, &p1).await;
    ws.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(ws.expect_close(Duration::from_secs(3)).await, Some(4400));
    let (mut ws, _) = Ws::ready(&r, &p1).await;
    ws.send_raw(Message::Text("x".repeat(20_000).into())).await;
    assert_eq!(ws.expect_close(Duration::from_secs(3)).await, Some(1009));
    r.stop().await;
}

#[tokio::test]
async fn connection_limits_and_origins() {
    let r = Relay::start_with(|c| {
        c.max_conn_per_user = 2;
        c.allowed_origins = vec!["https://dash.example".into()];
    })
    .await;
    let p1 = parent("p1");
    let (_a, _) = Ws::ready(&r, &p1).await;
    let (_b, _) = Ws::ready(&r, &p1).await;
    let mut c = Ws::open(&r, &p1, None).await;
    assert_eq!(c.expect_close(Duration::from_secs(3)).await, Some(4429));
    let (_d, _) = Ws::ready(&r, &parent("p2")).await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = r.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");
    let mut req = r.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "https://dash.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
    r.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_with_1001() {
    let r = Relay::start().await;
    let (mut ws, _) = Ws::ready(&r, &parent("p1")).await;
    let stopper = tokio::spawn(r.stop());
    assert_eq!(ws.expect_close(Duration::from_secs(5)).await, Some(1001));
    stopper.await.unwrap();
}

#[tokio::test]
async fn hundreds_of_pending_commands_are_all_delivered_on_connect() {
    let r = Relay::start_with(|c| c.user_request_rate = 100_000).await;
    r.child("c1", &["p1"]).await;
    let (_, d1) = r.device("c1").await;
    let p1 = parent("p1");
    let mut ids = std::collections::HashSet::new();
    for _ in 0..450 {
        ids.insert(
            r.command(&p1, "c1", "PAUSE").await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let (mut ws, _) = Ws::ready(&r, &d1).await;
    let mut got = std::collections::HashSet::new();
    while got.len() < ids.len() {
        let c = ws.expect("command:new").await;
        got.insert(c["id"].as_str().unwrap().to_string());
    }
    assert_eq!(got, ids);
    // Over HTTPS a device gets pages of 500 with `more`.
    let (_, b) = r.get("/api/devices/me/commands", &d1).await;
    assert_eq!(
        (b["commands"].as_array().unwrap().len(), b["more"].as_bool()),
        (450, Some(false))
    );
    r.stop().await;
}

#[tokio::test]
async fn malformed_frames_close_4400_after_fifty_and_plain_get_is_a_json_error() {
    let r = Relay::start().await;
    let (mut ws, _) = Ws::ready(&r, &parent("p1")).await;
    for _ in 0..60 {
        ws.send_raw(Message::Text("{]".into())).await;
        tokio::time::sleep(Duration::from_millis(60)).await; // under the rate limit
    }
    assert_eq!(ws.expect_close(Duration::from_secs(5)).await, Some(4400));
    let (s, b) = r.req("GET", "/api/socket", None, None).await;
    assert!((400..500).contains(&s), "{s}");
    assert!(b["error"]["code"].is_string(), "{b}");
    // A JWT signed with another secret is refused on the socket too.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "p1", "exp": now_secs() + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret"),
    )
    .unwrap();
    let mut ws = Ws::open(&r, &forged, None).await;
    assert_eq!(ws.expect_close(Duration::from_secs(3)).await, Some(4401));
    r.stop().await;
}

/// Hands out `n` positions of `user`'s history with no event kept for them: what a parent
/// socket sees when the events between its last position and a live one were pruned while
/// it was behind (the bus had lost them, then 24 h of retention passed).
async fn skip_positions(r: &Relay, user: &str, n: i64) {
    let running = r.running.as_ref().expect("the relay runs");
    running
        .app
        .store
        .skip_positions(user, n)
        .await
        .expect("positions skipped");
}

/// Found by the model checker (`model/src/resume.rs`, RELIABILITY.md): a live event whose
/// predecessors are no longer in the history must come after a `resync`; before the fix the
/// socket replayed nothing and sent it, and the parent skipped events without knowing.
#[tokio::test]
async fn a_live_event_after_a_gap_the_history_cannot_fill_comes_after_a_resync() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let p1 = parent("p1");
    let (mut ws, _) = Ws::ready(&r, &p1).await;
    r.command(&p1, "c1", "PAUSE").await;
    let first = ws.expect_frame("command:sent").await["seq"]
        .as_i64()
        .unwrap();
    skip_positions(&r, "p1", 3).await;
    r.command(&p1, "c1", "LOCK_DEVICE").await;
    let mut seen = Vec::new();
    loop {
        match ws.next(Duration::from_secs(5)).await {
            Next::Event(f) => {
                let done = f["event"] == "command:sent";
                seen.push(f);
                if done {
                    break;
                }
            }
            _ => panic!("no command:sent after the gap: {seen:?}"),
        }
    }
    let resync = seen
        .iter()
        .position(|f| f["event"] == "resync")
        .unwrap_or_else(|| panic!("no resync before the event after the gap: {seen:?}"));
    assert_eq!(seen[resync]["data"]["reason"], "history_gap");
    assert_eq!(seen[resync]["data"]["seq"], first + 3, "{seen:?}");
    assert_eq!(seen.last().unwrap()["seq"], first + 4, "{seen:?}");
    r.stop().await;
}
