//! Engine.IO v4 and Socket.IO v5 packets, and their translation to and from native frames.
//!
//! Only what socket.io-client 3.x/4.x sends and reads on the main namespace is accepted:
//! text packets (binary attachments are refused), the `/` namespace, events with one data
//! argument (further arguments are ignored, as a native frame has one `data`).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Engine.IO packet types (the first character of a packet).
pub mod eio {
    /// `open`: the handshake, server to client.
    pub const OPEN: u8 = b'0';
    /// `close`.
    pub const CLOSE: u8 = b'1';
    /// `ping` (the server's heartbeat, and the client's upgrade probe `2probe`).
    pub const PING: u8 = b'2';
    /// `pong`.
    pub const PONG: u8 = b'3';
    /// `message`: carries one Socket.IO packet.
    pub const MESSAGE: u8 = b'4';
    /// `upgrade`: the client switches to the probed WebSocket.
    pub const UPGRADE: u8 = b'5';
    /// `noop`: ends a pending long-poll during an upgrade.
    pub const NOOP: u8 = b'6';
}

/// Engine.IO's record separator between packets of one long-polling payload.
pub const SEPARATOR: char = '\x1e';

/// What one Engine.IO packet from the client asks for.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A pong (the answer to the server's ping).
    Pong,
    /// A Socket.IO CONNECT to the main namespace, turned into the native `auth` frame.
    Connect(String),
    /// A CONNECT to another namespace: answered with CONNECT_ERROR, nothing else happens.
    OtherNamespace(String),
    /// An EVENT, turned into a native frame; `ack` is the id the client waits on, if any.
    Event { frame: String, ack: Option<u64> },
    /// The client leaves (Socket.IO DISCONNECT or Engine.IO close).
    Leave,
    /// Nothing to do (noop, a client ping, an ACK from the client).
    Nothing,
    /// A binary packet or attachment: refused.
    Binary,
    /// Not a packet this server understands: counted as a malformed frame.
    Malformed,
}

/// Parses one Engine.IO packet from the client.
pub fn parse(packet: &str) -> Incoming {
    let bytes = packet.as_bytes();
    let Some(&kind) = bytes.first() else {
        return Incoming::Malformed;
    };
    match kind {
        eio::PONG => Incoming::Pong,
        eio::CLOSE => Incoming::Leave,
        eio::PING | eio::NOOP | eio::UPGRADE => Incoming::Nothing,
        eio::MESSAGE => parse_sio(&packet[1..]),
        b'b' => Incoming::Binary,
        _ => Incoming::Malformed,
    }
}

/// Parses a Socket.IO packet (the payload of an Engine.IO message).
fn parse_sio(p: &str) -> Incoming {
    let Some(&kind) = p.as_bytes().first() else {
        return Incoming::Malformed;
    };
    // Every packet type is one ASCII digit; anything else (a multi-byte character too) is
    // not a packet, and slicing after it would not be at a character boundary.
    if !kind.is_ascii_digit() {
        return Incoming::Malformed;
    }
    let rest = &p[1..];
    // An optional namespace `/nsp,` follows the type.
    let (nsp, rest) = if rest.starts_with('/') {
        match rest.find(',') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        }
    } else {
        ("/", rest)
    };
    match kind {
        b'0' => {
            if nsp != "/" {
                // Echoed in the answer: at most 64 bytes of it.
                let mut end = nsp.len().min(64);
                while !nsp.is_char_boundary(end) {
                    end -= 1;
                }
                return Incoming::OtherNamespace(nsp[..end].to_string());
            }
            Incoming::Connect(connect_to_auth(rest))
        }
        b'1' => {
            if nsp == "/" {
                Incoming::Leave
            } else {
                Incoming::Nothing
            }
        }
        b'2' => {
            if nsp != "/" {
                return Incoming::Malformed;
            }
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let ack = if digits > 0 {
                match rest[..digits].parse::<u64>() {
                    Ok(n) => Some(n),
                    Err(_) => return Incoming::Malformed,
                }
            } else {
                None
            };
            match event_to_frame(&rest[digits..]) {
                Some(frame) => Incoming::Event { frame, ack },
                None => Incoming::Malformed,
            }
        }
        b'3' => Incoming::Nothing,
        b'5' | b'6' => Incoming::Binary,
        _ => Incoming::Malformed,
    }
}

