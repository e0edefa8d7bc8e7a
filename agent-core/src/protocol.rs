//! WebSocket frames: parsing what the relay sends, building what the agent sends.

use serde_json::{json, Value};

use wire::event;

use crate::time::parse_rfc3339_ms;
use crate::token::Secret;

/// Largest `currentVideo` the relay accepts in `device:status`.
pub(crate) const MAX_CURRENT_VIDEO_BYTES: usize = wire::frame::MAX_CURRENT_VIDEO_BYTES;

/// A frame from the relay, as far as the agent cares.
#[derive(Debug, PartialEq)]
pub(crate) enum Inbound {
    /// `ready`, with the relay's heartbeat interval when it gave a sane one, and its clock
    /// (`serverTime`, Unix ms) when it said it.
    Ready {
        heartbeat_sec: Option<u64>,
        server_time_ms: Option<i64>,
    },
    /// `command:new` with its data.
    CommandNew(Value),
    /// `auth:rotate`: the device's next token (redacted in `Debug`); `None` when the frame
    /// carries no token string.
    AuthRotate(Option<Secret>),
    /// `error` with its code.
    Error { code: String },
    /// Anything else (pong, auth:refreshed, published events, unknown events).
    Other(String),
    /// Not a JSON object with a string `event`.
    Malformed,
}

/// Parses one text frame. Never fails: garbage is [`Inbound::Malformed`].
pub(crate) fn parse(text: &str) -> Inbound {
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(text) else {
        return Inbound::Malformed;
    };
    let Some(Value::String(event)) = obj.remove("event") else {
        return Inbound::Malformed;
    };
    let data = obj.remove("data").unwrap_or(Value::Null);
    match event.as_str() {
        event::READY => Inbound::Ready {
            heartbeat_sec: data
                .get("heartbeatSec")
                .and_then(Value::as_u64)
                .filter(|s| (1..=3600).contains(s)),
            server_time_ms: data
                .get("serverTime")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339_ms),
        },
        event::COMMAND_NEW => Inbound::CommandNew(data),
        event::AUTH_ROTATE => Inbound::AuthRotate(
            data.get("token")
                .and_then(Value::as_str)
                .map(|t| Secret(t.to_owned())),
        ),
        event::ERROR => Inbound::Error {
            code: data
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(64)
                .collect(),
        },
        _ => Inbound::Other(event.chars().take(64).collect()),
    }
}

/// The first frame: `{"event":"auth","data":{"token":...}}`.
pub(crate) fn auth(token: &str) -> String {
    json!({"event": event::AUTH, "data": {"token": token}}).to_string()
}

/// `auth:refresh` with a new token for the same device.
pub(crate) fn auth_refresh(token: &str) -> String {
    json!({"event": event::AUTH_REFRESH, "data": {"token": token}}).to_string()
}

/// `heartbeat` asking the relay to ping every `interval_sec` seconds.
pub(crate) fn heartbeat(interval_sec: u32) -> String {
    json!({"event": event::HEARTBEAT, "data": {"intervalSec": interval_sec.clamp(25, 600)}})
        .to_string()
}

