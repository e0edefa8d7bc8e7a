//! Device token rotation end to end: the simulated device (its token in
//! `<state-dir>/device-token`, written atomically like a keystore entry) and the real relay.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use safestream_tests::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// The shared fixture, with this file's helpers on top.
struct Fixture(World);

impl std::ops::Deref for Fixture {
    type Target = World;
    fn deref(&self) -> &World {
        &self.0
    }
}

impl std::ops::DerefMut for Fixture {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.0
    }
}

async fn world() -> R<Fixture> {
    Ok(Fixture(World::new().await?))
}

impl Fixture {
    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("device")
    }

    /// Starts the simulated device with the token its store holds (put there first, as
    /// pairing would; no `--token`, which would overwrite the store at every start).
    fn device(&self) -> R<Device> {
        let dir = self.state_dir();
        if !dir.join("device-token").exists() {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("device-token"), &self.token).map_err(|e| e.to_string())?;
        }
        let relay = self.relay.ws();
        Device::start(&dir, &["--relay", relay.as_str()])
    }

    /// A guardian asks for a rotation.
    async fn rotate(&self) -> R<Value> {
        let (status, body) = self
            .parent
            .api
            .call(
                reqwest::Method::POST,
                &format!("/api/devices/{}/rotate-token", self.device_id),
                None,
            )
            .await?;
        if status != 202 {
            return Err(format!("rotate-token: {status} {body}"));
        }
        Ok(body)
    }

    /// Status of a REST call with `token`.
    async fn rest_status(&self, token: &str) -> R<u16> {
        Ok(Client::new(&self.relay, token)
            .call(reqwest::Method::GET, "/api/devices/me/commands", None)
            .await?
            .0)
    }

    /// Waits until a REST call with `token` answers `status`.
    async fn wait_rest(&self, token: &str, status: u16) -> R<()> {
        let deadline = Instant::now() + T;
        loop {
            let got = self.rest_status(token).await?;
            if got == status {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "REST with the token answers {got}, wanted {status}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The old token is refused everywhere: REST 401 and a socket closed 4401.
    async fn old_token_refused(&self) -> R<()> {
        self.wait_rest(&self.token, 401).await?;
        match open_socket(&self.relay, &self.token, None).await {
            Ok(_) => Err("a socket with the old token was accepted".into()),
            Err(e) if e.contains("4401") => Ok(()),
            Err(e) => Err(format!("old token: unexpected socket outcome {e}")),
        }
    }

    /// A command still reaches the device and is acknowledged.
    async fn command_reaches(&self, dev: &Device) -> R<()> {
        let id = self.parent.command(&self.child, "PAUSE", 300).await?;
        dev.wait_for("ack", T, |v| v["type"] == "ack" && v["id"] == id.as_str())
            .await?;
        self.parent.wait_status(&id, "EXECUTED", T).await?;
        Ok(())
    }
}

/// Waits until the device's token store holds a token other than `old`; returns it.
async fn stored_token_other_than(state_dir: &Path, old: &str) -> R<String> {
    let path = state_dir.join("device-token");
    let deadline = Instant::now() + T;
    loop {
        if let Ok(t) = std::fs::read_to_string(&path) {
            let t = t.trim().to_owned();
            if !t.is_empty() && t != old {
                return Ok(t);
            }
        }
        if Instant::now() >= deadline {
            return Err("the device never stored a new token".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn never_unauthorized(dev: &Device) -> R<()> {
    let states = dev.states();
    if states.iter().any(|s| s == "unauthorized") {
        return Err(format!("the device lost its credentials: {states:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardian_rotates_the_token_of_a_connected_device() {
    bounded(Duration::from_secs(90), async {
        let w = world().await?;
        let dev = w.device()?;
        dev.wait_state("connected", T).await?;
        let body = w.rotate().await?;
        assert_eq!(body["pendingGeneration"], 1, "{body}");
        // The device stores the new token, then switches to it on its open socket.
        let new = stored_token_other_than(&w.state_dir(), &w.token).await?;
        w.old_token_refused().await?;
        assert_eq!(w.rest_status(&new).await?, 200);
        w.command_reaches(&dev).await?;
        never_unauthorized(&dev)?;
        // No gap: the switch happened on the open socket, without a reconnect.
        assert_eq!(
            dev.states().iter().filter(|s| *s == "connected").count(),
            1,
            "{:?}",
            dev.states()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_was_offline_gets_its_new_token_when_it_connects() {
    bounded(Duration::from_secs(120), async {
        let w = world().await?;
        let mut dev = w.device()?;
        dev.wait_state("connected", T).await?;
        dev.kill();
        // Rotated (by the backend this time) while the device is down: the old token keeps
        // working until the new one is used.
        let path = format!("/api/devices/{}/rotate-token", w.device_id);
        let (status, body) = w.backend.0.call(reqwest::Method::POST, &path, None).await?;
        assert_eq!(status, 202, "{body}");
        assert_eq!(w.rest_status(&w.token).await?, 200);
        dev.restart()?;
        let new = stored_token_other_than(&w.state_dir(), &w.token).await?;
        w.old_token_refused().await?;
        w.command_reaches(&dev).await?;
        // Killed and started again: it connects with the stored new token.
        dev.restart()?;
        w.command_reaches(&dev).await?;
        assert_eq!(w.rest_status(&new).await?, 200);
        never_unauthorized(&dev)?;
        Ok(())
    })
    .await;
}
