//! Token validation: issuer, audience, `alg: none` and HS/RS key confusion on an RS256
//! relay.

use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use safestream_tests::*;
use serde_json::{json, Value};

use crate::{alg_none, close_code, hs, now, send, ws_open};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_audience_and_hs_rs_confusion() {
    bounded(Duration::from_secs(120), async {
        // An RS256 relay with iss/aud configured; its public key is public.
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        for args in [
            vec!["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key.pem"],
            vec!["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"],
        ] {
            let ok = std::process::Command::new("openssl")
                .args(&args)
                .current_dir(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Err(format!("openssl {args:?} failed (is the openssl CLI installed?)"));
            }
        }
        let key = std::fs::read(dir.path().join("key.pem")).map_err(|e| e.to_string())?;
        let public = std::fs::read(dir.path().join("pub.pem")).map_err(|e| e.to_string())?;
        let pub_path = dir.path().join("pub.pem").to_string_lossy().into_owned();
        let relay = Relay::start_with(vec![
            ("SAFESTREAM_JWT_ALG", "RS256"),
            ("SAFESTREAM_JWT_PUBLIC_KEY", &pub_path),
            ("SAFESTREAM_JWT_ISSUER", "https://app.example"),
            ("SAFESTREAM_JWT_AUDIENCE", "safestream"),
        ])
        .await?;
        let rs = |claims: Value| {
            EncodingKey::from_rsa_pem(&key)
                .map(|k| encode(&Header::new(Algorithm::RS256), &claims, &k).unwrap_or_default())
                .unwrap_or_default()
        };
        let good = json!({"sub": "u1", "exp": now() + 3600, "iss": "https://app.example", "aud": "safestream"});
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            c
        };
        let cases: Vec<(&str, String, u16)> = vec![
            ("valid RS256", rs(good.clone()), 200),
            ("wrong iss", rs(with("iss", json!("https://evil.example"))), 401),
            ("wrong aud", rs(with("aud", json!("other"))), 401),
            ("no iss", rs(json!({"sub": "u1", "exp": now() + 3600, "aud": "safestream"})), 401),
            ("no aud", rs(json!({"sub": "u1", "exp": now() + 3600, "iss": "https://app.example"})), 401),
            // HS/RS confusion: HS256 "signed" with the public key as the HMAC secret.
            ("HS256 with the public key", hs(good.clone(), &public), 401),
            ("HS256 with the server key", hs(good.clone(), SERVER_KEY.as_bytes()), 401),
            ("alg none", alg_none(good.clone()), 401),
            ("server key as parent", SERVER_KEY.to_owned(), 403),
        ];
        let client = relay.http_client(Duration::from_secs(10));
        let mut failures = vec![];
        for (name, tok, want) in &cases {
            let r = client
                .get(format!("{}/api/children", relay.http()))
                .bearer_auth(tok)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().as_u16() != *want {
                failures.push(format!("{name}: {} want {want}", r.status()));
            }
            if *want == 401 {
                let mut ws = ws_open(&relay, None).await?;
                send(&mut ws, json!({"event": "auth", "data": {"token": tok}})).await?;
                let c = close_code(&mut ws, Duration::from_secs(10)).await?;
                if c != 4401 {
                    failures.push(format!("socket {name}: close {c} want 4401"));
                }
            }
        }
        // The reverse: a parent JWT on a backend-only call is 403.
        let r = client
            .post(format!("{}/api/publish", relay.http()))
            .bearer_auth(rs(good.clone()))
            .json(&json!({"room": "admins", "event": "x", "data": 1}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() != 403 {
            failures.push(format!("parent JWT on /api/publish: {}", r.status()));
        }
        // On the default HS256 relay, an RS256 token is refused.
        let hs_relay = Relay::start().await?;
        let r = hs_relay
            .http_client(Duration::from_secs(10))
            .get(format!("{}/api/children", hs_relay.http()))
            .bearer_auth(rs(json!({"sub": "u1", "exp": now() + 3600})))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() != 401 {
            failures.push(format!("RS256 token on an HS256 relay: {}", r.status()));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    })
    .await;
}