/// `device:status`. `current_video` is sent as a JSON object when it is one, else as a
/// string; anything over 2 KiB is cut (strings) or dropped (objects).
pub(crate) fn device_status(active_viewing: bool, current_video: Option<&str>) -> String {
    let video = match current_video {
        None => Value::Null,
        Some(s) => match serde_json::from_str::<Value>(s) {
            // The relay measures the value as sent (re-serialized), not the host's text.
            Ok(v @ Value::Object(_)) if v.to_string().len() <= MAX_CURRENT_VIDEO_BYTES => v,
            Ok(Value::Object(_)) => {
                tracing::warn!("currentVideo object over 2 KiB; sent as null");
                Value::Null
            }
            _ => {
                // Cut so that the string as sent (quoted and escaped) fits the limit.
                let mut out = String::new();
                let mut len = 2;
                for c in s.chars() {
                    let n = match c {
                        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
                        c if (c as u32) < 0x20 => 6,
                        c => c.len_utf8(),
                    };
                    if len + n > MAX_CURRENT_VIDEO_BYTES {
                        break;
                    }
                    len += n;
                    out.push(c);
                }
                Value::String(out)
            }
        },
    };
    json!({"event": event::DEVICE_STATUS, "data": {"activeViewing": active_viewing, "currentVideo": video}})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames_and_survives_garbage() {
        assert_eq!(
            parse(r#"{"event":"ready","data":{"role":"device","heartbeatSec":25}}"#),
            Inbound::Ready {
                heartbeat_sec: Some(25),
                server_time_ms: None
            }
        );
        assert_eq!(
            parse(
                r#"{"event":"ready","data":{"heartbeatSec":-1,"serverTime":"2026-11-25T19:30:00.000Z"}}"#
            ),
            Inbound::Ready {
                heartbeat_sec: None,
                server_time_ms: Some(1_795_635_000_000)
            }
        );
        assert_eq!(
            parse(r#"{"event":"ready","data":{"serverTime":"yesterday"}}"#),
            Inbound::Ready {
                heartbeat_sec: None,
                server_time_ms: None
            }
        );
        assert!(matches!(
            parse(r#"{"event":"command:new","data":{"id":"x"}}"#),
            Inbound::CommandNew(_)
        ));
        assert_eq!(
            parse(r#"{"event":"error","data":{"code":"bad_frame"}}"#),
            Inbound::Error {
                code: "bad_frame".into()
            }
        );
        for junk in [
            "",
            "null",
            "[]",
            "{",
            r#"{"event":5}"#,
            "\u{0}",
            &"[".repeat(10_000),
        ] {
            assert_eq!(parse(junk), Inbound::Malformed, "{junk:.20}");
        }
        assert_eq!(
            parse(r#"{"event":"pong","data":1}"#),
            Inbound::Other("pong".into())
        );
    }

    #[test]
    fn parses_auth_rotate_and_redacts_its_token() {
        let f = parse(r#"{"event":"auth:rotate","data":{"token":"tok-2"}}"#);
        assert_eq!(f, Inbound::AuthRotate(Some(Secret("tok-2".into()))));
        assert!(!format!("{f:?}").contains("tok-2"));
        assert_eq!(
            parse(r#"{"event":"auth:rotate","data":{"token":5}}"#),
            Inbound::AuthRotate(None)
        );
        assert_eq!(
            parse(r#"{"event":"auth:rotate"}"#),
            Inbound::AuthRotate(None)
        );
    }

    #[test]
    fn builds_status_frames() {
        let v: Value = serde_json::from_str(&device_status(true, Some(r#"{"id":"v1"}"#))).unwrap();
        assert_eq!(v["data"]["currentVideo"]["id"], "v1");
        let v: Value = serde_json::from_str(&device_status(false, Some("Cartoons"))).unwrap();
        assert_eq!(v["data"]["currentVideo"], "Cartoons");
        let long = "é".repeat(5000);
        let v: Value = serde_json::from_str(&device_status(true, Some(&long))).unwrap();
        assert!(v["data"]["currentVideo"].as_str().unwrap().len() <= MAX_CURRENT_VIDEO_BYTES);
        // Escapes count: the value as sent stays within the relay's limit (found by the
        // agent_frame fuzz target's property).
        for nasty in [
            "\"".repeat(3000),
            "\u{1}".repeat(3000),
            format!(
                "{{{}}}",
                (0..180)
                    .map(|i| format!("\"a{i:03}\":1E2"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ] {
            let v: Value = serde_json::from_str(&device_status(true, Some(&nasty))).unwrap();
            assert!(
                v["data"]["currentVideo"].to_string().len() <= MAX_CURRENT_VIDEO_BYTES,
                "{nasty:.20}"
            );
        }
        let v: Value = serde_json::from_str(&heartbeat(5)).unwrap();
        assert_eq!(v["data"]["intervalSec"], 25);
    }
}
