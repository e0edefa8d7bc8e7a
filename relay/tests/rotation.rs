//! Device token rotation (docs/protocol.md, "Device token rotation"): the generation rules,
//! who may start a rotation, and the relay starting one for a token past its maximum age.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

fn rotate_path(device_id: &str) -> String {
    format!("/api/devices/{device_id}/rotate-token")
}

async fn rotate(r: &Relay, device_id: &str, caller: &str) -> (u16, Value) {
    r.req("POST", &rotate_path(device_id), Some(caller), None)
        .await
}

/// Status of a REST call made with a device token.
async fn rest_status(r: &Relay, token: &str) -> u16 {
    r.get("/api/devices/me/commands", token).await.0
}

/// The generation claim of a device token (0 when absent).
fn gen_of(token: &str) -> i64 {
    use base64::Engine;
    let body = token.split('.').nth(1).unwrap();
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap(),
    )
    .unwrap();
    v["gen"].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn guardian_rotation_reaches_open_sockets_and_first_use_promotes() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (dev, tok0) = r.device("c1").await;
    let p1 = parent("p1");
    let (mut a, _) = Ws::ready(&r, &tok0).await;
    // A second socket with the same token (a leaked copy, say).
    let (mut b, _) = Ws::ready(&r, &tok0).await;

    let (s, body) = rotate(&r, &dev, &p1).await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["deviceId"], dev.as_str());
    assert_eq!(body["pendingGeneration"], 1);
    let tok1 = a.expect("auth:rotate").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(gen_of(&tok1), 1);
    assert_ne!(tok1, tok0);
    assert_eq!(b.expect("auth:rotate").await["token"], tok1.as_str());
    // Pending: the old token still works.
    assert_eq!(rest_status(&r, &tok0).await, 200);
    // Asking again re-sends the same pending token (never a second one).
    let (s, body) = rotate(&r, &dev, SERVER_KEY).await;
    assert_eq!((s, body["pendingGeneration"].as_i64()), (202, Some(1)));
    assert_eq!(a.expect("auth:rotate").await["token"], tok1.as_str());

    // The device switches: its first use of the new token promotes it.
    a.send(json!({"event": "auth:refresh", "data": {"token": tok1}}))
        .await;
    let refreshed = a.expect("auth:refreshed").await;
    assert!(refreshed["expiresAt"].is_null(), "{refreshed}");
    // The other socket still on the old generation is closed 4401.
    assert_eq!(b.expect_close(WAIT).await, Some(4401));
    // The old token is refused everywhere from now on; the new one works.
    assert_eq!(rest_status(&r, &tok0).await, 401);
    let mut old = Ws::open(&r, &tok0, None).await;
    assert_eq!(old.expect_close(WAIT).await, Some(4401));
    assert_eq!(rest_status(&r, &tok1).await, 200);
    // Refreshing back to the old token is refused; the socket keeps the new one.
    a.send(json!({"event": "auth:refresh", "data": {"token": tok0}}))
        .await;
    assert_eq!(a.expect("error").await["code"], "unauthorized");
    // The switched socket stays open and still gets commands.
    let cmd = r.command(&p1, "c1", "PAUSE").await;
    let got = a.expect("command:new").await;
    assert_eq!(got["id"], cmd["id"]);

    // A later rotation moves on to generation 2.
    let (s, body) = rotate(&r, &dev, &p1).await;
    assert_eq!((s, body["pendingGeneration"].as_i64()), (202, Some(2)));
    let tok2 = a.expect("auth:rotate").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(gen_of(&tok2), 2);
    r.stop().await;
}

#[tokio::test]
async fn an_offline_device_gets_the_pending_token_at_connect() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (dev, tok0) = r.device("c1").await;
    let (s, _) = rotate(&r, &dev, SERVER_KEY).await;
    assert_eq!(s, 202);
    // It connects with its old token: `ready`, then the pending token.
    let (mut a, _) = Ws::ready(&r, &tok0).await;
    let tok1 = a.expect("auth:rotate").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(gen_of(&tok1), 1);
    // The app died before switching: the next start connects with the stored new token
    // (accepted while pending, which promotes it) and is not sent another.
    let (mut b, _) = Ws::ready(&r, &tok1).await;
    assert_eq!(a.expect_close(WAIT).await, Some(4401));
    b.expect_none("auth:rotate", Duration::from_millis(500))
        .await;
    assert_eq!(rest_status(&r, &tok0).await, 401);
    assert_eq!(rest_status(&r, &tok1).await, 200);
    r.stop().await;
}

#[tokio::test]
async fn a_rest_call_with_the_pending_token_promotes_it() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (dev, tok0) = r.device("c1").await;
    let (mut a, _) = Ws::ready(&r, &tok0).await;
    assert_eq!(rotate(&r, &dev, SERVER_KEY).await.0, 202);
    let tok1 = a.expect("auth:rotate").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rest_status(&r, &tok0).await, 200, "pending: both work");
    assert_eq!(rest_status(&r, &tok1).await, 200);
    assert_eq!(a.expect_close(WAIT).await, Some(4401));
    assert_eq!(rest_status(&r, &tok0).await, 401);
    let (s, b) = r.get("/api/devices/me/commands", &tok0).await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["message"], "device token superseded", "{b}");
    r.stop().await;
}

