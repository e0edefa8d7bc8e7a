//! [`Device`]: the simulated device (the `agent-core` `device` example) as a child process,
//! its JSON lines collected; optionally with its wall clock moved by libfaketime.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{build_binaries, tail, target_debug, Lines, R};

/// The libfaketime library of Debian's `faketime` package.
fn libfaketime() -> R<PathBuf> {
    let lib = std::fs::read_dir("/usr/lib")
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    lib.ok_or_else(|| "libfaketime not found: apt-get install faketime (scripts/deps.sh)".into())
}

/// A simulated device process (the `device` example).
pub struct Device {
    child: Option<Child>,
    /// Its stdin (report commands, see the example's docs).
    stdin: Option<std::process::ChildStdin>,
    /// Its stdout: one JSON object per line.
    pub out: Lines,
    /// Its stderr: log lines.
    pub err: Lines,
    /// Its state directory (kept across restarts).
    pub state_dir: PathBuf,
    args: Vec<String>,
    /// A `faketime` offset for the process's wall clock (`+1d`, `-1d`), if any.
    clock_offset: Option<String>,
}

impl Device {
    /// Starts a device with `args` (besides `--state-dir`).
    pub fn start(state_dir: &Path, args: &[&str]) -> R<Device> {
        Self::start_with_clock(state_dir, args, None)
    }

    /// [`Device::start`] with the process's wall clock moved by `offset` (`+1d`, `-1d`:
    /// libfaketime's syntax), as a child who changes the phone's clock would. Needs Debian's
    /// `faketime` package (scripts/deps.sh installs it).
    pub fn start_with_clock(state_dir: &Path, args: &[&str], offset: Option<&str>) -> R<Device> {
        build_binaries();
        let mut d = Device {
            child: None,
            stdin: None,
            out: Lines::default(),
            err: Lines::default(),
            state_dir: state_dir.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            clock_offset: offset.map(str::to_owned),
        };
        d.spawn()?;
        Ok(d)
    }

    fn spawn(&mut self) -> R<()> {
        let mut cmd = Command::new(target_debug().join("examples").join("device"));
        if let Some(offset) = &self.clock_offset {
            // libfaketime preloaded into the device process itself (the `faketime` wrapper
            // forks, so killing it would leave the device running). Only the wall clock
            // moves: the monotonic clock stays real, as on a phone whose clock was changed.
            cmd.env("LD_PRELOAD", libfaketime()?)
                .env("FAKETIME", offset)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let mut child = cmd
            .args(&self.args)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .env("SAFESTREAM_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn device: {e}"))?;
        if let Some(o) = child.stdout.take() {
            self.out.spawn_reader(o, "device");
        }
        if let Some(e) = child.stderr.take() {
            self.err.spawn_reader(e, "device-log");
        }
        self.stdin = child.stdin.take();
        self.child = Some(child);
        Ok(())
    }

    /// Writes one JSON line to the device's stdin (e.g. `{"report":"screenTime","minutes":42}`).
    pub fn send(&mut self, line: &Value) -> R<()> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().ok_or("device not running")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("device stdin: {e}"))
    }

    /// SIGKILLs the device process (the app is killed by the OS).
    pub fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the same device again (same args and state dir); its output is appended.
    pub fn restart(&mut self) -> R<()> {
        self.kill();
        self.spawn()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits until a JSON line matches `pred`; returns it.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> R<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.out.json().into_iter().find(|v| pred(v)) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "device: no {what} in {timeout:?}; stdout: {:?}; log tail: {:?}",
                    self.out.all(),
                    tail(&self.err.all(), 30)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for `{"type":"state","state":state}` (the latest state, not any past one).
    pub async fn wait_state(&self, state: &str, timeout: Duration) -> R<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let states = self.states();
            if states.last().map(String::as_str) == Some(state) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "device: state {state} not reached in {timeout:?}; states {states:?}; log tail: {:?}",
                    tail(&self.err.all(), 30)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every state line so far.
    pub fn states(&self) -> Vec<String> {
        self.lines_of("state")
            .iter()
            .filter_map(|v| v["state"].as_str().map(str::to_owned))
            .collect()
    }

    /// Every JSON line of `type`.
    pub fn lines_of(&self, ty: &str) -> Vec<Value> {
        self.out
            .json()
            .into_iter()
            .filter(|v| v["type"] == ty)
            .collect()
    }

    /// How many times command `id` was run (must never exceed 1).
    pub fn runs_of(&self, id: &str) -> usize {
        self.lines_of("command")
            .iter()
            .filter(|v| v["id"] == id)
            .count()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.kill();
    }
}
