//! The authorization matrix: every REST endpoint against every bad credential and every
//! wrong actor (A, Ep and the endpoint table live here).

use std::time::Duration;

use reqwest::Method;
use safestream_tests::*;
use serde_json::{json, Value};

use crate::{bad_credentials, families, Fam};

#[derive(Clone, Copy, PartialEq, Debug)]
enum A {
    P1,
    P2,
    D1,
    D2,
    B,
}

struct Ep {
    method: Method,
    path: String,
    body: Option<Value>,
    /// Valid actors that must be refused, with the status.
    refused: Vec<(A, u16)>,
}

fn ep(method: Method, path: &str, body: Option<Value>, refused: &[(A, u16)]) -> Ep {
    Ep {
        method,
        path: path.to_owned(),
        body,
        refused: refused.to_vec(),
    }
}

fn endpoints(f: &Fam) -> Vec<Ep> {
    use A::*;
    let cmd = json!({"childId": "c1", "commandType": "PAUSE", "payload": {}});
    let c1 = "/api/children/c1";
    let d1b = format!("/api/devices/{}", f.d1b.0);
    let cmd_path = format!("/api/dashboard/remote-control/{}", f.cmd1);
    let pairing = &f.pairing.0;
    vec![
        ep(
            Method::PUT,
            c1,
            Some(json!({"name": "x"})),
            &[(P2, 403), (D1, 403), (D2, 403)],
        ),
        ep(Method::GET, "/api/children", None, &[(B, 403), (D1, 403)]),
        ep(Method::GET, c1, None, &[(P2, 403), (D1, 403), (D2, 403)]),
        ep(
            Method::POST,
            &format!("{c1}/devices"),
            Some(json!({"name": "x"})),
            &[(P2, 403), (D1, 403), (D2, 403)],
        ),
        ep(
            Method::GET,
            &format!("{c1}/devices"),
            None,
            &[(P2, 403), (D1, 403), (D2, 403)],
        ),
        ep(
            Method::DELETE,
            &d1b,
            None,
            &[(P2, 403), (D1, 403), (D2, 403)],
        ),
        ep(
            Method::POST,
            "/api/dashboard/remote-control",
            Some(cmd),
            &[(P2, 403), (D1, 403), (D2, 403), (B, 403)],
        ),
        ep(
            Method::GET,
            "/api/dashboard/remote-control",
            None,
            &[(D1, 403), (B, 403)],
        ),
        ep(
            Method::GET,
            "/api/dashboard/remote-control?childId=c1",
            None,
            &[(P2, 403)],
        ),
        ep(
            Method::GET,
            &cmd_path,
            None,
            // The backend may read any command (protocol: B, P, D).
            &[(P2, 403), (D2, 403)],
        ),
        ep(
            Method::PATCH,
            &cmd_path,
            Some(json!({"status": "EXECUTED"})),
            &[(P1, 403), (P2, 403), (D2, 403), (B, 403)],
        ),
        ep(
            Method::GET,
            "/api/devices/me/commands",
            None,
            &[(P1, 403), (B, 403)],
        ),
        ep(
            Method::POST,
            "/api/dashboard/notifications",
            Some(json!({"userId": "u1", "type": "RESTRICTED_CONTENT", "title": "t"})),
            &[(P1, 403), (D1, 403)],
        ),
        ep(
            Method::GET,
            "/api/dashboard/notifications",
            None,
            &[(D1, 403), (B, 403)],
        ),
        ep(
            Method::POST,
            &format!("/api/dashboard/notifications/{}/read", f.notif1),
            None,
            // Another user's notification or pairing is "not visible to you" (protocol,
            // Errors: 404); 403 is for someone else's child.
            &[(P2, 404), (D1, 403), (B, 403)],
        ),
        ep(
            Method::POST,
            "/api/dashboard/screen-time",
            Some(json!({"childId": "c1", "minutesUsed": 5})),
            &[(P1, 403), (P2, 403), (D2, 403)],
        ),
        ep(
            Method::POST,
            "/api/devices/me/restricted-attempts",
            Some(json!({"url": "x"})),
            &[(P1, 403), (B, 403)],
        ),
        ep(
            Method::POST,
            "/api/publish",
            Some(json!({"room": "user:u1", "event": "x", "data": 1})),
            &[(P1, 403), (D1, 403)],
        ),
        ep(
            Method::POST,
            "/api/pairing/claim",
            Some(json!({"code": "AAAA-AAAA"})),
            &[(D1, 403), (B, 403)],
        ),
        ep(
            Method::POST,
            &format!("/api/pairing/{pairing}/approve"),
            Some(json!({"childId": "c1"})),
            &[(P2, 404), (D1, 403), (B, 403)],
        ),
        ep(
            Method::POST,
            &format!("/api/pairing/{pairing}/reject"),
            None,
            &[(P2, 404), (D1, 403), (B, 403)],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_over_every_endpoint() {
    bounded(Duration::from_secs(120), async {
        let f = families(vec![]).await?;
        // A device token signed by another relay's device key.
        let other = Relay::start().await?;
        Backend::new(&other).child("c1", "u1").await?;
        let (_, foreign) = Backend::new(&other).device("c1", "x").await?;
        drop(other);
        let cred = |a: A| match a {
            A::P1 => f.p1.jwt.clone(),
            A::P2 => f.p2.jwt.clone(),
            A::D1 => f.d1.1.clone(),
            A::D2 => f.d2.1.clone(),
            A::B => SERVER_KEY.to_owned(),
        };
        let mut failures = vec![];
        let mut checked = 0;
        for e in endpoints(&f) {
            let mut cases: Vec<(String, Option<String>, u16)> = e
                .refused
                .iter()
                .map(|(a, s)| (format!("{a:?}"), Some(cred(*a)), *s))
                .collect();
            cases.push(("no-credential".into(), None, 401));
            for (name, c) in bad_credentials(&foreign, &f.revoked.1) {
                cases.push((name.into(), Some(c), 401));
            }
            for (name, c, want) in cases {
                let mut req = f
                    .relay
                    .http_client(Duration::from_secs(10))
                    .request(e.method.clone(), format!("{}{}", f.relay.http(), e.path));
                if let Some(c) = c {
                    req = req.bearer_auth(c);
                }
                if let Some(b) = &e.body {
                    req = req.json(b);
                }
                let r = req.send().await.map_err(|x| x.to_string())?;
                let got = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                checked += 1;
                let code_ok = body["error"]["code"]
                    == match want {
                        401 => "unauthorized",
                        404 => "not_found",
                        _ => "forbidden",
                    };
                if got != want || !code_ok {
                    failures.push(format!(
                        "{} {} as {name}: {got} {body}, want {want}",
                        e.method, e.path
                    ));
                }
            }
        }
        // The device's pairing long poll takes only the pairing secret: anything else is 401.
        let poll = format!("{}/api/pairing/{}?wait=0", f.relay.http(), f.pairing.0);
        for (name, c) in [
            ("no credential", None),
            (
                "wrong secret",
                Some("0123456789abcdef0123456789abcdef".to_owned()),
            ),
            ("parent JWT", Some(f.p1.jwt.clone())),
            ("device token", Some(f.d1.1.clone())),
            ("server key", Some(SERVER_KEY.to_owned())),
        ] {
            let mut req = f.relay.http_client(Duration::from_secs(10)).get(&poll);
            if let Some(c) = c {
                req = req.bearer_auth(c);
            }
            let got = req
                .send()
                .await
                .map_err(|e| e.to_string())?
                .status()
                .as_u16();
            checked += 1;
            if got != 401 {
                failures.push(format!(
                    "GET /api/pairing/{{id}} as {name}: {got}, want 401"
                ));
            }
        }
        eprintln!(
            "abuse: authorization matrix: {checked} refused calls checked, {} wrong",
            failures.len()
        );
        // Nothing the refused calls tried happened.
        let c = f.p1.get_command(&f.cmd1).await?;
        if c["status"] != "PENDING" {
            failures.push(format!("command changed by a refused call: {c}"));
        }
        let devs = f
            .backend
            .0
            .ok(Method::GET, "/api/children/c1/devices", None)
            .await?;
        let d1b = devs["devices"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["id"] == f.d1b.0.as_str()).cloned())
            .unwrap_or(Value::Null);
        if d1b["revoked"] != false {
            failures.push(format!("device revoked by a refused call: {d1b}"));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    })
    .await;
}
