//! Push wake-ups end to end against local stand-ins of FCM (OAuth token endpoint + HTTP v1)
//! and APNs (HTTP/2 over TLS) (`standin.rs`): token registration and rotation, one push for a
//! burst, none while a socket delivers and acks but one when it looks open and never acks (a
//! suspended app), the coalescing window and the pull that settles it,
//! invalid tokens dropped, a provider down then up, revocation.
//!
//! `cargo test -p relay --test push` (SQLite; with `SAFESTREAM_TEST_DB=postgres://...` on
//! PostgreSQL). Relay SIGKILL and three nodes: `tests/tests/push.rs`.

#[path = "../common/mod.rs"]
mod common;
mod standin;

use std::time::Duration;

use common::*;
use relay::store::ONLINE_RECHECK_MS;
use serde_json::{json, Value};
use standin::{Mode, Providers, TOPIC};

const WAIT: Duration = Duration::from_secs(15);
const FCM_TOKEN: &str = "fcm-token:APA91b-standin_1";

/// A relay whose providers are the stand-ins.
async fn relay_for(p: &Providers) -> Relay {
    let flags = p.flags();
    Relay::start_with(move |c| {
        for (flag, v) in flags {
            match flag.as_str() {
                "--fcm-service-account" => c.fcm_service_account = Some(v.into()),
                "--fcm-base-url" => c.fcm_base_url = v,
                "--apns-key" => c.apns_key = Some(v.into()),
                "--apns-key-id" => c.apns_key_id = Some(v),
                "--apns-team-id" => c.apns_team_id = Some(v),
                "--apns-topic" => c.apns_topic = Some(v),
                "--apns-base-url" => c.apns_base_url = Some(v),
                "--push-ca-file" => c.push_ca_file = Some(v.into()),
                other => panic!("unknown flag {other}"),
            }
        }
    })
    .await
}

/// A child with one guardian and one device; returns (parent token, device id, device token).
async fn family(r: &Relay, child: &str) -> (String, String, String) {
    let user = format!("parent-{child}");
    r.child(child, &[&user]).await;
    let (id, token) = r.device(child).await;
    (parent(&user), id, token)
}

async fn put_token(r: &Relay, device_token: &str, body: Value) -> (u16, Value) {
    r.req(
        "PUT",
        "/api/devices/me/push-token",
        Some(device_token),
        Some(body),
    )
    .await
}

