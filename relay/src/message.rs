//! What travels on the [`Bus`](crate::bus::Bus) and into the [`Hub`](crate::hub::Hub)'s
//! mailboxes: frames ready to write ([`OutFrame`]), messages addressed to a room
//! ([`BusMessage`]), and the room names ([`room`]).
//!
//! Its own module so that the bus (which hands messages to the hub) and the hub (which
//! stores and writes them) both depend on it and not on each other.

use std::sync::Arc;

use serde_json::Value;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::model::{Command, Millis};

/// A frame ready to write to sockets, shared by every recipient of a fan-out.
#[derive(Debug)]
pub struct OutFrame {
    /// The serialized `{"event", "data", "seq"?}` text.
    pub text: Utf8Bytes,
    /// Resume position, for parent events that are stored.
    pub seq: Option<i64>,
    /// Set for `command:new`: lets the socket skip expired commands and record delivery.
    pub command: Option<CommandMeta>,
}

/// What a device socket needs to know about a `command:new` frame it writes.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    /// Command id.
    pub id: String,
    /// Never written to a socket at or after this time.
    pub expires_at: Millis,
    /// For the delivery-latency histogram.
    pub created_at: Millis,
}

impl OutFrame {
    /// The `command:new` frame for a command's devices, with the metadata sockets need.
    pub fn command_new(c: &Command) -> Arc<OutFrame> {
        let data = serde_json::to_string(&c.device_frame()).unwrap_or_default();
        let mut f = OutFrame::event_json(wire::event::COMMAND_NEW, None, &data);
        f.command = Some(CommandMeta {
            id: c.id.clone(),
            expires_at: c.expires_at,
            created_at: c.created_at,
        });
        Arc::new(f)
    }

    /// Builds `{"event": name, "seq"?: seq, "data": data}`.
    pub fn event(name: &str, seq: Option<i64>, data: &Value) -> OutFrame {
        Self::event_json(name, seq, &data.to_string())
    }

    /// [`OutFrame::event`] with `data` already serialized (`data_json` must be one JSON
    /// value, as `Value::to_string` gives): the store logs that text and sends the same.
    pub fn event_json(name: &str, seq: Option<i64>, data_json: &str) -> OutFrame {
        // Appended piece by piece into one buffer of the right size (`format!` cost ~2,000
        // instructions per frame, four frames per command).
        use std::io::Write;
        let mut buf = Vec::with_capacity(name.len() + data_json.len() + 48);
        buf.extend_from_slice(br#"{"event":"#);
        // Writing a `&str` to a `Vec` does not fail.
        let _ = serde_json::to_writer(&mut buf, name);
        if let Some(seq) = seq {
            let _ = write!(buf, r#","seq":{seq}"#);
        }
        buf.extend_from_slice(br#","data":"#);
        buf.extend_from_slice(data_json.as_bytes());
        buf.push(b'}');
        // UTF-8: JSON text and `&str`s, joined.
        let text = String::from_utf8(buf).unwrap_or_default();
        OutFrame {
            text: Utf8Bytes::from(text),
            seq,
            command: None,
        }
    }
}

/// A message for the sockets of one room, or a control message for every node.
#[derive(Debug, Clone)]
pub enum BusMessage {
    /// Write `frame` to every socket in `room`.
    Deliver {
        /// `user:<id>`, `child:<id>`, `device:<id>` or `admins`.
        room: String,
        /// The frame, shared.
        frame: Arc<OutFrame>,
    },
    /// Close every socket of a revoked device (close 4403).
    RevokeDevice {
        /// The revoked device.
        device_id: String,
    },
    /// A device's pending token generation became current: forget the device's cached
    /// state and close its sockets that use an older generation (close 4401).
    TokenPromoted {
        /// The device.
        device_id: String,
        /// Its current generation now.
        gen: i64,
    },
    /// A token rotation of the device is pending (just started, or asked for again): every
    /// node hands `auth:rotate` to the device's sockets it holds, deriving the token itself
    /// from the generation and its issue time (every node has the signing key), so no token
    /// travels on the bus. Nodes also forget the device's cached state (it changed).
    RotationPending {
        /// The device.
        device_id: String,
        /// The pending generation.
        gen: i64,
        /// When it was issued (ms).
        issued_at: Millis,
    },
}

impl BusMessage {
    /// Shorthand for [`BusMessage::Deliver`].
    pub fn deliver(room: String, frame: Arc<OutFrame>) -> BusMessage {
        BusMessage::Deliver { room, frame }
    }
}
/// Room names.
pub mod room {
    /// A parent's sockets.
    pub fn user(id: &str) -> String {
        format!("user:{id}")
    }
    /// Every device socket of a child.
    pub fn child(id: &str) -> String {
        format!("child:{id}")
    }
    /// One device's sockets.
    pub fn device(id: &str) -> String {
        format!("device:{id}")
    }
    /// Admin parents' sockets.
    pub const ADMINS: &str = "admins";
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frames_are_the_json_they_describe() {
        let data = serde_json::json!({"commandId": "c\"1", "n": [1, 2], "s": "é\n"});
        for seq in [None, Some(7)] {
            let f = OutFrame::event("command:status", seq, &data);
            let v: Value = serde_json::from_str(f.text.as_str()).unwrap();
            assert_eq!(v["event"], "command:status");
            assert_eq!(v["data"], data);
            assert_eq!(v.get("seq").and_then(Value::as_i64), seq);
            assert_eq!(f.seq, seq);
        }
        // An event name that needs escaping stays one string.
        let f = OutFrame::event("a\"b", None, &Value::Null);
        let v: Value = serde_json::from_str(f.text.as_str()).unwrap();
        assert_eq!(v["event"], "a\"b");
    }
}
