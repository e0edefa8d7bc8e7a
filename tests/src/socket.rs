//! A client of the relay's WebSocket (`/api/socket`): opens it with the first-frame `auth`,
//! keeps every frame it receives, follows the parent's event positions (`seq`) and resumes
//! from them after a relay restart, and waits for `command:status` transitions.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::{Relay, R};

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The terminal command statuses.
const FINAL: [&str; 3] = ["EXECUTED", "FAILED", "EXPIRED"];

/// Opens a socket with `token` (a parent's JWT or a device token) as the first frame, with
/// `lastSeq` when resuming, and waits for `ready`.
pub async fn open_socket(relay: &Relay, token: &str, last_seq: Option<i64>) -> R<ParentSocket> {
    let ws = connect(relay, token, last_seq).await?;
    let mut s = ParentSocket {
        ws,
        token: token.to_owned(),
        events: vec![],
        last_seq: None,
        gaps: vec![],
    };
    let ready = s.wait("ready", Duration::from_secs(10), |_| true).await?;
    s.last_seq = last_seq.or(ready["seq"].as_i64());
    Ok(s)
}

async fn connect(relay: &Relay, token: &str, last_seq: Option<i64>) -> R<Stream> {
    let url = format!("{}/api/socket", relay.ws());
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .map_err(|_| "socket connect timeout".to_owned())?
    .map_err(|e| format!("socket connect: {e}"))?;
    let mut data = json!({"token": token});
    if let Some(s) = last_seq {
        data["lastSeq"] = json!(s);
    }
    ws.send(Message::Text(
        json!({"event": "auth", "data": data}).to_string().into(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// A parent's open socket (also used for a device's: then there are no positions).
pub struct ParentSocket {
    ws: Stream,
    token: String,
    /// Every frame received so far (the `ready` frames included), whole (`event`, `data`,
    /// `seq`).
    pub events: Vec<Value>,
    /// The newest position received (from `ready` until an event carries one).
    last_seq: Option<i64>,
    /// Positions that did not follow the previous one (`(previous, received)`), and `resync`
    /// frames as `(previous, -1)`: events this socket missed.
    gaps: Vec<(i64, i64)>,
}

impl ParentSocket {
    /// Reads frames for `d` (keeps them in `events`); fails if the socket ends.
    pub async fn collect_for(&mut self, d: Duration) -> R<()> {
        let deadline = Instant::now() + d;
        loop {
            match self.next(deadline).await? {
                Some(_) => {}
                None => return Ok(()),
            }
        }
    }

    /// The frames received so far named `event`.
    pub fn of(&self, event: &str) -> Vec<&Value> {
        self.events.iter().filter(|v| v["event"] == event).collect()
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// The next frame before `deadline` (kept in `events`, its position followed), `None` at
    /// the deadline; an error when the socket ends.
    async fn next(&mut self, deadline: Instant) -> R<Option<Value>> {
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(m) => m,
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    self.follow(&v);
                    self.events.push(v.clone());
                    return Ok(Some(v));
                }
                Some(Ok(Message::Close(c))) => return Err(format!("socket closed: {c:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("socket: {e}")),
                None => return Err("socket closed".into()),
            }
        }
    }

    /// Follows the positions: each must be the previous one plus one (protocol.md, "Parent
    /// resume"); anything else, or a `resync`, is recorded as a gap.
    fn follow(&mut self, v: &Value) {
        if v["event"] == "resync" {
            self.gaps.push((self.last_seq.unwrap_or(-1), -1));
            self.last_seq = v["data"]["seq"].as_i64().or(self.last_seq);
            return;
        }
        if let Some(seq) = v["seq"].as_i64() {
            if let Some(prev) = self.last_seq {
                if seq != prev + 1 {
                    self.gaps.push((prev, seq));
                }
            }
            self.last_seq = Some(seq);
        }
    }

    /// Waits for an `event` frame whose data matches `pred` (also among frames already
    /// received); returns its data.
    pub async fn wait(
        &mut self,
        event: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> R<Value> {
        if let Some(v) = self
            .events
            .iter()
            .find(|v| v["event"] == event && pred(&v["data"]))
        {
            return Ok(v["data"].clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline).await {
                Ok(Some(v)) if v["event"] == event && pred(&v["data"]) => {
                    return Ok(v["data"].clone())
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(format!(
                        "parent: no {event} in {timeout:?}; got {:?}",
                        self.events
                    ))
                }
                Err(e) => return Err(format!("parent {e} while waiting for {event}")),
            }
        }
    }

    /// After the relay restarted (its old socket died with it): opens a new socket with
    /// `lastSeq` = the newest position received, retrying while the relay is not listening yet
    /// (bounded by `timeout`), and checks the relay resumed (`ready.resumed`). The events it
    /// replays arrive in `events` like live ones.
    pub async fn resume(&mut self, relay: &Relay, timeout: Duration) -> R<()> {
        let last = self
            .last_seq
            .ok_or("resume: no position known (not a parent socket?)")?;
        let deadline = Instant::now() + timeout;
        let ws = loop {
            match connect(relay, &self.token, Some(last)).await {
                Ok(ws) => break ws,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("resume: relay not reachable in {timeout:?}: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let _ = std::mem::replace(&mut self.ws, ws).close(None).await;
        let ready = loop {
            match self.next(deadline).await? {
                Some(v) if v["event"] == "ready" => break v,
                Some(_) => {}
                None => return Err(format!("resume: no ready in {timeout:?}")),
            }
        };
        if ready["data"]["resumed"] != true {
            return Err(format!("resume from seq {last} refused: {ready}"));
        }
        Ok(())
    }

    /// The statuses `command:status` reported for command `id` so far, in order.
    pub fn statuses(&self, id: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|v| v["event"] == "command:status" && v["data"]["commandId"] == id)
            .filter_map(|v| v["data"]["status"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits (bounded by `timeout`) for the `command:status` that reports command `id`
    /// `status`; returns its data. Fails at once when `id` reaches another final status, or
    /// when the socket missed events (a gap in the positions, a `resync`): the status could
    /// be among them.
    pub async fn wait_status(&mut self, id: &str, status: &str, timeout: Duration) -> R<Value> {
        let got = self.wait_final_or(id, status, timeout).await?;
        if got["status"] == status {
            Ok(got)
        } else {
            Err(format!(
                "command {id}: wanted {status}, it ended {got} (statuses seen: {:?})",
                self.statuses(id)
            ))
        }
    }

    /// Waits (bounded by `timeout`) for a final `command:status` (EXECUTED, FAILED, EXPIRED)
    /// of command `id`; returns its data. Fails when the socket missed events.
    pub async fn wait_final(&mut self, id: &str, timeout: Duration) -> R<Value> {
        self.wait_final_or(id, "EXECUTED", timeout).await
    }

    /// The first status event of `id` that is `status` or final.
    async fn wait_final_or(&mut self, id: &str, status: &str, timeout: Duration) -> R<Value> {
        let hit = |v: &Value| {
            v["event"] == "command:status"
                && v["data"]["commandId"] == id
                && (v["data"]["status"] == status
                    || FINAL.iter().any(|f| v["data"]["status"] == *f))
        };
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            if !self.gaps.is_empty() {
                return Err(format!(
                    "parent socket missed events (positions (before, after), -1 = resync: {:?}) \
                     while waiting for command {id} {status}",
                    self.gaps
                ));
            }
            if let Some(v) = self.events[seen..].iter().find(|v| hit(v)) {
                return Ok(v["data"].clone());
            }
            seen = self.events.len();
            let next = self.next(deadline).await.map_err(|e| {
                format!("parent {e} while waiting for command {id} {status} (relay restarted? resume first)")
            })?;
            if next.is_none() {
                return Err(format!(
                    "command {id}: no command:status {status} in {timeout:?} (statuses seen: {:?})",
                    self.statuses(id)
                ));
            }
        }
    }
}
