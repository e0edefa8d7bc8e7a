//! The cross-node bus on Redis pub/sub (`SAFESTREAM_REDIS`).
//!
//! **Why pub/sub and not streams.** The bus only carries notifications of changes that are
//! already durable in PostgreSQL: commands, their status, and every parent event (with its
//! per-user position) can be read back from the database at any time. What the bus must do
//! is reach every node quickly; what it may do is lose messages, as long as each node knows
//! when that may have happened and then catches up from the database. Pub/sub gives the
//! lowest latency, keeps nothing in Redis memory, and needs no trimming or consumer-group
//! bookkeeping; streams would duplicate, in Redis, a log the database already keeps.
//!
//! **How loss is detected and repaired.** Messages can be lost in three places, and each
//! ends in [`Hub::catch_up_all`] on the nodes concerned — devices get their open commands
//! again from the database (the agent ignores ids it already ran) after their device is
//! checked again (a revocation may have been missed: the device cache is cleared), parents
//! every event after the last position they were sent:
//! - a node's subscription drops (Redis restarted, network cut): on re-subscribing, that
//!   node catches up its own sockets;
//! - a node fails to publish (Redis down, or its outgoing queue full): once it can publish
//!   again it sends a `catch-up` message, and every node catches up;
//! - a message arrives out of order or not at all while others arrive: parents see the gap
//!   in their positions and read it from the database (see `ws/parent.rs`).
//!
//! A node delivers its own messages to its own sockets directly (no round trip through
//! Redis) and ignores them when they come back from the channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Bus, BusMessage, CommandMeta, OutFrame};
use crate::hub::Hub;

/// Messages waiting to be published; beyond this, publishing drops and flags a catch-up.
const QUEUE: usize = 65_536;
/// Messages sent to Redis in one pipeline at most.
const PIPELINE: usize = 256;

/// One message on the channel.
#[derive(Serialize, Deserialize)]
struct Wire {
    /// The node that published it.
    n: String,
    #[serde(flatten)]
    m: WireMsg,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "k")]
enum WireMsg {
    /// `Deliver`.
    #[serde(rename = "d")]
    Deliver {
        r: String,
        t: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        c: Option<(String, i64, i64)>,
    },
    /// `RevokeDevice`.
    #[serde(rename = "r")]
    Revoke { d: String },
    /// `TokenPromoted`.
    #[serde(rename = "t")]
    Promoted { d: String, g: i64 },
    /// `RotationPending` (no token: each node derives it).
    #[serde(rename = "p")]
    Rotation { d: String, g: i64, i: i64 },
    /// Messages may have been lost: every node catches up from the database.
    #[serde(rename = "c")]
    CatchUp,
    /// Sent by each node every [`BEAT`] when it has nothing else to publish: a subscriber
    /// that hears nothing at all for [`SILENT`] (not even its own beats) reconnects.
    #[serde(rename = "b")]
    Beat,
}

/// How often an idle publisher sends a beat.
const BEAT: Duration = Duration::from_secs(5);
/// A subscription that received nothing for this long is taken as dead (half-open).
const SILENT: Duration = Duration::from_secs(15);

fn encode(node: &str, msg: &BusMessage) -> String {
    let m = match msg {
        BusMessage::Deliver { room, frame } => WireMsg::Deliver {
            r: room.clone(),
            t: frame.text.as_str().to_string(),
            s: frame.seq,
            c: frame
                .command
                .as_ref()
                .map(|c| (c.id.clone(), c.expires_at, c.created_at)),
        },
        BusMessage::RevokeDevice { device_id } => WireMsg::Revoke {
            d: device_id.clone(),
        },
        BusMessage::TokenPromoted { device_id, gen } => WireMsg::Promoted {
            d: device_id.clone(),
            g: *gen,
        },
        BusMessage::RotationPending {
            device_id,
            gen,
            issued_at,
        } => WireMsg::Rotation {
            d: device_id.clone(),
            g: *gen,
            i: *issued_at,
        },
    };
    let w = Wire {
        n: node.to_string(),
        m,
    };
    serde_json::to_string(&w).unwrap_or_default()
}

/// What a received message means for this node.
enum Received {
    Msg(BusMessage),
    CatchUp,
}

