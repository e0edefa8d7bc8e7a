//! The admin overview (`GET /api/admin/overview`) and the console's static files at `/`.

use serde_json::json;

use crate::code;
use crate::common::*;

#[tokio::test]
async fn the_admin_overview_counts_sockets_open_commands_and_failures_for_admins_only() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    r.child("c2", &["p2"]).await;
    let (_, dev1) = r.device("c1").await;
    let (dev2_id, dev2) = r.device("c2").await;
    let (_ws_dev, _) = Ws::ready(&r, &dev1).await;
    let (_ws_parent, _) = Ws::ready(&r, &parent("p1")).await;
    // c2: two open commands (no device online), one FAILED. c1: one, executed at once.
    r.command(&parent("p2"), "c2", "PAUSE").await;
    r.command(&parent("p2"), "c2", "LOCK_DEVICE").await;
    let failed = r.command(&parent("p2"), "c2", "RESUME").await;
    let (s, _) = r.ack(&dev2, failed["id"].as_str().unwrap(), "FAILED").await;
    assert_eq!(s, 200);
    let done = r.command(&parent("p1"), "c1", "PAUSE").await;
    let (s, _) = r.ack(&dev1, done["id"].as_str().unwrap(), "EXECUTED").await;
    assert_eq!(s, 200);

    let (s, b) = r.get("/api/admin/overview", &admin("ops")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["node"]["devices"], 1, "{b}");
    assert_eq!(b["node"]["parents"], 1, "{b}");
    assert_eq!(
        b["pendingByChild"],
        json!([{"childId": "c2", "pending": 2}]),
        "{b}"
    );
    let failures = b["recentFailures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{b}");
    assert_eq!(failures[0]["id"], failed["id"]);
    assert_eq!(failures[0]["status"], "FAILED");
    assert_eq!(failures[0]["ackDeviceId"], json!(dev2_id));

    // Everyone else: a guardian who is not an admin, a device, the backend, nobody.
    for (who, token) in [
        ("parent", parent("p1")),
        ("device", dev1.clone()),
        ("backend", SERVER_KEY.to_string()),
    ] {
        let (s, b) = r.get("/api/admin/overview", &token).await;
        assert_eq!((s, code(&b)), (403, "forbidden"), "{who}");
    }
    let (s, b) = r.req("GET", "/api/admin/overview", None, None).await;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
}

#[tokio::test]
async fn the_console_is_served_at_the_root_with_a_strict_content_security_policy() {
    let r = Relay::start().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let resp = r
            .http
            .get(format!("{}{path}", r.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        let ct = h["content-type"].to_str().unwrap();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = resp.bytes().await.unwrap();
        assert!(!body.is_empty(), "{path} is empty");
    }
    let page = r
        .http
        .get(format!("{}/", r.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/console/app.js") && page.contains("/console/app.css"),
        "{page}"
    );
    // The page has no inline script (the policy would block it).
    assert!(!page.contains("<script>"), "{page}");
}

/// A `--dev` relay on `db` with no secrets configured and no simulated device.
async fn dev_relay(db: &std::path::Path) -> relay::Running {
    let mut cfg = relay::Config::for_tests(db.display().to_string(), "", "");
    cfg.jwt_secret = None;
    cfg.server_key = None;
    cfg.dev = true;
    cfg.no_demo_device = true;
    relay::server::start(cfg).await.unwrap()
}

/// The status of `GET /api/children` on `r` with `token`.
async fn children_status(r: &relay::Running, token: &str) -> u16 {
    let url = format!("http://{}/api/children", r.addr);
    let res = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

#[tokio::test]
async fn dev_mode_keeps_its_generated_secrets_so_printed_tokens_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dev.db");
    let first = dev_relay(&db).await;
    let token = first.dev.as_ref().unwrap().parent_token.clone();
    let key = first.app.cfg.server_key.clone().unwrap();
    assert!(key.len() >= 32, "a generated key is long: {key}");
    first.shutdown().await;

    let second = dev_relay(&db).await;
    assert_eq!(second.app.cfg.server_key.as_deref(), Some(key.as_str()));
    assert_eq!(
        children_status(&second, &token).await,
        200,
        "the first run's parent token is accepted"
    );
    second.shutdown().await;

    // Another database: other secrets, and the first run's token is refused.
    let other = tempfile::tempdir().unwrap();
    let third = dev_relay(&other.path().join("dev.db")).await;
    assert_ne!(third.app.cfg.server_key.as_deref(), Some(key.as_str()));
    assert_eq!(children_status(&third, &token).await, 401);
    third.shutdown().await;
}