#[tokio::test]
async fn only_guardians_and_the_backend_may_rotate() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    r.child("c2", &["p2"]).await;
    let (dev, tok0) = r.device("c1").await;
    let (other_dev, _) = r.device("c2").await;
    // No credential, a device (even its own), another family's parent.
    assert_eq!(r.req("POST", &rotate_path(&dev), None, None).await.0, 401);
    let (s, b) = rotate(&r, &dev, &tok0).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")));
    // Another family's device and an unknown one answer alike: nothing leaks.
    let (s1, b1) = rotate(&r, &dev, &parent("p2")).await;
    let (s2, b2) = rotate(&r, "no-such-device", &parent("p2")).await;
    assert_eq!((s1, s2), (404, 404));
    assert_eq!(b1, b2);
    assert_eq!(rotate(&r, "no-such-device", SERVER_KEY).await.0, 404);
    assert_eq!(rotate(&r, "bad id!", SERVER_KEY).await.0, 400);
    // Nothing was started by the refused calls: the token is still generation 0 only.
    let (mut ws, _) = Ws::ready(&r, &tok0).await;
    ws.expect_none("auth:rotate", Duration::from_millis(300))
        .await;
    drop(ws);
    // The guardian of the other child may rotate theirs.
    assert_eq!(rotate(&r, &other_dev, &parent("p2")).await.0, 202);
    // A revoked device cannot be rotated.
    assert_eq!(
        r.req(
            "DELETE",
            &format!("/api/devices/{dev}"),
            Some(SERVER_KEY),
            None
        )
        .await
        .0,
        200
    );
    let (s, b) = rotate(&r, &dev, &parent("p1")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{b}"
    );
    assert_eq!(rotate(&r, &dev, SERVER_KEY).await.0, 409);
    r.stop().await;
}

#[tokio::test]
async fn a_revoked_device_cannot_use_its_pending_token() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (dev, tok0) = r.device("c1").await;
    let (mut a, _) = Ws::ready(&r, &tok0).await;
    assert_eq!(rotate(&r, &dev, SERVER_KEY).await.0, 202);
    let tok1 = a.expect("auth:rotate").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        r.req(
            "DELETE",
            &format!("/api/devices/{dev}"),
            Some(SERVER_KEY),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(a.expect_close(WAIT).await, Some(4403));
    assert_eq!(rest_status(&r, &tok1).await, 401);
    let mut b = Ws::open(&r, &tok1, None).await;
    assert_eq!(b.expect_close(WAIT).await, Some(4403));
    r.stop().await;
}

/// Makes device `id`'s current token look `days` old (the database is the truth; the relay
/// is restarted afterwards so that its cache reads it again).
async fn age_token(r: &Relay, id: &str, days: i64) {
    let db = r.cfg.db.clone();
    let id = id.to_string();
    let shift = days * 86_400_000;
    tokio::task::spawn_blocking(move || {
        let sql =
            "UPDATE devices SET created_at = created_at - $1, token_issued_at = NULL WHERE id = $2";
        if db.starts_with("postgres") {
            let mut c = postgres::Client::connect(&db, postgres::NoTls).unwrap();
            assert_eq!(c.execute(sql, &[&shift, &id]).unwrap(), 1);
        } else {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            let sql = sql.replace('$', "?");
            assert_eq!(c.execute(&sql, rusqlite::params![shift, id]).unwrap(), 1);
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_relay_rotates_a_token_past_its_maximum_age_at_connect() {
    let r = Relay::start_with(|c| c.device_token_max_age_days = 30).await;
    r.child("c1", &["p1"]).await;
    let (young, young_tok) = r.device("c1").await;
    let (old, old_tok) = r.device("c1").await;
    age_token(&r, &old, 31).await;
    age_token(&r, &young, 29).await;
    let r = r.restart().await;
    let (mut y, _) = Ws::ready(&r, &young_tok).await;
    y.expect_none("auth:rotate", Duration::from_millis(300))
        .await;
    let (mut o, _) = Ws::ready(&r, &old_tok).await;
    let tok1 = o.expect("auth:rotate").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(gen_of(&tok1), 1);
    // Starting the rotation announced it (to the device's other sockets): this socket got
    // it once, at connect.
    o.expect_none("auth:rotate", Duration::from_millis(300))
        .await;
    o.send(json!({"event": "auth:refresh", "data": {"token": tok1}}))
        .await;
    o.expect("auth:refreshed").await;
    assert_eq!(rest_status(&r, &old_tok).await, 401);
    // The new generation is young: reconnecting with it starts nothing.
    let (mut again, _) = Ws::ready(&r, &tok1).await;
    again
        .expect_none("auth:rotate", Duration::from_millis(300))
        .await;
    r.stop().await;
}

#[tokio::test]
async fn no_rotation_at_connect_when_the_maximum_age_is_off() {
    let r = Relay::start_with(|c| c.device_token_max_age_days = 0).await;
    r.child("c1", &["p1"]).await;
    let (dev, tok) = r.device("c1").await;
    age_token(&r, &dev, 3000).await;
    let r = r.restart().await;
    let (mut ws, _) = Ws::ready(&r, &tok).await;
    ws.expect_none("auth:rotate", Duration::from_millis(300))
        .await;
    r.stop().await;
}
