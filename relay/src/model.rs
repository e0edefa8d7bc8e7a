//! The relay's domain types (times as [`Millis`], as stored) and their wire views.
//!
//! What these look like on the wire is the `wire` crate's business: each type serializes
//! through its view there ([`wire::command::CommandView`], ...), and the frame data a command
//! produces (`command:new`, `command:sent`, `command:status`) is built here from those types.
//! Request validation lives in `wire::rest` / `wire::validate`.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use wire::command::{CommandNew, CommandSent, CommandStatusData, CommandView};
use wire::records::{ChildView, DeviceView, NotificationView};

/// Milliseconds since the Unix epoch, the relay's one time representation in storage.
pub type Millis = i64;

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T19:30:00.000Z`.
pub fn rfc3339(ms: Millis) -> String {
    let mut buf = [0u8; 24];
    match Rfc3339(ms).write(&mut buf) {
        Some(text) => text.to_owned(),
        None => rfc3339_chrono(ms),
    }
}

/// [`rfc3339`] as chrono writes it (years past four digits with a sign and more digits).
fn rfc3339_chrono(ms: Millis) -> String {
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

pub use wire::command::{CommandStatus, CommandType};

/// A child, as the main app knows it.
#[derive(Debug, Clone)]
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
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
}

/// One install of the child app.
#[derive(Debug, Clone)]
pub struct Device {
    /// Relay-issued id.
    pub id: String,
    /// The child it belongs to.
    pub child_id: String,
    /// Display name.
    pub name: String,
    /// When it was registered.
    pub created_at: Millis,
    /// Revoked devices are refused everywhere.
    pub revoked: bool,
    /// Last time a socket of it ended (live presence is tracked in memory).
    pub last_seen: Option<Millis>,
}

/// A remote command from a parent to a child's devices.
#[derive(Debug, Clone)]
pub struct Command {
    /// Relay-issued id.
    pub id: String,
    /// Target child.
    pub child_id: String,
    /// Target device, or `None` for every device of the child.
    pub device_id: Option<String>,
    /// What to do: a [`CommandType`] when it was created; kept as text so a relay reads back
    /// a type a newer relay created (a rolling deploy, a rollback) instead of failing.
    pub command_type: String,
    /// Free-form JSON object for the device.
    pub payload: Value,
    /// Lifecycle state.
    pub status: CommandStatus,
    /// The parent who sent it.
    pub created_by: String,
    /// Creation time.
    pub created_at: Millis,
    /// After this it is never delivered and becomes `EXPIRED`.
    pub expires_at: Millis,
    /// First delivery to a device.
    pub delivered_at: Option<Millis>,
    /// When a device acknowledged it.
    pub executed_at: Option<Millis>,
    /// The device's error text for `FAILED`, `"expired"` for `EXPIRED`.
    pub error: Option<String>,
    /// The device that acknowledged it (or first received it).
    pub ack_device_id: Option<String>,
}

impl Command {
    /// The `command:new` data a device receives.
    pub fn device_frame(&self) -> CommandNew {
        CommandNew {
            id: self.id.clone(),
            command_type: self.command_type.clone(),
            payload: self.payload.clone(),
            expires_at: rfc3339(self.expires_at),
            child_id: self.child_id.clone(),
            device_id: self.device_id.clone(),
            created_at: rfc3339(self.created_at),
        }
    }

    /// The `command:status` data a parent receives.
    pub fn status_frame(&self) -> CommandStatusData {
        CommandStatusData {
            command_id: self.id.clone(),
            status: self.status,
            device_id: self.ack_device_id.clone(),
            executed_at: opt_rfc3339(self.executed_at),
            error: self.error.clone(),
            child_id: self.child_id.clone(),
        }
    }

    /// The `command:sent` data a parent receives.
    pub fn sent_frame(&self) -> CommandSent {
        CommandSent {
            command_id: self.id.clone(),
            status: self.status,
            child_id: self.child_id.clone(),
            device_id: self.device_id.clone(),
            command_type: self.command_type.clone(),
            expires_at: rfc3339(self.expires_at),
        }
    }

    /// [`Command::device_frame`] as JSON.
    pub fn device_frame_data(&self) -> Value {
        to_value(&self.device_frame())
    }

    /// [`Command::status_frame`] as JSON.
    pub fn status_frame_data(&self) -> Value {
        to_value(&self.status_frame())
    }

    /// [`Command::sent_frame`] as JSON.
    pub fn sent_frame_data(&self) -> Value {
        to_value(&self.sent_frame())
    }

    /// The REST view.
    pub fn view(&self) -> CommandView {
        CommandView {
            id: self.id.clone(),
            child_id: self.child_id.clone(),
            device_id: self.device_id.clone(),
            command_type: self.command_type.clone(),
            payload: self.payload.clone(),
            status: self.status,
            created_by: self.created_by.clone(),
            created_at: rfc3339(self.created_at),
            expires_at: rfc3339(self.expires_at),
            delivered_at: opt_rfc3339(self.delivered_at),
            executed_at: opt_rfc3339(self.executed_at),
            error: self.error.clone(),
            ack_device_id: self.ack_device_id.clone(),
        }
    }
}

/// Serializes as [`Command::view`] does, field for field, but borrowing: no string
/// copied, no time formatted into a `String` (the view cost ~12,000 instructions per answer,
/// two answers per command). `a_command_serializes_as_its_view` keeps the two the same.
impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut v = s.serialize_struct("CommandView", 13)?;
        v.serialize_field("id", &self.id)?;
        v.serialize_field("childId", &self.child_id)?;
        v.serialize_field("deviceId", &self.device_id)?;
        v.serialize_field("commandType", &self.command_type)?;
        v.serialize_field("payload", &self.payload)?;
        v.serialize_field("status", &self.status)?;
        v.serialize_field("createdBy", &self.created_by)?;
        v.serialize_field("createdAt", &Rfc3339(self.created_at))?;
        v.serialize_field("expiresAt", &Rfc3339(self.expires_at))?;
        v.serialize_field("deliveredAt", &self.delivered_at.map(Rfc3339))?;
        v.serialize_field("executedAt", &self.executed_at.map(Rfc3339))?;
        v.serialize_field("error", &self.error)?;
        v.serialize_field("ackDeviceId", &self.ack_device_id)?;
        v.end()
    }
}

/// A time serialized as [`rfc3339`] writes it, without building a `String` for it.
#[derive(Clone, Copy)]
struct Rfc3339(Millis);

impl Rfc3339 {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` into `buf`, digit by digit (`write!` with padded numbers
    /// cost ~3,000 instructions a time); `None` for a year past four digits, which chrono
    /// spells otherwise.
    fn write(self, buf: &mut [u8; 24]) -> Option<&str> {
        use chrono::{Datelike, Timelike};
        let t = Utc
            .timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
            .naive_utc();
        let (date, time) = (t.date(), t.time());
        let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
        *buf = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, date.month());
        put(8, 2, date.day());
        put(11, 2, time.hour());
        put(14, 2, time.minute());
        put(17, 2, time.second());
        put(20, 3, time.nanosecond() / 1_000_000);
        std::str::from_utf8(buf).ok()
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        match self.write(&mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&rfc3339_chrono(self.0)),
        }
    }
}

