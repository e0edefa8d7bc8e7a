//! Pairing: the flow and its limits, refused claims and rejection.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn pairing_flow_and_its_limits() {
    let r = Relay::start().await;
    r.child("c1", &["p1"]).await;
    r.child("c2", &["p2"]).await;
    let p1 = parent("p1");
    let (mut pws, _) = Ws::ready(&r, &p1).await;
    let (s, b) = r
        .req(
            "POST",
            "/api/pairing",
            None,
            Some(json!({"deviceName": "Mia's phone"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (pid, code, secret) = (
        b["pairingId"].as_str().unwrap().to_string(),
        b["code"].as_str().unwrap().to_string(),
        b["secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(code.len(), 9);
    // The device waits: still pending.
    let (s, b) = r.get(&format!("/api/pairing/{pid}?wait=0"), &secret).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("PENDING")));
    assert_eq!(
        r.get(&format!("/api/pairing/{pid}"), "wrong-secret")
            .await
            .0,
        401
    );
    // Wrong codes are 404, malformed ones 400.
    assert_eq!(
        r.post("/api/pairing/claim", &p1, json!({"code": "AAAA-AAAA"}))
            .await
            .0,
        404
    );
    assert_eq!(
        r.post("/api/pairing/claim", &p1, json!({"code": "short"}))
            .await
            .0,
        400
    );
    // The parent claims it (case and dash do not matter) and is notified.
    let (s, b) = r
        .post(
            "/api/pairing/claim",
            &p1,
            json!({"code": code.to_lowercase().replace('-', "")}),
        )
        .await;
    assert_eq!(
        (s, b["pairing"]["status"].as_str()),
        (200, Some("CLAIMED")),
        "{b}"
    );
    let n = pws.expect("notification:new").await;
    assert_eq!(
        (n["type"].as_str(), n["metadata"]["pairingId"].as_str()),
        (Some("DEVICE_PAIRING"), Some(pid.as_str()))
    );
    // Another parent cannot take it; the claimer cannot approve it for someone else's child.
    assert_eq!(
        r.post("/api/pairing/claim", &parent("p2"), json!({"code": code}))
            .await
            .0,
        409
    );
    assert_eq!(
        r.post(
            &format!("/api/pairing/{pid}/approve"),
            &parent("p2"),
            json!({"childId": "c2"})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        r.post(
            &format!("/api/pairing/{pid}/approve"),
            &p1,
            json!({"childId": "c2"})
        )
        .await
        .0,
        403
    );
    // A device long-polling receives its token as soon as it is approved.
    let waiter = {
        let url = format!("{}/api/pairing/{pid}?wait=10", r.base);
        let secret = secret.clone();
        let http = r.http.clone();
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(secret).send().await.unwrap();
            resp.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, b) = r
        .post(
            &format!("/api/pairing/{pid}/approve"),
            &p1,
            json!({"childId": "c1"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["status"], "APPROVED");
    assert_eq!(got["childId"], "c1");
    let token = got["token"].as_str().unwrap();
    let (_, ready) = Ws::ready(&r, token).await;
    assert_eq!(ready["deviceId"], b["deviceId"]);
    // Pairing requests are rate limited per address (10 per minute).
    let mut limited = false;
    for _ in 0..11 {
        if r.req("POST", "/api/pairing", None, None).await.0 == 429 {
            limited = true;
        }
    }
    assert!(limited, "the 11th pairing request from one address is 429");
    // Entered codes are limited per parent.
    let p3 = parent("p3");
    let mut statuses = vec![];
    for _ in 0..11 {
        statuses.push(
            r.post("/api/pairing/claim", &p3, json!({"code": "BBBB-BBBB"}))
                .await
                .0,
        );
    }
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 10);
    assert_eq!(*statuses.last().unwrap(), 429);
    r.stop().await;
}

#[tokio::test]
async fn a_refused_claim_with_child_changes_nothing_and_reject_ends_a_pairing() {
    let r = Relay::start().await;
    r.child("ca", &["ua"]).await;
    r.child("cb", &["ub"]).await;
    let (_, b) = r
        .req(
            "POST",
            "/api/pairing",
            None,
            Some(json!({"deviceName": "phone"})),
        )
        .await;
    let (pid, code, secret) = (
        b["pairingId"].as_str().unwrap().to_string(),
        b["code"].as_str().unwrap().to_string(),
        b["secret"].as_str().unwrap().to_string(),
    );
    let (s, _) = r
        .post(
            "/api/pairing/claim",
            &parent("ua"),
            json!({"code": code, "childId": "cb"}),
        )
        .await;
    assert_eq!(s, 403);
    let (_, st) = r.get(&format!("/api/pairing/{pid}"), &secret).await;
    assert_eq!(st["status"], "PENDING", "the refused claim left no trace");
    let (_, n) = r.get("/api/dashboard/notifications", &parent("ua")).await;
    assert_eq!(n["notifications"].as_array().unwrap().len(), 0);
    // The right guardian claims and approves in one call.
    let (s, b) = r
        .post(
            "/api/pairing/claim",
            &parent("ub"),
            json!({"code": code, "childId": "cb"}),
        )
        .await;
    assert_eq!((s, b["childId"].as_str()), (201, Some("cb")), "{b}");
    let (_, st) = r.get(&format!("/api/pairing/{pid}"), &secret).await;
    assert_eq!(st["status"], "APPROVED");
    // Another pairing, claimed then rejected.
    let (_, b) = r.req("POST", "/api/pairing", None, None).await;
    let (pid, code, secret) = (
        b["pairingId"].as_str().unwrap().to_string(),
        b["code"].as_str().unwrap().to_string(),
        b["secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        r.post(
            &format!("/api/pairing/{pid}/reject"),
            &parent("ua"),
            json!({})
        )
        .await
        .0,
        404,
        "not claimed by ua"
    );
    assert_eq!(
        r.post("/api/pairing/claim", &parent("ua"), json!({"code": code}))
            .await
            .0,
        200
    );
    assert_eq!(
        r.post(
            &format!("/api/pairing/{pid}/reject"),
            &parent("ua"),
            json!({})
        )
        .await
        .0,
        200
    );
    let (_, st) = r.get(&format!("/api/pairing/{pid}"), &secret).await;
    assert_eq!(st["status"], "REJECTED");
    assert_eq!(
        r.post(
            &format!("/api/pairing/{pid}/approve"),
            &parent("ua"),
            json!({"childId": "ca"})
        )
        .await
        .0,
        409
    );
    r.stop().await;
}
