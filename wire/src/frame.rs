//! The socket frame envelope and the data of the protocol's own frames.
//!
//! Every frame is a JSON text message `{"event": "<name>", "seq"?: N, "data": ...}`; `seq` is
//! set on the parent events that are stored for resume (see `docs/protocol.md`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One socket frame. `D` is the data's type; [`Value`] when it is not known yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de> + Default"))]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Frame<D = Value> {
    /// The event name (see [`crate::event`]).
    pub event: String,
    /// Resume position of a stored parent event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub seq: Option<i64>,
    /// The event's data (`null` when a client leaves it out).
    #[serde(default)]
    pub data: D,
}

impl<D: Serialize> Frame<D> {
    /// A frame without a resume position.
    pub fn new(event: &str, data: D) -> Self {
        Frame {
            event: event.to_owned(),
            seq: None,
            data,
        }
    }

    /// The frame's JSON text.
    pub fn to_json(&self) -> String {
        // Serializing strings, numbers and `Value`s cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `auth` data: the first client frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Auth {
    /// A parent JWT or a device token.
    pub token: String,
    /// Parents: the highest `seq` processed, to replay what came after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub last_seq: Option<i64>,
}

/// `auth:refresh` data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AuthRefresh {
    /// The new token, for the same user or device.
    pub token: String,
}

/// `auth:refreshed` data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AuthRefreshed {
    /// When the new token expires (RFC 3339), or `null` when it does not.
    pub expires_at: Option<String>,
}

/// `auth:rotate` data (relay → device): the device's next token. The device stores it
/// durably, then sends it in `auth:refresh`; from that first use on, older tokens of the
/// device are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AuthRotate {
    /// The new device token.
    pub token: String,
}

/// `ready` data for a parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ParentReady {
    /// `"parent"`.
    pub role: String,
    /// The parent's user id.
    pub user_id: String,
    /// Seconds between the relay's pings.
    #[cfg_attr(test, ts(as = "f64"))]
    pub heartbeat_sec: u64,
    /// The newest event position the relay knows for this user.
    #[cfg_attr(test, ts(as = "f64"))]
    pub seq: i64,
    /// Whether the events after `lastSeq` were replayed.
    pub resumed: bool,
}

/// `ready` data for a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DeviceReady {
    /// `"device"`.
    pub role: String,
    /// The device.
    pub device_id: String,
    /// Its child.
    pub child_id: String,
    /// Seconds between the relay's pings.
    #[cfg_attr(test, ts(as = "f64"))]
    pub heartbeat_sec: u64,
    /// The relay's clock when it sent this (RFC 3339): the agent judges command expiry by
    /// it plus its own monotonic time since, never by the device's wall clock.
    pub server_time: String,
}

/// `resync` data: refetch over REST, then continue after `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Resync {
    /// Why (`history_gap`).
    pub reason: String,
    /// The position to continue from.
    #[cfg_attr(test, ts(as = "f64"))]
    pub seq: i64,
}

/// `error` frame data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ErrorData {
    /// See [`crate::error::frame`].
    pub code: String,
    /// Human-readable.
    pub message: String,
}

/// `heartbeat` data, both ways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Heartbeat {
    /// Seconds between pings, from the relay's `heartbeatSec` to 600.
    #[cfg_attr(test, ts(as = "f64"))]
    pub interval_sec: u64,
}

/// Longest `currentVideo` a device may report (bytes of JSON as sent).
pub const MAX_CURRENT_VIDEO_BYTES: usize = 2048;

/// `device:status` sent by a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DeviceStatusReport {
    /// Whether a video is playing.
    #[serde(default)]
    pub active_viewing: bool,
    /// An object or a string of at most 2 KiB, or `null`.
    #[serde(default)]
    #[cfg_attr(test, ts(type = "Record<string, unknown> | string | null"))]
    pub current_video: Value,
}

/// `device:status` sent to guardians: a device's presence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DeviceStatus {
    /// The device.
    pub device_id: String,
    /// Its child.
    pub child_id: String,
    /// Whether a socket of it is open.
    pub online: bool,
    /// Whether a video is playing.
    pub active_viewing: bool,
    /// What it reported, or `null`.
    #[cfg_attr(test, ts(type = "Record<string, unknown> | string | null"))]
    pub current_video: Value,
    /// When its last socket ended (RFC 3339), when offline.
    pub last_seen: Option<String>,
}

/// `screentime:alert` data: a child passed the daily limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ScreentimeAlert {
    /// The child.
    pub child_id: String,
    /// Its name.
    pub child_name: String,
    /// Minutes used today.
    #[cfg_attr(test, ts(as = "f64"))]
    pub minutes_used: i64,
    /// The daily limit.
    #[cfg_attr(test, ts(as = "f64"))]
    pub limit: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_parse_with_and_without_data_and_seq() {
        let f: Frame = serde_json::from_str(r#"{"event":"ping"}"#).unwrap();
        assert_eq!(f.event, "ping");
        assert_eq!(f.data, Value::Null);
        assert_eq!(f.seq, None);
        let f: Frame = serde_json::from_str(r#"{"event":"x","seq":7,"data":{"a":1}}"#).unwrap();
        assert_eq!(f.seq, Some(7));
        assert_eq!(f.data["a"], 1);
        assert!(serde_json::from_str::<Frame>(r#"{"data":1}"#).is_err());
        assert!(serde_json::from_str::<Frame>(r#"{"event":5}"#).is_err());
    }

    #[test]
    fn envelopes_serialize_seq_only_when_set() {
        let text = Frame::new("pong", serde_json::json!(1)).to_json();
        assert_eq!(text, r#"{"event":"pong","data":1}"#);
        let mut f = Frame::new("command:status", serde_json::json!({}));
        f.seq = Some(3);
        assert_eq!(
            f.to_json(),
            r#"{"event":"command:status","seq":3,"data":{}}"#
        );
    }
}
