//! Cross-cutting HTTP behaviour: authentication failures (401) and wrong actors (403), body
//! limits and content types, health and metrics.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::code;
use crate::common::*;

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
async fn metrics_expose_connections_commands_and_rejects() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    let (_, d1) = r.device("c1").await;
    let (_ws, _) = Ws::ready(&r, &d1).await;
    let c = r.command(&parent("p1"), "c1", "PAUSE").await;
    assert_eq!(r.get("/api/children", "garbage").await.0, 401);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let text = loop {
        let t = r
            .http
            .get(format!("{}/metrics", r.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if t.contains("safestream_commands{status=\"DELIVERED\"} 1")
            || std::time::Instant::now() > deadline
        {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for needle in [
        "safestream_connections{role=\"device\"}",
        "safestream_commands{status=\"DELIVERED\"} 1",
        "safestream_commands_total{status=\"PENDING\"}",
        "safestream_delivery_latency_seconds_bucket",
        "safestream_rejects_total{reason=\"unauthorized\"}",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    // Counted, not only listed (the usual statuses' series exist from start-up at 0).
    let created: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("safestream_http_requests_total{status=\"201\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(created >= 1.0, "no 201 counted:\n{text}");
    let _ = c;
    r.stop().await;
}

/// A dashboard on an allowed origin may call the API from a browser: the preflight is
/// answered, and every response (an error, a 404 and a 405 included) carries the CORS
/// header for that origin; another origin gets none.
#[tokio::test]
async fn cors_answers_allowed_origins_on_every_response() {
    let dash = "https://dash.example";
    let r = Relay::start_with(|c| c.allowed_origins = vec![dash.to_string()]).await;
    let send = |method: &str, path: &str, origin: &str| {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        r.http
            .request(m, format!("{}{path}", r.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
    };
    let allow = |resp: &reqwest::Response| {
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let pre = send("OPTIONS", "/api/dashboard/remote-control", dash)
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(allow(&pre).as_deref(), Some(dash));
    let methods = pre.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("PATCH"), "{methods}");
    for (method, path, status) in [
        ("GET", "/healthz", 200),
        ("GET", "/api/children", 401),
        ("GET", "/no/such/path", 404),
        ("DELETE", "/healthz", 405),
    ] {
        let resp = send(method, path, dash).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        assert_eq!(allow(&resp).as_deref(), Some(dash), "{method} {path}");
        let other = send(method, path, "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(allow(&other), None, "{method} {path} from another origin");
    }
}