fn apns_token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[tokio::test]
async fn a_device_registers_rotates_and_deletes_its_token() {
    let r = Relay::start().await;
    let (parent_token, _, dev) = family(&r, "kid-reg").await;
    let (s, b) = r
        .req("GET", "/api/devices/me/push-token", Some(&dev), None)
        .await;
    assert_eq!(s, 404, "{b}");

    let (s, b) = put_token(&r, &dev, json!({"provider": "fcm", "token": FCM_TOKEN})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = r
        .req("GET", "/api/devices/me/push-token", Some(&dev), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        b["pushToken"],
        json!({"provider": "fcm", "token": FCM_TOKEN})
    );

    // Rotation (here to another platform's token): the new one replaces the old.
    let t = apns_token(7).to_uppercase();
    let (s, _) = put_token(
        &r,
        &dev,
        json!({"provider": "apns", "token": t, "apnsEnvironment": "sandbox"}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, b) = r
        .req("GET", "/api/devices/me/push-token", Some(&dev), None)
        .await;
    assert_eq!(
        b["pushToken"],
        json!({"provider": "apns", "token": apns_token(7), "apnsEnvironment": "sandbox"})
    );

    // Bad input: 400 with a message, and nothing changes.
    for bad in [
        json!({"provider": "gcm", "token": "x"}),
        json!({"provider": "apns", "token": "not hex"}),
        json!({"provider": "fcm", "token": "a b"}),
        json!({"provider": "fcm", "token": "x", "apnsEnvironment": "sandbox"}),
        json!("fcm"),
    ] {
        let (s, b) = put_token(&r, &dev, bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert_eq!(b["error"]["code"], "bad_request", "{b}");
    }
    let (_, b) = r
        .req("GET", "/api/devices/me/push-token", Some(&dev), None)
        .await;
    assert_eq!(b["pushToken"]["token"], apns_token(7));

    // Only a device has a push token.
    let (s, _) = put_token(&r, &parent_token, json!({"provider": "fcm", "token": "x"})).await;
    assert_eq!(s, 403);
    let (s, _) = put_token(&r, "garbage", json!({"provider": "fcm", "token": "x"})).await;
    assert_eq!(s, 401);

    let (s, _) = r
        .req("DELETE", "/api/devices/me/push-token", Some(&dev), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = r
        .req("GET", "/api/devices/me/push-token", Some(&dev), None)
        .await;
    assert_eq!(s, 404);
    r.stop().await;
}

#[tokio::test]
async fn a_burst_of_commands_to_a_sleeping_android_phone_gives_one_push() {
    let p = Providers::start().await;
    let r = relay_for(&p).await;
    let (parent_token, _, dev) = family(&r, "kid-burst").await;
    put_token(&r, &dev, json!({"provider": "fcm", "token": FCM_TOKEN})).await;
    for kind in [
        "PAUSE",
        "LOCK_DEVICE",
        "SHOW_MESSAGE",
        "RESUME",
        "UNLOCK_DEVICE",
    ] {
        r.command(&parent_token, "kid-burst", kind).await;
    }
    let got = p.wait_delivered(FCM_TOKEN, 1, WAIT).await;
    assert_eq!(got.len(), 1, "one push: {got:?}");
    // Nothing more comes for the same burst.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(p.got().len(), 1, "{:?}", p.got());
    let g = &got[0];
    assert!(g.authorized, "a valid OAuth access token");
    assert_eq!(
        g.body,
        json!({"message": {"token": FCM_TOKEN, "data": {"safestream": "sync"},
                           "android": {"priority": "high"}}}),
        "a data-only high-priority message with no command content"
    );
    assert_eq!(p.oauth_tokens(), 1);

    // Another device's burst: the cached access token is reused.
    let (_, dev2) = r.device("kid-burst").await;
    put_token(&r, &dev2, json!({"provider": "fcm", "token": "fcm-second"})).await;
    r.command(&parent_token, "kid-burst", "PAUSE").await;
    assert_eq!(p.wait_delivered("fcm-second", 1, WAIT).await.len(), 1);
    assert_eq!(p.oauth_tokens(), 1, "the access token is cached");
    r.stop().await;
}

#[tokio::test]
async fn an_ios_phone_gets_a_background_push_over_http2() {
    let p = Providers::start().await;
    let r = relay_for(&p).await;
    let (parent_token, _, dev) = family(&r, "kid-ios").await;
    let token = apns_token(1);
    let (s, b) = put_token(&r, &dev, json!({"provider": "apns", "token": token})).await;
    assert_eq!(s, 200, "{b}");
    r.command(&parent_token, "kid-ios", "LOCK_DEVICE").await;
    let got = p.wait_delivered(&token, 1, WAIT).await;
    assert_eq!(got.len(), 1, "{:?}", p.got());
    let g = &got[0];
    assert!(g.http2, "APNs is spoken over HTTP/2");
    assert!(
        g.authorized,
        "an ES256 provider token with the key id and team id"
    );
    let h = |k: &str| g.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(h("apns-push-type"), "background");
    assert_eq!(h("apns-priority"), "5");
    assert_eq!(h("apns-topic"), TOPIC);
    assert_eq!(
        g.body,
        json!({"aps": {"content-available": 1}, "safestream": "sync"})
    );
    r.stop().await;
}

#[tokio::test]
async fn no_push_to_a_device_whose_socket_delivers_and_acks() {
    let p = Providers::start().await;
    let r = relay_for(&p).await;
    let (parent_token, _, dev) = family(&r, "kid-online").await;
    put_token(&r, &dev, json!({"provider": "fcm", "token": FCM_TOKEN})).await;
    let (mut ws, _) = Ws::ready(&r, &dev).await;
    let cmd = r.command(&parent_token, "kid-online", "PAUSE").await;
    let got = ws.expect("command:new").await;
    assert_eq!(got["id"], cmd["id"]);
    let (s, b) = r.ack(&dev, cmd["id"].as_str().unwrap(), "EXECUTED").await;
    assert_eq!(s, 200, "{b}");
    // The wake-up found the socket open and was put off; when it is looked at again
    // nothing waits, and it goes without a push.
    tokio::time::sleep(Duration::from_millis(ONLINE_RECHECK_MS as u64 + 1500)).await;
    assert!(
        p.got().is_empty(),
        "no push to a device that got and acked its command: {:?}",
        p.got()
    );
    let store = &r.running.as_ref().unwrap().app.store;
    assert_eq!(store.push_backlog().await.unwrap(), 0);

    // The socket closes: the next command wakes the phone.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.command(&parent_token, "kid-online", "RESUME").await;
    assert_eq!(p.wait_delivered(FCM_TOKEN, 1, WAIT).await.len(), 1);
    r.stop().await;
}

/// A child sends the app to the background: the platform suspends it, its socket stays
/// "online" at the relay for minutes (two of its slow background heartbeats) but nothing
/// reads it. A LOCK sent then must still wake the phone.
#[tokio::test]
async fn a_socket_that_looks_open_but_never_acks_still_gets_the_push() {
    let p = Providers::start().await;
    let r = relay_for(&p).await;
    let (parent_token, _, dev) = family(&r, "kid-suspended").await;
    put_token(&r, &dev, json!({"provider": "fcm", "token": FCM_TOKEN})).await;
    let (ws, _) = Ws::ready(&r, &dev).await;
    let t0 = std::time::Instant::now();
    r.command(&parent_token, "kid-suspended", "LOCK_DEVICE")
        .await;
    let got = p
        .wait_delivered(
            FCM_TOKEN,
            1,
            Duration::from_millis(ONLINE_RECHECK_MS as u64) + WAIT,
        )
        .await;
    assert_eq!(got.len(), 1, "the suspended phone is woken: {:?}", p.got());
    assert!(
        t0.elapsed() >= Duration::from_millis(ONLINE_RECHECK_MS as u64 - 500),
        "put off once while the socket looked open: {:?}",
        t0.elapsed()
    );
    drop(ws);
    r.stop().await;
}

#[tokio::test]
async fn one_push_per_window_and_a_pull_settles_it() {
    let p = Providers::start().await;
    let r = relay_for(&p).await;
    let (parent_token, _, dev) = family(&r, "kid-window").await;
    put_token(&r, &dev, json!({"provider": "fcm", "token": FCM_TOKEN})).await;
    r.command(&parent_token, "kid-window", "PAUSE").await;
    let first = p.wait_delivered(FCM_TOKEN, 1, WAIT).await;
    assert_eq!(first.len(), 1);
    let t0 = std::time::Instant::now();
    // The phone has not pulled: a command inside the window waits for its end.
    r.command(&parent_token, "kid-window", "RESUME").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(p.got().len(), 1, "still one push inside the window");
    let second = p.wait_delivered(FCM_TOKEN, 2, WAIT).await;
    assert_eq!(second.len(), 2, "the window ends with a second push");
    assert!(t0.elapsed() >= Duration::from_secs(8), "{:?}", t0.elapsed());

    // The phone pulls: its wake-up is settled, and the next command pushes at once.
    let (s, b) = r.get("/api/devices/me/commands", &dev).await;
    assert_eq!(s, 200);
    assert_eq!(b["commands"].as_array().unwrap().len(), 2, "{b}");
    let t1 = std::time::Instant::now();
    r.command(&parent_token, "kid-window", "LOCK_DEVICE").await;
    assert_eq!(p.wait_delivered(FCM_TOKEN, 3, WAIT).await.len(), 3);
    assert!(t1.elapsed() < Duration::from_secs(5), "{:?}", t1.elapsed());
    r.stop().await;
}

#[tokio::test]
async fn a_token_the_provider_refuses_is_dropped() {
    let p = Providers::start().await;
    p.set_mode(Mode::Unregistered);
    let r = relay_for(&p).await;
    let (parent_token, _, dev) = family(&r, "kid-gone").await;
    let (_, ios) = r.device("kid-gone").await;
    put_token(&r, &dev, json!({"provider": "fcm", "token": FCM_TOKEN})).await;
    put_token(
        &r,
        &ios,
        json!({"provider": "apns", "token": apns_token(9)}),
    )
    .await;
    r.command(&parent_token, "kid-gone", "PAUSE").await;
    for (who, token) in [(&dev, FCM_TOKEN.to_string()), (&ios, apns_token(9))] {
        let got = p.wait_any(&token, WAIT).await;
        assert_eq!(got.len(), 1, "{got:?}");
        let end = tokio::time::Instant::now() + WAIT;
        loop {
            let (s, _) = r
                .req("GET", "/api/devices/me/push-token", Some(who), None)
                .await;
            if s == 404 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "the token of {token} is still there"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(p.got().iter().filter(|g| g.status == 410).count(), 1);
    assert_eq!(p.got().iter().filter(|g| g.status == 404).count(), 1);
    // Nothing is sent to a dropped token again.
    p.set_mode(Mode::Ok);
    r.command(&parent_token, "kid-gone", "RESUME").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(p.got().len(), 2, "{:?}", p.got());
    let metrics = r
        .http
        .get(format!("{}/metrics", r.base))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("safestream_push_tokens_dropped_total") && !l.ends_with(" 0")),
        "{text}"
    );
    r.stop().await;
}

#[tokio::test]
async fn a_provider_down_then_up_gets_the_push_in_the_end() {
    let p = Providers::start().await;
    p.set_mode(Mode::Down);
    let r = relay_for(&p).await;
    let (parent_token, _, dev) = family(&r, "kid-down").await;
    put_token(&r, &dev, json!({"provider": "fcm", "token": FCM_TOKEN})).await;
    let c = r.command(&parent_token, "kid-down", "LOCK_DEVICE").await;
    assert_eq!(
        c["status"], "PENDING",
        "the command is created whatever the provider does"
    );
    let failed = p.wait_any(FCM_TOKEN, WAIT).await;
    assert_eq!(failed[0].status, 503);
    p.set_mode(Mode::Ok);
    let got = p.wait_delivered(FCM_TOKEN, 1, WAIT).await;
    assert_eq!(got.len(), 1, "{:?}", p.got());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(p.delivered_to(FCM_TOKEN).len(), 1, "delivered once");
    r.stop().await;
}

#[tokio::test]
async fn a_revoked_device_loses_its_token() {
    let p = Providers::start().await;
    let r = relay_for(&p).await;
    let (parent_token, dev_id, dev) = family(&r, "kid-revoked").await;
    put_token(&r, &dev, json!({"provider": "fcm", "token": FCM_TOKEN})).await;
    let (s, _) = r
        .req(
            "DELETE",
            &format!("/api/devices/{dev_id}"),
            Some(SERVER_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200);
    r.command(&parent_token, "kid-revoked", "PAUSE").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(p.got().is_empty(), "{:?}", p.got());
    r.stop().await;
}

#[tokio::test]
async fn without_credentials_push_is_off_and_commands_work() {
    let r = Relay::start().await;
    let (parent_token, _, dev) = family(&r, "kid-off").await;
    put_token(&r, &dev, json!({"provider": "fcm", "token": FCM_TOKEN})).await;
    r.command(&parent_token, "kid-off", "PAUSE").await;
    let store = &r.running.as_ref().unwrap().app.store;
    assert!(!store.push_on());
    assert_eq!(store.push_backlog().await.unwrap(), 0, "no wake-up rows");
    r.stop().await;
}
