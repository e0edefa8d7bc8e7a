//! Malformed and oversize bodies and frames on every body endpoint and on the socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use safestream_tests::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::{authed, close_code, families, send, ws_open, Fam};

/// Every body endpoint, with the caller that may use it.
fn body_endpoints(f: &Fam) -> Vec<(Method, String, String)> {
    let p = f.p1.jwt.clone();
    let d = f.d1.1.clone();
    let b = SERVER_KEY.to_owned();
    vec![
        (Method::PUT, "/api/children/c1".into(), p.clone()),
        (Method::POST, "/api/children/c1/devices".into(), p.clone()),
        (
            Method::POST,
            "/api/dashboard/remote-control".into(),
            p.clone(),
        ),
        (
            Method::PATCH,
            format!("/api/dashboard/remote-control/{}", f.cmd1),
            d.clone(),
        ),
        (
            Method::POST,
            "/api/dashboard/notifications".into(),
            b.clone(),
        ),
        (Method::POST, "/api/dashboard/screen-time".into(), d.clone()),
        (
            Method::POST,
            "/api/devices/me/restricted-attempts".into(),
            d,
        ),
        (Method::POST, "/api/publish".into(), b),
        (Method::POST, "/api/pairing".into(), String::new()),
        (Method::POST, "/api/pairing/claim".into(), p.clone()),
        (
            Method::POST,
            format!("/api/pairing/{}/approve", f.pairing.0),
            p,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversize_bodies_and_frames() {
    bounded(Duration::from_secs(120), async {
        let f = families(vec![]).await?;
        let client = f.relay.http_client(Duration::from_secs(10));
        let nested = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
        let bodies: Vec<(&str, String, u16)> = vec![
            ("not JSON", "{\"a\":".into(), 400),
            ("array", "[1,2,3]".into(), 400),
            ("string", "\"x\"".into(), 400),
            ("number", "1e400".into(), 400),
            ("wrong types", r#"{"name":5,"childId":[],"commandType":{},"status":7,"code":false,"userId":null,"minutesUsed":"x","room":1,"event":2,"title":[],"deviceName":{}}"#.into(), 400),
            ("deep nesting", nested, 400),
            ("invalid utf-8", "{\"name\":\"\u{fffd}\"}".replace('\u{fffd}', "\\udc00"), 400),
            ("over 64 KiB", format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024)), 413),
        ];
        let mut failures = vec![];
        let mut checked = 0;
        for (m, path, cred) in body_endpoints(&f) {
            for (name, body, want) in &bodies {
                let mut req = client
                    .request(m.clone(), format!("{}{}", f.relay.http(), path))
                    .header("content-type", "application/json")
                    .body(body.clone());
                if !cred.is_empty() {
                    req = req.bearer_auth(&cred);
                }
                checked += 1;
                let r = match req.send().await {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!("{m} {path} {name}: transport error {e:?}"));
                        continue;
                    }
                };
                let got = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                // The pairing creation ignores nothing but may be rate limited (10/min).
                let ok = got == *want
                    || (path == "/api/pairing" && got == 429)
                    || (path == "/api/pairing/claim" && got == 429);
                if !ok || v["error"]["code"].as_str().is_none() {
                    failures.push(format!("{m} {path} {name}: {got} {v}, want {want}"));
                }
            }
            // A non-JSON content type is 415.
            let mut req = client
                .request(m.clone(), format!("{}{}", f.relay.http(), path))
                .header("content-type", "text/plain")
                .body("{}");
            if !cred.is_empty() {
                req = req.bearer_auth(&cred);
            }
            let got = req.send().await.map_err(|e| e.to_string())?.status().as_u16();
            checked += 1;
            if got != 415 && !(got == 429 && path.starts_with("/api/pairing")) {
                failures.push(format!("{m} {path} text/plain: {got}, want 415"));
            }
        }
        // The relay still answers and nothing changed.
        let c = f.p1.get_command(&f.cmd1).await?;
        if c["status"] != "PENDING" {
            failures.push(format!("command changed by malformed acks: {c}"));
        }

        // Frames: malformed and unexpected data for every client frame type, as a parent and
        // as a device: each answered by `error`, the socket stays open.
        let shapes = [
            json!(null), json!(1), json!("x"), json!([]), json!({"token": 5}),
            json!({"activeViewing": "yes"}), json!({"currentVideo": 5}),
            json!({"currentVideo": "x".repeat(3000)}), json!({"intervalSec": -1}),
            json!({"intervalSec": 1e10}), json!({"intervalSec": "30"}),
        ];
        let mut marker = 0u64;
        for token in [&f.p1.jwt, &f.d1.1] {
            let is_device = token == &f.d1.1;
            for ev in ["auth:refresh", "device:status", "heartbeat", "bogus", ""] {
                // A fresh socket per event: 50 bad frames close a socket (4400).
                let mut ws = authed(&f.relay, token).await?;
                let mut frames: Vec<(String, bool)> = shapes
                    .iter()
                    .map(|data| {
                        // A device's device:status with every field absent or ignored is
                        // valid (defaults); everything else here must be refused.
                        let valid = is_device
                            && ev == "device:status"
                            && (data.is_null()
                                || (data.is_object()
                                    && data.get("activeViewing").is_none()
                                    && data.get("currentVideo").is_none()));
                        (json!({"event": ev, "data": data}).to_string(), !valid)
                    })
                    .collect();
                for raw in ["{", "[]", "null", "{\"event\":5}", "{\"data\":{}}", "\u{0}"] {
                    frames.push((raw.to_owned(), true));
                }
                for (text, refused) in frames {
                    // Two frames a case, 20 a second: under the per-socket (20/s, burst 40)
                    // and per-user (50/s) frame limits, which are tested apart.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    marker += 1;
                    checked += 1;
                    ws.send(Message::Text(text.clone().into()))
                        .await
                        .map_err(|e| e.to_string())?;
                    send(&mut ws, json!({"event": "ping", "data": marker})).await?;
                    // Everything up to the pong with our marker answers our frame.
                    let mut error = None;
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    let outcome = loop {
                        match tokio::time::timeout_at(deadline, ws.next()).await {
                            Err(_) => break "no pong".to_owned(),
                            Ok(Some(Ok(Message::Text(t)))) => {
                                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                                if v["event"] == "error" {
                                    error = v["data"]["code"].as_str().map(str::to_owned);
                                } else if v["event"] == "pong" && v["data"] == marker {
                                    break "pong".to_owned();
                                }
                            }
                            Ok(Some(Ok(Message::Close(c)))) => break format!("close {c:?}"),
                            Ok(Some(Ok(_))) => {}
                            Ok(_) => break "connection lost".to_owned(),
                        }
                    };
                    let want_code = if !is_device && ev == "device:status" && text.starts_with('{') && text.contains("\"event\":\"device:status\"") {
                        "forbidden"
                    } else {
                        "bad_frame"
                    };
                    let ok = outcome == "pong"
                        && match (&error, refused) {
                            (None, false) => true,
                            (Some(c), true) => c == want_code || (ev == "auth:refresh" && c == "unauthorized"),
                            _ => false,
                        };
                    if !ok {
                        let who = if is_device { "device" } else { "parent" };
                        failures.push(format!(
                            "{who} frame {text:.80}: {outcome}, error {error:?}, want {}",
                            if refused { want_code } else { "no error" }
                        ));
                    }
                }
            }
        }
        // Oversize frame: 1009.
        let mut ws = authed(&f.relay, &f.p1.jwt).await?;
        send(&mut ws, json!({"event": "ping", "data": "x".repeat(17 * 1024)})).await?;
        let c = close_code(&mut ws, Duration::from_secs(5)).await?;
        checked += 1;
        if c != 1009 {
            failures.push(format!("17 KiB frame: close {c}, want 1009"));
        }
        // Oversize first (auth) frame: 1009 too.
        let mut ws = ws_open(&f.relay, None).await?;
        send(&mut ws, json!({"event": "auth", "data": {"token": "x".repeat(20 * 1024)}})).await?;
        let c = close_code(&mut ws, Duration::from_secs(5)).await?;
        checked += 1;
        if c != 1009 {
            failures.push(format!("20 KiB auth frame: close {c}, want 1009"));
        }
        // Binary after auth: 4400.
        let mut ws = authed(&f.relay, &f.p1.jwt).await?;
        ws.send(Message::Binary(vec![0; 10].into())).await.map_err(|e| e.to_string())?;
        let c = close_code(&mut ws, Duration::from_secs(5)).await?;
        checked += 1;
        if c != 4400 {
            failures.push(format!("binary frame: close {c}, want 4400"));
        }
        eprintln!("abuse: malformed/oversize: {checked} cases, {} wrong", failures.len());
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    })
    .await;
}