/// The CONNECT payload `{"token", "pid"?, "offset"?}` as the native first frame
/// `{"event":"auth","data":{"token","lastSeq"?}}`. The offset (the position of the last
/// event the client got, see [`event`]) becomes `lastSeq` only with a `pid`: that is a
/// client recovering its session. Anything unreadable gives an `auth` frame without a token,
/// which is refused with "missing token".
fn connect_to_auth(payload: &str) -> String {
    let v: Value = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(payload).unwrap_or(Value::Null)
    };
    let mut data = serde_json::Map::new();
    if let Some(t) = v.get("token").and_then(Value::as_str) {
        data.insert("token".into(), Value::String(t.to_string()));
    }
    let recovering = v.get("pid").and_then(Value::as_str).is_some();
    if recovering {
        if let Some(seq) = v
            .get("offset")
            .and_then(Value::as_str)
            .and_then(|o| o.parse::<i64>().ok())
            .filter(|n| *n >= 0)
        {
            data.insert("lastSeq".into(), Value::from(seq));
        }
    }
    serde_json::json!({ "event": wire::event::AUTH, "data": data }).to_string()
}

/// The client's private session id from a CONNECT payload (recovery), when it is one this
/// server could have issued.
pub fn connect_pid(packet: &str) -> Option<String> {
    let payload = packet.strip_prefix("40")?;
    let v: Value = serde_json::from_str(payload).ok()?;
    let pid = v.get("pid")?.as_str()?;
    (pid.len() <= 64
        && pid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| pid.to_string())
}

/// The offset a recovering client sent in its CONNECT payload (with a `pid`).
pub fn connect_offset(packet: &str) -> Option<i64> {
    let payload = packet.strip_prefix("40")?;
    let v: Value = serde_json::from_str(payload).ok()?;
    v.get("pid")?.as_str()?;
    v.get("offset")?
        .as_str()?
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
}

/// `["name", data, ...]` as a native frame `{"event":"name","data":data}`.
fn event_to_frame(args: &str) -> Option<String> {
    let args: Vec<&RawValue> = serde_json::from_str(args).ok()?;
    let name: String = serde_json::from_str(args.first()?.get()).ok()?;
    let data = args.get(1).map_or("null", |d| d.get());
    Some(format!(
        r#"{{"event":{},"data":{data}}}"#,
        Value::String(name)
    ))
}

/// A native frame as the relay writes it.
#[derive(Deserialize)]
struct Native<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
    #[serde(default)]
    seq: Option<i64>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// A native frame, read for its translation.
pub struct Frame<'a> {
    /// The event name.
    pub event: std::borrow::Cow<'a, str>,
    /// The resume position (parent events, and `ready`'s newest position).
    pub offset: Option<i64>,
    data: Option<&'a RawValue>,
}

