//! The registry: children, guardians and devices as the backend and guardians shape them;
//! revoked devices refused everywhere; a guardian removed by the backend loses the devices
//! they registered.

use std::time::Duration;

use serde_json::json;

use crate::code;
use crate::common::*;

#[tokio::test]
async fn children_guardians_and_devices() {
    let r = Relay::start().await;
    let p1 = parent("p1");
    let p2 = parent("p2");
    // Backend creates, then updates.
    let (s, b) = r
        .req("PUT", "/api/children/c1", Some(SERVER_KEY), Some(json!({"name": "Mia", "guardians": ["p1"], "timezone": "Europe/Paris", "dailyLimitMinutes": 90})))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["child"]["guardians"], json!(["p1"]));
    assert_eq!(b["child"]["timezone"], "Europe/Paris");
    let (s, _) = r
        .req(
            "PUT",
            "/api/children/c1",
            Some(SERVER_KEY),
            Some(json!({"dailyLimitMinutes": 100})),
        )
        .await;
    assert_eq!(s, 200);
    // The guardian updates; another parent may not.
    let (s, b) = r
        .req(
            "PUT",
            "/api/children/c1",
            Some(&p1),
            Some(json!({"name": "Mia R."})),
        )
        .await;
    assert_eq!((s, b["child"]["name"].as_str()), (200, Some("Mia R.")));
    assert_eq!(b["child"]["dailyLimitMinutes"], 100);
    let (s, b) = r
        .req(
            "PUT",
            "/api/children/c1",
            Some(&p2),
            Some(json!({"name": "Hijack"})),
        )
        .await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    // A parent creating a child becomes its guardian; may not set guardians.
    let (s, b) = r
        .req(
            "PUT",
            "/api/children/c2",
            Some(&p2),
            Some(json!({"name": "Leo"})),
        )
        .await;
    assert_eq!((s, b["child"]["guardians"].clone()), (201, json!(["p2"])));
    let (s, _) = r
        .req(
            "PUT",
            "/api/children/c2",
            Some(&p2),
            Some(json!({"guardians": ["p1"]})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, b) = r.get("/api/children", &p2).await;
    assert_eq!(s, 200);
    assert_eq!(b["children"].as_array().unwrap().len(), 1);
    // Bad input is 400 and changes nothing.
    for body in [
        json!({"name": "x", "timezone": "Mars/Olympus"}),
        json!({"name": "x", "dailyLimitMinutes": -1}),
        json!({"name": "x", "dailyLimitMinutes": "ten"}),
        json!({"name": ""}),
        json!({"name": 5}),
        json!([1, 2]),
    ] {
        let (s, b) = r
            .req(
                "PUT",
                "/api/children/c1",
                Some(SERVER_KEY),
                Some(body.clone()),
            )
            .await;
        assert_eq!((s, code(&b)), (400, "bad_request"), "{body}");
    }
    let (s, _) = r
        .req(
            "PUT",
            "/api/children/c3",
            Some(SERVER_KEY),
            Some(json!({"timezone": "UTC"})),
        )
        .await;
    assert_eq!(s, 400, "name is required to create");
    let (s, _) = r
        .req(
            "PUT",
            "/api/children/bad%20id",
            Some(SERVER_KEY),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, 400);
    let (_, b) = r.get("/api/children/c1", &p1).await;
    assert_eq!(b["child"]["name"], "Mia R.");
    assert_eq!(b["child"]["dailyLimitMinutes"], 100);
    // Reads.
    assert_eq!(r.get("/api/children/c1", &p2).await.0, 403);
    assert_eq!(r.get("/api/children/nope", SERVER_KEY).await.0, 404);
    // Devices: guardian or backend; listed with presence.
    let (s, b) = r
        .post("/api/children/c1/devices", &p1, json!({"name": "tablet"}))
        .await;
    assert_eq!(s, 201, "{b}");
    assert!(b["token"].as_str().unwrap().len() > 20);
    assert_eq!(
        r.post("/api/children/c1/devices", &p2, json!({"name": "x"}))
            .await
            .0,
        403
    );
    assert_eq!(
        r.post("/api/children/c1/devices", &p1, json!({})).await.0,
        400
    );
    assert_eq!(
        r.post(
            "/api/children/nope/devices",
            SERVER_KEY,
            json!({"name": "x"})
        )
        .await
        .0,
        404
    );
    let (s, b) = r.get("/api/children/c1/devices", &p1).await;
    assert_eq!(s, 200);
    assert_eq!(b["devices"][0]["online"], false);
    assert_eq!(b["devices"][0]["revoked"], false);
    r.stop().await;
}