fn decode(node: &str, payload: &[u8]) -> Option<Received> {
    let w: Wire = serde_json::from_slice(payload).ok()?;
    if w.n == node || matches!(w.m, WireMsg::Beat) {
        return None;
    }
    Some(match w.m {
        WireMsg::Deliver { r, t, s, c } => Received::Msg(BusMessage::Deliver {
            room: r,
            frame: Arc::new(OutFrame {
                text: Utf8Bytes::from(t),
                seq: s,
                command: c.map(|(id, expires_at, created_at)| CommandMeta {
                    id,
                    expires_at,
                    created_at,
                }),
            }),
        }),
        WireMsg::Revoke { d } => Received::Msg(BusMessage::RevokeDevice { device_id: d }),
        WireMsg::Promoted { d, g } => Received::Msg(BusMessage::TokenPromoted {
            device_id: d,
            gen: g,
        }),
        WireMsg::Rotation { d, g, i } => Received::Msg(BusMessage::RotationPending {
            device_id: d,
            gen: g,
            issued_at: i,
        }),
        WireMsg::CatchUp => Received::CatchUp,
        WireMsg::Beat => return None,
    })
}

/// The Redis bus: local delivery plus a queue towards the channel. See the module doc.
pub struct RedisBus {
    node: String,
    hub: Arc<Hub>,
    tx: mpsc::Sender<String>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<String>>>,
    /// Set when a message could not be published: a catch-up is owed to every node.
    lost: Arc<AtomicBool>,
    client: redis::Client,
    channel: String,
}

impl RedisBus {
    /// A bus for node `node` on `url`, channel `<prefix>:bus`. Checks the URL only;
    /// [`RedisBus::start`] connects.
    pub fn new(url: &str, prefix: &str, node: &str, hub: Arc<Hub>) -> Result<RedisBus, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("SAFESTREAM_REDIS is not a valid Redis URL: {e}"))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        Ok(RedisBus {
            node: node.to_string(),
            hub,
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            lost: Arc::new(AtomicBool::new(false)),
            client,
            channel: format!("{prefix}:bus"),
        })
    }

    /// Checks that Redis answers (at start: a node that cannot reach Redis refuses to run).
    pub async fn check(&self) -> Result<(), String> {
        let mut c = tokio::time::timeout(
            Duration::from_secs(5),
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| "connecting to Redis timed out".to_string())?
        .map_err(|e| format!("connecting to Redis: {e}"))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut c)
            .await
            .map_err(|e| format!("Redis PING: {e}"))?;
        Ok(())
    }

    /// Starts the publisher and the subscriber. The subscriber hands what other nodes
    /// publish to this node's hub and forgets revoked devices in `store`'s cache.
    pub fn start(&self, store: Arc<dyn super::DeviceCache>) {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rx) = rx {
            tokio::spawn(publisher(
                self.client.clone(),
                self.channel.clone(),
                self.node.clone(),
                rx,
                self.lost.clone(),
            ));
        }
        tokio::spawn(subscriber(
            self.client.clone(),
            self.channel.clone(),
            self.node.clone(),
            self.hub.clone(),
            store,
        ));
    }
}

impl Bus for RedisBus {
    fn publish(&self, msg: BusMessage) {
        let wire = encode(&self.node, &msg);
        self.hub.apply(msg);
        if self.tx.try_send(wire).is_err() {
            metrics::counter!("safestream_bus_dropped_total").increment(1);
            self.lost.store(true, Ordering::Relaxed);
        }
    }
}