impl<'a> Frame<'a> {
    /// Reads a native frame; `None` if it is not one.
    pub fn read(text: &'a str) -> Option<Frame<'a>> {
        let n: Native<'a> = serde_json::from_str(text).ok()?;
        Some(Frame {
            event: n.event,
            offset: n.seq,
            data: n.data,
        })
    }

    /// The frame's data, raw.
    pub fn data(&self) -> &str {
        self.data.map_or("null", |d| d.get())
    }

    /// The Engine.IO packet `42["event",data]`, with the offset as a last string argument
    /// when there is one: socket.io-client 4.6+ keeps the last such argument and sends it
    /// back on reconnection (connection state recovery).
    pub fn to_packet(&self, offset: Option<i64>) -> String {
        let name = Value::String(self.event.to_string());
        match offset {
            Some(o) => format!(r#"42[{name},{},"{o}"]"#, self.data()),
            None => format!("42[{name},{}]", self.data()),
        }
    }
}

/// The Engine.IO `open` packet.
pub fn open(
    sid: &str,
    upgrades: bool,
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    max_payload: usize,
) -> String {
    let upgrades = if upgrades { r#"["websocket"]"# } else { "[]" };
    format!(
        r#"0{{"sid":"{sid}","upgrades":{upgrades},"pingInterval":{ping_interval_ms},"pingTimeout":{ping_timeout_ms},"maxPayload":{max_payload}}}"#
    )
}

/// The Socket.IO CONNECT answer `40{"sid","pid"}`.
pub fn connected(sid: &str, pid: &str) -> String {
    format!(r#"40{{"sid":"{sid}","pid":"{pid}"}}"#)
}

/// The Socket.IO CONNECT_ERROR `44{"message","data":{"code"}}` for namespace `nsp`; the
/// client's `connect_error` fires with `message`, and `data.code` is the native close code.
pub fn connect_error(nsp: &str, message: &str, code: u16) -> String {
    let body = serde_json::json!({ "message": message, "data": { "code": code } });
    if nsp == "/" {
        format!("44{body}")
    } else {
        format!("44{nsp},{body}")
    }
}

/// An ACK with no arguments for the client's ack id.
pub fn ack(id: u64) -> String {
    format!("43{id}[]")
}

/// A random id of 20 URL-safe characters (120 bits).
pub fn random_id() -> String {
    use base64::Engine;
    let bytes: [u8; 15] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_native_frames_and_back() {
        assert_eq!(
            parse(r#"42["device:status",{"activeViewing":true}]"#),
            Incoming::Event {
                frame: r#"{"event":"device:status","data":{"activeViewing":true}}"#.into(),
                ack: None
            }
        );
        assert_eq!(
            parse(r#"4212["ping"]"#),
            Incoming::Event {
                frame: r#"{"event":"ping","data":null}"#.into(),
                ack: Some(12)
            }
        );
        let f = Frame::read(r#"{"event":"notification:new","seq":7,"data":{"a":[1,2]}}"#).unwrap();
        assert_eq!(f.offset, Some(7));
        assert_eq!(
            f.to_packet(f.offset),
            r#"42["notification:new",{"a":[1,2]},"7"]"#
        );
        let f = Frame::read(r#"{"event":"command:new","data":{"id":"x"}}"#).unwrap();
        assert_eq!(f.to_packet(None), r#"42["command:new",{"id":"x"}]"#);
    }

    #[test]
    fn connect_carries_the_token_and_the_offset_only_when_recovering() {
        let Incoming::Connect(auth) = parse(r#"40{"token":"t"}"#) else {
            panic!()
        };
        assert_eq!(auth, r#"{"data":{"token":"t"},"event":"auth"}"#);
        let Incoming::Connect(auth) = parse(r#"40{"token":"t","pid":"p","offset":"12"}"#) else {
            panic!()
        };
        assert_eq!(
            auth,
            r#"{"data":{"lastSeq":12,"token":"t"},"event":"auth"}"#
        );
        let Incoming::Connect(auth) = parse(r#"40{"token":"t","offset":"12"}"#) else {
            panic!()
        };
        assert_eq!(auth, r#"{"data":{"token":"t"},"event":"auth"}"#);
        let Incoming::Connect(auth) = parse("40") else {
            panic!()
        };
        assert_eq!(auth, r#"{"data":{},"event":"auth"}"#);
        assert_eq!(
            connect_pid(r#"40{"token":"t","pid":"abc_-1"}"#).as_deref(),
            Some("abc_-1")
        );
        assert_eq!(connect_pid(r#"40{"token":"t","pid":"a\"b"}"#), None);
        assert_eq!(
            connect_offset(r#"40{"token":"t","pid":"p","offset":"7"}"#),
            Some(7)
        );
        assert_eq!(connect_offset(r#"40{"token":"t","offset":"7"}"#), None);
        assert_eq!(
            connect_offset(r#"40{"token":"t","pid":"p","offset":"-1"}"#),
            None
        );
        let long = format!("40/{},{{}}", "é".repeat(100));
        let Incoming::OtherNamespace(nsp) = parse(&long) else {
            panic!()
        };
        assert!(nsp.len() <= 64);
        assert_eq!(
            parse("40/admin,{}"),
            Incoming::OtherNamespace("/admin".into())
        );
    }

    #[test]
    fn odd_packets_are_refused_not_panicked_on() {
        for p in [
            "",
            "4",
            "42",
            "42[",
            "42[1]",
            "42{}",
            "9",
            "4/x,2[\"a\"]",
            "42999999999999999999999[\"a\"]",
        ] {
            assert_eq!(parse(p), Incoming::Malformed, "{p:?}");
        }
        assert_eq!(parse("b4AAE="), Incoming::Binary);
        assert_eq!(
            parse("451-[\"a\",{\"_placeholder\":true,\"num\":0}]"),
            Incoming::Binary
        );
        assert_eq!(parse("41"), Incoming::Leave);
        assert_eq!(parse("1"), Incoming::Leave);
        assert_eq!(parse("3"), Incoming::Pong);
        assert_eq!(parse("6"), Incoming::Nothing);
    }
}
