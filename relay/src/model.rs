//! Domain types, their JSON shapes, and input validation shared by REST and WebSocket.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

/// Milliseconds since the Unix epoch, the relay's one time representation in storage.
pub type Millis = i64;

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T19:30:00.000Z`.
pub fn rfc3339(ms: Millis) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time into milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

fn opt_rfc3339(ms: Option<Millis>) -> Option<String> {
    ms.map(rfc3339)
}

/// The command types the design names.
pub const COMMAND_TYPES: &[&str] = &[
    "PAUSE",
    "RESUME",
    "LOCK_DEVICE",
    "UNLOCK_DEVICE",
    "SHOW_MESSAGE",
];

/// The notification types the design names.
pub const NOTIFICATION_TYPES: &[&str] = &[
    "SCREEN_TIME_LIMIT",
    "RESTRICTED_CONTENT",
    "DEVICE_PAIRING",
    "COMMAND_EXECUTED",
    "COMMAND_FAILED",
];

/// Where a command is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// Accepted, not yet written to any device socket.
    Pending,
    /// Written to at least one device socket (or listed by a device over HTTPS).
    Delivered,
    /// A device ran it.
    Executed,
    /// A device could not run it.
    Failed,
    /// Its `expiresAt` passed before any device acknowledged it.
    Expired,
}

impl CommandStatus {
    /// The wire / storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "PENDING",
            CommandStatus::Delivered => "DELIVERED",
            CommandStatus::Executed => "EXECUTED",
            CommandStatus::Failed => "FAILED",
            CommandStatus::Expired => "EXPIRED",
        }
    }
    /// Parses the wire / storage spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => CommandStatus::Pending,
            "DELIVERED" => CommandStatus::Delivered,
            "EXECUTED" => CommandStatus::Executed,
            "FAILED" => CommandStatus::Failed,
            "EXPIRED" => CommandStatus::Expired,
            _ => return None,
        })
    }
    /// Whether the command still waits for a device.
    pub fn is_open(self) -> bool {
        matches!(self, CommandStatus::Pending | CommandStatus::Delivered)
    }
}

/// A child, as the main app knows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Child {
    /// The main app's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Daily screen-time limit in minutes; `None` = no limit.
    pub daily_limit_minutes: Option<i64>,
    /// IANA time zone that decides what "today" is.
    pub timezone: String,
    /// User ids of the parents who may act on this child.
    pub guardians: Vec<String>,
    /// When the relay first saw it.
    #[serde(serialize_with = "ser_ms")]
    pub created_at: Millis,
    /// When it last changed.
    #[serde(serialize_with = "ser_ms")]
    pub updated_at: Millis,
}

/// One install of the child app.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Relay-issued id.
    pub id: String,
    /// The child it belongs to.
    pub child_id: String,
    /// Display name.
    pub name: String,
    /// When it was registered.
    #[serde(serialize_with = "ser_ms")]
    pub created_at: Millis,
    /// Revoked devices are refused everywhere.
    pub revoked: bool,
    /// Last time a socket of it ended (live presence is tracked in memory).
    #[serde(serialize_with = "ser_opt_ms")]
    pub last_seen: Option<Millis>,
}

/// A remote command from a parent to a child's devices.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    /// Relay-issued id.
    pub id: String,
    /// Target child.
    pub child_id: String,
    /// Target device, or `None` for every device of the child.
    pub device_id: Option<String>,
    /// One of [`COMMAND_TYPES`].
    pub command_type: String,
    /// Free-form JSON object for the device.
    pub payload: Value,
    /// Lifecycle state.
    #[serde(serialize_with = "ser_status")]
    pub status: CommandStatus,
    /// The parent who sent it.
    pub created_by: String,
    /// Creation time.
    #[serde(serialize_with = "ser_ms")]
    pub created_at: Millis,
    /// After this it is never delivered and becomes `EXPIRED`.
    #[serde(serialize_with = "ser_ms")]
    pub expires_at: Millis,
    /// First delivery to a device.
    #[serde(serialize_with = "ser_opt_ms")]
    pub delivered_at: Option<Millis>,
    /// When a device acknowledged it.
    #[serde(serialize_with = "ser_opt_ms")]
    pub executed_at: Option<Millis>,
    /// The device's error text for `FAILED`, `"expired"` for `EXPIRED`.
    pub error: Option<String>,
    /// The device that acknowledged it (or first received it).
    pub ack_device_id: Option<String>,
}

impl Command {
    /// The `command:new` data a device receives.
    pub fn device_frame_data(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "commandType": self.command_type,
            "payload": self.payload,
            "expiresAt": rfc3339(self.expires_at),
            "childId": self.child_id,
            "deviceId": self.device_id,
            "createdAt": rfc3339(self.created_at),
        })
    }

    /// The `command:status` data a parent receives.
    pub fn status_frame_data(&self) -> Value {
        serde_json::json!({
            "commandId": self.id,
            "status": self.status.as_str(),
            "deviceId": self.ack_device_id,
            "executedAt": opt_rfc3339(self.executed_at),
            "error": self.error,
            "childId": self.child_id,
        })
    }

    /// The `command:sent` data a parent receives.
    pub fn sent_frame_data(&self) -> Value {
        serde_json::json!({
            "commandId": self.id,
            "status": self.status.as_str(),
            "childId": self.child_id,
            "deviceId": self.device_id,
            "commandType": self.command_type,
            "expiresAt": rfc3339(self.expires_at),
        })
    }
}

/// A notification for one parent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Relay-issued id.
    pub id: String,
    /// The parent it is for (not sent on the wire inside `notification:new`).
    #[serde(skip)]
    pub user_id: String,
    /// One of [`NOTIFICATION_TYPES`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Short title.
    pub title: String,
    /// Body text.
    pub message: String,
    /// Free-form JSON object.
    pub metadata: Value,
    /// Creation time.
    #[serde(serialize_with = "ser_ms")]
    pub created_at: Millis,
    /// Whether the parent marked it read.
    pub read: bool,
}

fn ser_ms<S: serde::Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

fn ser_opt_ms<S: serde::Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

fn ser_status<S: serde::Serializer>(st: &CommandStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(st.as_str())
}

// ---- validation helpers -------------------------------------------------------------------

/// Checks an id given by a client (child ids are the main app's; relay ids are UUIDs):
/// 1–128 characters of `[A-Za-z0-9_.:-]`.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Fails with 400 unless `s` is a [`valid_id`].
pub fn check_id(what: &str, s: &str) -> Result<(), ApiError> {
    if valid_id(s) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} must be 1-128 characters of A-Z a-z 0-9 _ . : -"
        )))
    }
}

/// A required string field of an object body, trimmed length within `1..=max` chars.
pub fn req_str(body: &Value, field: &str, max: usize) -> Result<String, ApiError> {
    match body.get(field) {
        Some(Value::String(s)) => check_len(field, s, 1, max).map(|_| s.clone()),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be a string"))),
        None => Err(ApiError::bad_request(format!("{field} is required"))),
    }
}

/// An optional string field (`null` counts as absent), length within `min..=max` chars.
pub fn opt_str(
    body: &Value,
    field: &str,
    min: usize,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => check_len(field, s, min, max).map(|_| Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be a string"))),
    }
}

fn check_len(field: &str, s: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n < min || n > max || (min > 0 && s.trim().is_empty()) {
        return Err(ApiError::bad_request(format!(
            "{field} must be {min}-{max} characters"
        )));
    }
    if s.chars().any(|c| c == '\0') {
        return Err(ApiError::bad_request(format!(
            "{field} must not contain NUL"
        )));
    }
    Ok(())
}

/// An optional integer field within `min..=max`; `Ok(None)` when absent.
pub fn opt_int(body: &Value, field: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    match body.get(field) {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!(
                "{field} must be an integer from {min} to {max}"
            ))),
        },
    }
}

/// An optional JSON object field of at most `max_bytes` serialized; `{}` when absent or null.
pub fn opt_object(body: &Value, field: &str, max_bytes: usize) -> Result<Value, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => {
            if v.to_string().len() > max_bytes {
                Err(ApiError::bad_request(format!(
                    "{field} must be at most {max_bytes} bytes of JSON"
                )))
            } else {
                Ok(v.clone())
            }
        }
        Some(_) => Err(ApiError::bad_request(format!("{field} must be an object"))),
    }
}

/// Fails with 400 unless the body is a JSON object.
pub fn require_object(body: &Value) -> Result<(), ApiError> {
    if body.is_object() {
        Ok(())
    } else {
        Err(ApiError::bad_request("the body must be a JSON object"))
    }
}

/// Fails with 400 if the object has a field not in `allowed` (typos are errors, not no-ops).
pub fn only_fields(body: &Value, allowed: &[&str]) -> Result<(), ApiError> {
    if let Some(obj) = body.as_object() {
        if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "unknown field {:?}; allowed: {}",
                truncate(k, 40),
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Cuts a string for safe inclusion in an error message.
pub fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Parses an IANA time zone name.
pub fn parse_tz(name: &str) -> Option<chrono_tz::Tz> {
    name.parse::<chrono_tz::Tz>().ok()
}

/// The calendar day (`YYYY-MM-DD`) of `ms` in time zone `tz`.
pub fn day_in(tz: &str, ms: Millis) -> String {
    let tz = parse_tz(tz).unwrap_or(chrono_tz::UTC);
    let t = Utc
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    t.with_timezone(&tz).format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids() {
        assert!(valid_id("child-1"));
        assert!(valid_id("a:b.c_d"));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert!(!valid_id("x/../y"));
        assert!(!valid_id(&"a".repeat(129)));
    }

    #[test]
    fn days_follow_the_time_zone() {
        // 2026-11-25T23:30Z is already the 26th in Paris and still the 25th in New York.
        let ms = parse_rfc3339("2026-11-25T23:30:00Z").unwrap();
        assert_eq!(day_in("Europe/Paris", ms), "2026-11-26");
        assert_eq!(day_in("America/New_York", ms), "2026-11-25");
        assert_eq!(day_in("UTC", ms), "2026-11-25");
    }

    #[test]
    fn field_checks() {
        let b = json!({"name": "x", "n": 5, "o": {"a": 1}, "bad": 3});
        assert_eq!(req_str(&b, "name", 10).unwrap(), "x");
        assert!(req_str(&b, "missing", 10).is_err());
        assert!(req_str(&b, "n", 10).is_err());
        assert_eq!(opt_int(&b, "n", 0, 10).unwrap(), Some(5));
        assert!(opt_int(&b, "n", 6, 10).is_err());
        assert!(opt_object(&b, "o", 100).is_ok());
        assert!(opt_object(&b, "o", 3).is_err());
        assert!(only_fields(&b, &["name", "n", "o"]).is_err());
        assert!(only_fields(&b, &["name", "n", "o", "bad"]).is_ok());
        assert!(opt_str(&json!({"s": "  "}), "s", 1, 10).is_err());
    }

    #[test]
    fn times_round_trip() {
        let ms = 1_795_000_000_123;
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert!(rfc3339(ms).ends_with('Z'));
    }
}