impl Child {
    /// The REST view.
    pub fn view(&self) -> ChildView {
        ChildView {
            id: self.id.clone(),
            name: self.name.clone(),
            daily_limit_minutes: self.daily_limit_minutes,
            timezone: self.timezone.clone(),
            guardians: self.guardians.clone(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

impl Serialize for Child {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

impl Device {
    /// The REST view.
    pub fn view(&self) -> DeviceView {
        DeviceView {
            id: self.id.clone(),
            child_id: self.child_id.clone(),
            name: self.name.clone(),
            created_at: rfc3339(self.created_at),
            revoked: self.revoked,
            last_seen: opt_rfc3339(self.last_seen),
        }
    }
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

impl Notification {
    /// The REST view, also the data of `notification:new`.
    pub fn view(&self) -> NotificationView {
        NotificationView {
            id: self.id.clone(),
            kind: self.kind.clone(),
            title: self.title.clone(),
            message: self.message.clone(),
            metadata: self.metadata.clone(),
            created_at: rfc3339(self.created_at),
            read: self.read,
        }
    }
}

impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

/// Serializes a wire type into a JSON value (these never fail: strings, numbers, values).
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A notification for one parent.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Relay-issued id.
    pub id: String,
    /// The parent it is for (not sent on the wire inside `notification:new`).
    pub user_id: String,
    /// One of [`wire::records::NotificationType`].
    pub kind: String,
    /// Short title.
    pub title: String,
    /// Body text.
    pub message: String,
    /// Free-form JSON object.
    pub metadata: Value,
    /// Creation time.
    pub created_at: Millis,
    /// Whether the parent marked it read.
    pub read: bool,
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

    /// The borrowing serializer says exactly what the wire view says, byte for byte:
    /// every optional field set or not, odd strings, times before 1970, past year 9999
    /// and out of range.
    #[test]
    fn a_command_serializes_as_its_view() {
        let base = Command {
            id: "0193-c\"1".into(),
            child_id: "kid é".into(),
            device_id: None,
            command_type: "PAUSE".into(),
            payload: serde_json::json!({"b": [1, 2.5, null], "a": "x\ny"}),
            status: CommandStatus::Pending,
            created_by: "p1".into(),
            created_at: 1_764_000_000_123,
            expires_at: 1_764_000_060_000,
            delivered_at: None,
            executed_at: None,
            error: None,
            ack_device_id: None,
        };
        let done = Command {
            device_id: Some("d1".into()),
            status: CommandStatus::Failed,
            delivered_at: Some(0),
            executed_at: Some(-1),
            error: Some("no \u{1} way".into()),
            ack_device_id: Some("d1".into()),
            created_at: 253_402_300_799_999,
            expires_at: 253_402_300_800_000,
            ..base.clone()
        };
        let odd = Command {
            created_at: i64::MAX,
            expires_at: -62_167_219_200_001,
            delivered_at: Some(i64::MIN),
            ..done.clone()
        };
        for cmd in [base, done, odd] {
            let fast = serde_json::to_string(&cmd).unwrap();
            let view = serde_json::to_string(&cmd.view()).unwrap();
            assert_eq!(fast, view);
        }
        for ms in [
            0,
            1,
            999,
            1_000,
            -1,
            -86_400_001,
            951_782_400_000,
            4_107_542_400_000,
            253_402_300_800_000,
            -62_167_219_200_001,
            i64::MAX,
        ] {
            let json = serde_json::to_string(&Rfc3339(ms)).unwrap();
            assert_eq!(json, format!("\"{}\"", rfc3339_chrono(ms)), "{ms}");
            assert_eq!(rfc3339(ms), rfc3339_chrono(ms), "{ms}");
        }
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
    fn times_round_trip() {
        let ms = 1_795_000_000_123;
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert!(rfc3339(ms).ends_with('Z'));
    }
}
