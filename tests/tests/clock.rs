//! The device's wall clock cannot make it dodge a command (issue 18): the simulated device
//! runs under libfaketime with its clock a day ahead or a day behind, and the relay's clock
//! alone decides expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use safestream_tests::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);
const DAY_MS: i64 = 24 * 3600 * 1000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The wall-clock stamp (`at`) the agent wrote for `id` in its ledger: proof of the clock
/// the device process really saw.
fn ledger_stamp(dir: &std::path::Path, id: &str) -> Option<i64> {
    let mut text = std::fs::read_to_string(dir.join("agent-state.journal")).unwrap_or_default();
    text.push('\n');
    text.push_str(&std::fs::read_to_string(dir.join("agent-state.json")).unwrap_or_default());
    let mut found = None;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["entry"]["id"] == id {
            found = v["entry"]["at"].as_i64();
        }
        if let Some(list) = v["commands"].as_array() {
            for e in list.iter().filter(|e| e["id"] == id) {
                found = found.or(e["at"].as_i64());
            }
        }
    }
    found
}

async fn lock_with_clock(offset: &str, skew_ms: i64) -> R<()> {
    let relay = Relay::start().await?;
    let backend = Backend::new(&relay);
    let parent = Parent::new(&relay, "u1");
    backend.child("kid", "u1").await?;
    let (_device_id, token) = backend.device("kid", "tablet").await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let state = dir.path().join("device");
    let ws = relay.ws();
    let dev = Device::start_with_clock(
        &state,
        &["--relay", ws.as_str(), "--token", token.as_str()],
        Some(offset),
    )?;
    dev.wait_state("connected", T).await?;
    let mut sock = parent.socket(&relay).await?;

    // The default lifetime (5 minutes): a day of skew either way would have made the old
    // agent drop it (ahead) or keep running expired ones (behind).
    let id = parent.command("kid", "LOCK_DEVICE", 300).await?;
    let status = sock.wait_final(&id, T).await?;
    assert_eq!(status["status"], "EXECUTED", "{offset}: {status}");
    assert_eq!(sock.statuses(&id), ["DELIVERED", "EXECUTED"], "{offset}");
    assert_eq!(dev.runs_of(&id), 1, "{offset}");

    // The device really ran with its clock moved.
    let at = ledger_stamp(&state, &id).ok_or("no ledger entry for the command")?;
    let seen_skew = at - now_ms();
    assert!(
        (seen_skew - skew_ms).abs() < 3600 * 1000,
        "{offset}: the device's clock was off by {seen_skew} ms, not {skew_ms}"
    );

    // A command that really expires is never run: the relay expires it and the guardian
    // sees EXPIRED, never a silent DELIVERED. The device is offline meanwhile.
    let mut dev = dev;
    dev.kill();
    let short = parent.command("kid", "LOCK_DEVICE", 1).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let connects = |d: &Device| d.states().iter().filter(|s| *s == "connected").count();
    let before = connects(&dev);
    dev.restart()?;
    let deadline = std::time::Instant::now() + T;
    while connects(&dev) == before {
        if std::time::Instant::now() >= deadline {
            return Err(format!("{offset}: the device did not reconnect"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = sock.wait_final(&short, T).await?;
    assert_eq!(status["status"], "EXPIRED", "{offset}: {status}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(dev.runs_of(&short), 0, "{offset}: an expired command ran");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_clock_a_day_ahead_still_runs_lock_device() {
    bounded(Duration::from_secs(120), lock_with_clock("+1d", DAY_MS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_clock_a_day_behind_still_runs_lock_device() {
    bounded(Duration::from_secs(120), lock_with_clock("-1d", -DAY_MS)).await;
}