async fn backoff(attempt: &mut u32) {
    let ms = (100u64 << (*attempt).min(5)).min(3000);
    *attempt += 1;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn publisher(
    client: redis::Client,
    channel: String,
    node: String,
    mut rx: mpsc::Receiver<String>,
    lost: Arc<AtomicBool>,
) {
    let mut attempt = 0;
    let mut batch: Vec<String> = Vec::with_capacity(PIPELINE);
    loop {
        let mut conn = match client.get_multiplexed_async_connection().await {
            Ok(c) => c,
            Err(e) => {
                if attempt == 0 {
                    tracing::warn!(error = %e, "bus: cannot connect to Redis to publish; retrying");
                }
                lost.store(true, Ordering::Relaxed);
                // Messages queued meanwhile are stale by the time Redis is back: drop them
                // (the catch-up below replaces them).
                while rx.try_recv().is_ok() {}
                backoff(&mut attempt).await;
                continue;
            }
        };
        attempt = 0;
        loop {
            if lost.swap(false, Ordering::Relaxed) {
                let m = serde_json::to_string(&Wire {
                    n: node.clone(),
                    m: WireMsg::CatchUp,
                })
                .unwrap_or_default();
                let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(m)
                    .query_async(&mut conn)
                    .await;
                if sent.is_err() {
                    lost.store(true, Ordering::Relaxed);
                    break;
                }
                tracing::info!("bus: published a catch-up after lost messages");
            }
            let first = match tokio::time::timeout(BEAT, rx.recv()).await {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(_) => serde_json::to_string(&Wire {
                    n: node.clone(),
                    m: WireMsg::Beat,
                })
                .unwrap_or_default(),
            };
            batch.push(first);
            while batch.len() < PIPELINE {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut pipe = redis::pipe();
            for m in batch.drain(..) {
                pipe.cmd("PUBLISH").arg(&channel).arg(m).ignore();
            }
            let res: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
            if let Err(e) = res {
                tracing::warn!(error = %e, "bus: publishing failed; will catch up");
                metrics::counter!("safestream_bus_publish_errors_total").increment(1);
                lost.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
}

async fn subscriber(
    client: redis::Client,
    channel: String,
    node: String,
    hub: Arc<Hub>,
    store: Arc<dyn super::DeviceCache>,
) {
    let mut attempt = 0;
    let mut subscribed_before = false;
    loop {
        let pubsub = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let ps = match pubsub.await {
            Ok(ps) => ps,
            Err(e) => {
                if attempt == 0 {
                    tracing::warn!(error = %e, "bus: cannot subscribe on Redis; retrying");
                }
                backoff(&mut attempt).await;
                continue;
            }
        };
        attempt = 0;
        // Whatever was published while we were away (or, the first time, before the
        // subscription took effect, while sockets were already being accepted) is lost to us:
        // catch up.
        if subscribed_before {
            tracing::info!("bus: re-subscribed; catching up this node's sockets");
        }
        subscribed_before = true;
        store.forget_all_devices();
        hub.catch_up_all();
        let mut stream = ps.into_on_message();
        loop {
            let msg = match tokio::time::timeout(SILENT, stream.next()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!("bus: nothing heard from Redis for 15 s; reconnecting");
                    break;
                }
            };
            match decode(&node, msg.get_payload_bytes()) {
                Some(Received::Msg(m)) => {
                    // A rotation started elsewhere changed the device's row too: this
                    // node's cache would say nothing is pending (`rotation_at_connect`).
                    if let BusMessage::RevokeDevice { device_id }
                    | BusMessage::TokenPromoted { device_id, .. }
                    | BusMessage::RotationPending { device_id, .. } = &m
                    {
                        store.forget_device(device_id);
                    }
                    hub.apply(m);
                }
                Some(Received::CatchUp) => {
                    store.forget_all_devices();
                    hub.catch_up_all();
                }
                None => {}
            }
        }
        tracing::warn!("bus: the Redis subscription ended; reconnecting");
        metrics::counter!("safestream_bus_resubscribes_total").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_own_messages_ignored() {
        let mut f = OutFrame::event("command:new", None, &serde_json::json!({"a": "\"x\""}));
        f.command = Some(CommandMeta {
            id: "c1".into(),
            expires_at: 5,
            created_at: 3,
        });
        let msg = BusMessage::deliver("device:d".into(), Arc::new(f));
        let w = encode("n1", &msg);
        assert!(decode("n1", w.as_bytes()).is_none());
        match decode("n2", w.as_bytes()) {
            Some(Received::Msg(BusMessage::Deliver { room, frame })) => {
                assert_eq!(room, "device:d");
                assert!(frame.text.as_str().contains("command:new"));
                let c = frame.command.as_ref().unwrap();
                assert_eq!((c.id.as_str(), c.expires_at, c.created_at), ("c1", 5, 3));
            }
            _ => panic!("not decoded"),
        }
        let r = encode(
            "n1",
            &BusMessage::RevokeDevice {
                device_id: "d".into(),
            },
        );
        assert!(matches!(
            decode("n2", r.as_bytes()),
            Some(Received::Msg(BusMessage::RevokeDevice { .. }))
        ));
        let p = encode(
            "n1",
            &BusMessage::TokenPromoted {
                device_id: "d".into(),
                gen: 3,
            },
        );
        assert!(matches!(
            decode("n2", p.as_bytes()),
            Some(Received::Msg(BusMessage::TokenPromoted { device_id, gen: 3 })) if device_id == "d"
        ));
        let rot = encode(
            "n1",
            &BusMessage::RotationPending {
                device_id: "d".into(),
                gen: 2,
                issued_at: 1_700_000_000_000,
            },
        );
        assert!(!rot.contains("token"), "{rot}");
        assert!(matches!(
            decode("n2", rot.as_bytes()),
            Some(Received::Msg(BusMessage::RotationPending { device_id, gen: 2, issued_at: 1_700_000_000_000 }))
                if device_id == "d"
        ));
        assert!(decode("n2", b"not json").is_none());
    }
}
