//! Screen time and restricted attempts from the simulated device (driven on its stdin)
//! to the guardian's socket, through the agent's durable report queue: online, and while
//! the relay is down across an agent SIGKILL and restart.

use std::time::Duration;

use safestream_tests::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

fn queued(kind: &'static str, n: usize) -> impl Fn(&Device) -> bool {
    move |d| {
        d.lines_of("report_queued")
            .iter()
            .filter(|v| v["report"] == kind)
            .count()
            >= n
    }
}

async fn wait_queued(dev: &Device, kind: &'static str, n: usize) -> R<()> {
    let ok = queued(kind, n);
    let end = std::time::Instant::now() + T;
    while !ok(dev) {
        if std::time::Instant::now() > end {
            return Err(format!(
                "report {kind} #{n} not queued: {:?}",
                dev.out.all()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn restricted(url: &str) -> Value {
    json!({"report": "restrictedAttempt", "url": url, "title": "Blocked video",
           "reason": "age rating", "metadata": {"rating": "18+"}})
}

fn is_attempt(url: &'static str) -> impl Fn(&Value) -> bool {
    move |n| n["type"] == "RESTRICTED_CONTENT" && n["metadata"]["url"] == url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reach_the_guardian_also_when_made_while_the_relay_is_down() {
    bounded(Duration::from_secs(150), async {
        let mut relay = Relay::start().await?;
        let backend = Backend::new(&relay);
        backend.child("kid1", "u1").await?;
        backend
            .0
            .ok(
                reqwest::Method::PUT,
                "/api/children/kid1",
                Some(json!({"dailyLimitMinutes": 60})),
            )
            .await?;
        let (device_id, token) = backend.device("kid1", "tablet").await?;
        let parent = Parent::new(&relay, "u1");
        let mut sock = parent.socket(&relay).await?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ws = relay.ws();
        let mut dev = Device::start(
            &dir.path().join("device"),
            &["--relay", ws.as_str(), "--token", token.as_str()],
        )?;
        dev.wait_state("connected", T).await?;

        // Online: under the limit (no alert), then a restricted attempt.
        dev.send(&json!({"report": "screenTime", "minutes": 30}))?;
        dev.send(&restricted("https://example.com/online"))?;
        wait_queued(&dev, "restrictedAttempt", 1).await?;
        let n = sock
            .wait(
                "notification:new",
                T,
                is_attempt("https://example.com/online"),
            )
            .await?;
        assert_eq!(
            n["metadata"],
            json!({"childId": "kid1", "deviceId": device_id, "url": "https://example.com/online",
                   "title": "Blocked video", "reason": "age rating", "details": {"rating": "18+"}}),
            "{n}"
        );
        let message = n["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Blocked video") && message.contains("age rating"),
            "{n}"
        );
        // Let the answer reach the agent before the relay dies (else the report is sent
        // again: at-least-once).
        tokio::time::sleep(Duration::from_secs(1)).await;

        // The relay goes down; reports made now wait in the queue, across an app kill.
        relay.kill();
        dev.send(&json!({"report": "screenTime", "minutes": 45}))?;
        dev.send(&restricted("https://example.com/offline"))?;
        dev.send(&json!({"report": "screenTime", "minutes": 75}))?;
        wait_queued(&dev, "screenTime", 3).await?;
        wait_queued(&dev, "restrictedAttempt", 2).await?;
        // Bad values are refused at the call, not queued.
        dev.send(&json!({"report": "screenTime", "minutes": 5000}))?;
        dev.send(&json!({"report": "restrictedAttempt", "metadata": [1]}))?;
        dev.wait_for("refusals", T, |v| {
            v["type"] == "report_refused" && v["report"] == "restrictedAttempt"
        })
        .await?;
        assert_eq!(
            dev.lines_of("report_refused").len(),
            2,
            "{:?}",
            dev.out.all()
        );
        dev.kill();
        dev.restart()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        relay.restart().await?;
        sock.resume(&relay, T).await?;

        let alert = sock
            .wait("screentime:alert", Duration::from_secs(60), |d| {
                d["childId"] == "kid1"
            })
            .await?;
        assert_eq!(
            alert["minutesUsed"], 75,
            "only the latest value is sent: {alert}"
        );
        assert_eq!(alert["limit"], 60, "{alert}");
        let n = sock
            .wait("notification:new", T, |n| n["type"] == "SCREEN_TIME_LIMIT")
            .await?;
        assert_eq!(n["metadata"]["minutesUsed"], 75, "{n}");
        let n = sock
            .wait(
                "notification:new",
                T,
                is_attempt("https://example.com/offline"),
            )
            .await?;
        assert_eq!(n["metadata"]["deviceId"], device_id.as_str(), "{n}");

        // Nothing more arrives: each report once, the 30-minute value never alerted.
        sock.collect_for(Duration::from_secs(3)).await?;
        let attempts = |url: &str| {
            sock.of("notification:new")
                .iter()
                .filter(|v| v["data"]["metadata"]["url"] == url)
                .count()
        };
        assert_eq!(attempts("https://example.com/online"), 1);
        assert_eq!(attempts("https://example.com/offline"), 1);
        assert_eq!(sock.of("screentime:alert").len(), 1);
        Ok(())
    })
    .await;
}
