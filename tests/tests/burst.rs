//! Exactly-once without a count cap (issue 18): 2,000 commands queued for an offline
//! device, the device killed twice during the burst, the relay restarted (so it re-sends
//! everything it holds): every command runs at most once and every one ends.
//!
//! The old agent kept at most 512 ids and 512 acks: an overflowing outbox dropped acks,
//! their ids could then be forgotten, and a re-sent command ran again (670 of 2,000 ran
//! twice in the run that found it).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use safestream_tests::*;

const N: usize = 2000;

/// Bytes of the agent's state files (snapshot + journal).
fn state_bytes(dir: &Path) -> u64 {
    ["agent-state.json", "agent-state.journal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Waits until the device has run at least `n` commands in all its lives; tracks the
/// largest state size seen meanwhile.
async fn runs_reach(dev: &Device, n: usize, limit: Duration, max_state: &mut u64) -> R<()> {
    let deadline = Instant::now() + limit;
    loop {
        *max_state = (*max_state).max(state_bytes(&dev.state_dir));
        let runs = dev.lines_of("command").len();
        if runs >= n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("only {runs} commands ran in {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The number of the child's commands the relay still holds open (PENDING or DELIVERED).
async fn open_commands(parent: &Parent) -> R<usize> {
    let mut n = 0;
    for status in ["PENDING", "DELIVERED"] {
        let v = parent
            .api
            .ok(
                reqwest::Method::GET,
                &format!("/api/dashboard/remote-control?childId=kid&status={status}&limit=200"),
                None,
            )
            .await?;
        n += v["commands"].as_array().map_or(0, Vec::len);
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_commands_through_kills_and_a_relay_restart_run_at_most_once() {
    bounded(Duration::from_secs(300), async {
        // Requests per identity raised so the parent can queue 2,000 commands quickly.
        let mut relay = Relay::start_with(vec![("SAFESTREAM_USER_REQUEST_RATE", "1000")]).await?;
        let backend = Backend::new(&relay);
        let parent = Parent::new(&relay, "u1");
        backend.child("kid", "u1").await?;
        let (_device, token) = backend.device("kid", "tablet").await?;

        // Queued while the device is offline.
        let mut ids = Vec::with_capacity(N);
        for _ in 0..N / 50 {
            let posts = (0..50).map(|_| parent.command("kid", "PAUSE", 900));
            for id in futures_util::future::join_all(posts).await {
                ids.push(id?);
            }
        }

        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ws = relay.ws();
        let args = ["--relay", ws.as_str(), "--token", token.as_str()];
        let mut dev = Device::start(&dir.path().join("device"), &args)?;
        let mut max_state = 0;
        let t = Duration::from_secs(90);
        runs_reach(&dev, 300, t, &mut max_state).await?;
        dev.kill();
        dev.restart()?;
        runs_reach(&dev, 900, t, &mut max_state).await?;
        dev.kill();
        // The relay restarts too: on the device's next connect it re-sends every command it
        // still holds open, including ones the device already ran and acked or is acking.
        relay.restart().await?;
        dev.restart()?;

        let started = Instant::now();
        loop {
            max_state = max_state.max(state_bytes(&dev.state_dir));
            if open_commands(&parent).await? == 0 {
                break;
            }
            if started.elapsed() > Duration::from_secs(150) {
                return Err(format!(
                    "{} commands still open after 150 s",
                    open_commands(&parent).await?
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let drain = started.elapsed();

        // At most once each, whatever happened.
        let mut runs: HashMap<String, usize> = HashMap::new();
        for line in dev.lines_of("command") {
            if let Some(id) = line["id"].as_str() {
                *runs.entry(id.to_owned()).or_default() += 1;
            }
        }
        let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{} commands ran twice: {twice:?}", twice.len());
        // Every command ended, and as the device said: EXECUTED when it ran to the end,
        // FAILED "interrupted" when a kill cut it short; none expired, none ran unseen.
        let mut outcomes: HashMap<String, usize> = HashMap::new();
        for id in &ids {
            let c = parent.get_command(id).await?;
            let key = match (c["status"].as_str(), c["error"].as_str()) {
                (Some("EXECUTED"), _) => "EXECUTED".to_owned(),
                (Some("FAILED"), Some(e)) => format!("FAILED {e}"),
                (s, e) => format!("{s:?} {e:?}"),
            };
            if key == "EXECUTED" {
                assert_eq!(runs.get(id), Some(&1), "{id} EXECUTED but run {:?}", runs.get(id));
            }
            *outcomes.entry(key).or_default() += 1;
        }
        let ok = outcomes.get("EXECUTED").copied().unwrap_or(0)
            + outcomes.get("FAILED interrupted").copied().unwrap_or(0);
        assert_eq!(ok, N, "outcomes: {outcomes:?}");
        let end_state = state_bytes(&dev.state_dir);
        eprintln!(
            "burst: {N} commands, outcomes {outcomes:?}, all ended {drain:?} after the last restart; \
             agent state: at most {max_state} bytes during the burst, {end_state} bytes at the end"
        );
        Ok(())
    })
    .await;
}