#[tokio::test]
async fn revoked_devices_are_refused_everywhere() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    r.child("c2", &["p2"]).await;
    let (d1_id, d1) = r.device("c1").await;
    let p1 = parent("p1");
    let cmd = r.command(&p1, "c1", "PAUSE").await;
    let (mut ws, _) = Ws::ready(&r, &d1).await;
    ws.expect("command:new").await;
    assert_eq!(
        r.req(
            "DELETE",
            &format!("/api/devices/{d1_id}"),
            Some(&parent("p2")),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        r.req("DELETE", &format!("/api/devices/{d1_id}"), Some(&d1), None)
            .await
            .0,
        403
    );
    let (s, b) = r
        .req("DELETE", &format!("/api/devices/{d1_id}"), Some(&p1), None)
        .await;
    assert_eq!((s, b["revoked"].as_bool()), (200, Some(true)));
    assert_eq!(ws.expect_close(Duration::from_secs(5)).await, Some(4403));
    let (s, b) = r.ack(&d1, cmd["id"].as_str().unwrap(), "EXECUTED").await;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    assert_eq!(r.get("/api/devices/me/commands", &d1).await.0, 401);
    let mut again = Ws::open(&r, &d1, None).await;
    assert_eq!(again.expect_close(Duration::from_secs(5)).await, Some(4403));
    assert_eq!(
        r.req(
            "DELETE",
            &format!("/api/devices/{d1_id}"),
            Some(SERVER_KEY),
            None
        )
        .await
        .0,
        200,
        "idempotent"
    );
    assert_eq!(
        r.req("DELETE", "/api/devices/unknown", Some(SERVER_KEY), None)
            .await
            .0,
        404
    );
    let (_, b) = r.get("/api/children/c1/devices", &p1).await;
    assert_eq!(b["devices"][0]["revoked"], true);
    r.stop().await;
}

#[tokio::test]
async fn a_guardian_removed_by_the_backend_loses_the_devices_they_registered() {
    // A parent creates a child id first and registers a device on it; the backend then makes
    // the id another family's child. The squatter's device must not see that family's commands.
    let r = Relay::start().await;
    let mallory = parent("mallory");
    let (s, _) = r
        .req(
            "PUT",
            "/api/children/1001",
            Some(&mallory),
            Some(json!({"name": "future"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, b) = r
        .post(
            "/api/children/1001/devices",
            &mallory,
            json!({"name": "spy"}),
        )
        .await;
    assert_eq!(s, 201);
    let spy = b["token"].as_str().unwrap().to_string();
    let (backend_dev_id, backend_dev) = r.device("1001").await;
    let (mut spy_ws, _) = Ws::ready(&r, &spy).await;
    let (s, b) = r
        .req(
            "PUT",
            "/api/children/1001",
            Some(SERVER_KEY),
            Some(json!({"guardians": ["victim"]})),
        )
        .await;
    assert_eq!(
        (s, b["child"]["guardians"].clone()),
        (200, json!(["victim"]))
    );
    assert_eq!(
        spy_ws.expect_close(Duration::from_secs(5)).await,
        Some(4403)
    );
    let cmd = r
        .post("/api/dashboard/remote-control", &parent("victim"), json!({"childId": "1001", "commandType": "SHOW_MESSAGE", "payload": {"text": "secret"}}))
        .await
        .1["command"]
        .clone();
    assert_eq!(
        r.ack(&spy, cmd["id"].as_str().unwrap(), "EXECUTED").await.0,
        401
    );
    assert_eq!(
        r.post(
            "/api/dashboard/screen-time",
            &spy,
            json!({"childId": "1001", "minutesUsed": 5})
        )
        .await
        .0,
        401
    );
    // The backend's own device is untouched.
    let (_, list) = r.get("/api/children/1001/devices", SERVER_KEY).await;
    let backend_entry = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == backend_dev_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(backend_entry["revoked"], false);
    assert_eq!(
        r.ack(&backend_dev, cmd["id"].as_str().unwrap(), "EXECUTED")
            .await
            .0,
        200
    );
    r.stop().await;
}
