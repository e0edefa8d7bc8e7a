//! The socket matrix: every frame type against every actor and bad credential.

use std::time::Duration;

use futures_util::SinkExt;
use safestream_tests::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::{authed, bad_credentials, close_code, families, next_event_or_close, send, ws_open};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_matrix_every_frame_type_and_actor() {
    bounded(Duration::from_secs(120), async {
        let f = families(vec![]).await?;
        let other = Relay::start().await?;
        Backend::new(&other).child("c1", "u1").await?;
        let (_, foreign) = Backend::new(&other).device("c1", "x").await?;
        drop(other);
        let mut failures = vec![];
        let mut checked = 0;
        let mut expect = |what: String, got: String, want: String| {
            checked += 1;
            if got != want {
                failures.push(format!("{what}: got {got}, want {want}"));
            }
        };
        // auth frame and upgrade bearer with every refused credential.
        let mut creds: Vec<(String, String, u16)> = bad_credentials(&foreign, &f.revoked.1)
            .into_iter()
            .map(|(n, c)| {
                let want = if n == "revoked-device" { 4403 } else { 4401 };
                (n.to_owned(), c, want)
            })
            .collect();
        creds.push(("server-key".into(), SERVER_KEY.into(), 4401));
        creds.push(("empty".into(), String::new(), 4401));
        for (name, c, want) in &creds {
            let mut ws = ws_open(&f.relay, None).await?;
            send(&mut ws, json!({"event": "auth", "data": {"token": c}})).await?;
            let got = close_code(&mut ws, Duration::from_secs(10)).await?;
            expect(
                format!("auth frame as {name}"),
                got.to_string(),
                want.to_string(),
            );
            if !c.is_empty() {
                let got = match ws_open(&f.relay, Some(c)).await {
                    Ok(mut ws) => close_code(&mut ws, Duration::from_secs(10))
                        .await?
                        .to_string(),
                    Err(e) => e,
                };
                expect(format!("upgrade bearer as {name}"), got, want.to_string());
            }
        }
        // A first frame that is not auth: every other frame type.
        for ev in [
            "auth:refresh",
            "device:status",
            "heartbeat",
            "ping",
            "command:new",
            "ready",
        ] {
            let mut ws = ws_open(&f.relay, None).await?;
            send(&mut ws, json!({"event": ev, "data": {"token": f.p1.jwt}})).await?;
            let got = close_code(&mut ws, Duration::from_secs(10)).await?;
            expect(format!("first frame {ev}"), got.to_string(), "4401".into());
        }
        // A binary first frame.
        let mut ws = ws_open(&f.relay, None).await?;
        ws.send(Message::Binary(vec![1, 2, 3].into()))
            .await
            .map_err(|e| e.to_string())?;
        expect(
            "binary first frame".into(),
            close_code(&mut ws, Duration::from_secs(10))
                .await?
                .to_string(),
            "4400".into(),
        );

        // After auth: device:status from a parent is `forbidden`, socket stays open.
        let mut ws = authed(&f.relay, &f.p1.jwt).await?;
        send(
            &mut ws,
            json!({"event": "device:status", "data": {"activeViewing": true}}),
        )
        .await?;
        let got = next_event_or_close(&mut ws, "error", Duration::from_secs(5)).await?;
        expect(
            "parent device:status".into(),
            format!("{:?}", got.map(|d| d["code"].clone())),
            "Ok(String(\"forbidden\"))".into(),
        );
        // auth again: bad_frame.
        send(
            &mut ws,
            json!({"event": "auth", "data": {"token": f.p1.jwt}}),
        )
        .await?;
        let got = next_event_or_close(&mut ws, "error", Duration::from_secs(5)).await?;
        expect(
            "second auth".into(),
            format!("{:?}", got.map(|d| d["code"].clone())),
            "Ok(String(\"bad_frame\"))".into(),
        );
        // auth:refresh with every bad credential: `unauthorized`, socket stays.
        for (name, c, _) in &creds {
            if name == "server-key" || name == "revoked-device" || c.is_empty() {
                continue;
            }
            send(
                &mut ws,
                json!({"event": "auth:refresh", "data": {"token": c}}),
            )
            .await?;
            let got = next_event_or_close(&mut ws, "error", Duration::from_secs(5)).await?;
            expect(
                format!("parent refresh with {name}"),
                format!("{:?}", got.map(|d| d["code"].clone())),
                "Ok(String(\"unauthorized\"))".into(),
            );
        }
        send(&mut ws, json!({"event": "ping", "data": 7})).await?;
        let got = next_event_or_close(&mut ws, "pong", Duration::from_secs(5)).await?;
        expect(
            "still open after refused refreshes".into(),
            format!("{got:?}"),
            "Ok(Number(7))".into(),
        );
        // auth:refresh naming another identity: 4403 (parent->other parent, parent->device,
        // device->other device, device->parent).
        for (who, new, label) in [
            (f.p1.jwt.clone(), f.p2.jwt.clone(), "parent u1 -> parent u2"),
            (f.p1.jwt.clone(), f.d1.1.clone(), "parent u1 -> device d1"),
            (
                f.d1.1.clone(),
                f.d2.1.clone(),
                "device d1 -> device d2 (other family)",
            ),
            (
                f.d1.1.clone(),
                f.d1b.1.clone(),
                "device d1 -> device d1b (same child)",
            ),
            (f.d1.1.clone(), f.p1.jwt.clone(), "device d1 -> parent u1"),
        ] {
            let mut ws = authed(&f.relay, &who).await?;
            send(
                &mut ws,
                json!({"event": "auth:refresh", "data": {"token": new}}),
            )
            .await?;
            let got = close_code(&mut ws, Duration::from_secs(5)).await?;
            expect(format!("refresh {label}"), got.to_string(), "4403".into());
        }
        // Revoking a device closes its open socket with 4403; the token is refused after.
        let d = f.backend.device("c1", "to-revoke").await?;
        let mut ws = authed(&f.relay, &d.1).await?;
        f.backend.revoke(&d.0).await?;
        expect(
            "revoked while open".into(),
            close_code(&mut ws, Duration::from_secs(5))
                .await?
                .to_string(),
            "4403".into(),
        );
        eprintln!(
            "abuse: socket matrix: {checked} refused frames checked, {} wrong",
            failures.len()
        );
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    })
    .await;
}
