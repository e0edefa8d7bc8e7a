//! Commands: the one list of command types, their statuses, and the shapes a command takes
//! on the wire (`command:new` for devices, `command:sent` / `command:status` for guardians,
//! and the REST view).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The one list of command types: `Variant = "WIRE_NAME"`, each with its doc.
///
/// It calls the macro it is given with the list, so that a type defined elsewhere (the
/// uniffi enum in `bindings`) is generated from the same list: adding a command type is one
/// line here.
///
/// ```
/// macro_rules! names {
///     ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => { [$($wire),*] };
/// }
/// assert_eq!(wire::with_command_types!(names)[2], "LOCK_DEVICE");
/// ```
#[macro_export]
macro_rules! with_command_types {
    ($m:ident) => {
        $m! {
            /// Pause playback.
            Pause = "PAUSE",
            /// Resume playback.
            Resume = "RESUME",
            /// Lock the device.
            LockDevice = "LOCK_DEVICE",
            /// Unlock the device.
            UnlockDevice = "UNLOCK_DEVICE",
            /// Show a message (the text is in the payload).
            ShowMessage = "SHOW_MESSAGE",
        }
    };
}

macro_rules! define_command_type {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// What a parent asks a child's device to do.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(test, derive(ts_rs::TS))]
        pub enum CommandType {
            $($(#[$doc])* #[serde(rename = $wire)] $variant,)*
        }

        impl CommandType {
            /// Every command type, in the order of the list.
            pub const ALL: &'static [CommandType] = &[$(CommandType::$variant),*];

            /// The wire name (`PAUSE`, `LOCK_DEVICE`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CommandType::$variant => $wire,)*
                }
            }

            /// Parses a wire name; `None` for a type this build does not know.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some(CommandType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

with_command_types!(define_command_type);

impl CommandType {
    /// `PAUSE, RESUME, ...`: for error messages.
    pub fn list() -> String {
        Self::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where a command is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(test, derive(ts_rs::TS))]
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
    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Executed => "EXECUTED",
            Self::Failed => "FAILED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Parses the wire and storage spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => Self::Pending,
            "DELIVERED" => Self::Delivered,
            "EXECUTED" => Self::Executed,
            "FAILED" => Self::Failed,
            "EXPIRED" => Self::Expired,
            _ => return None,
        })
    }

    /// Whether the command still waits for a device.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Delivered)
    }
}

/// The status a device acknowledges a command with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum AckStatus {
    /// `EXECUTED`
    Executed,
    /// `FAILED`
    Failed,
}

impl AckStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "EXECUTED",
            Self::Failed => "FAILED",
        }
    }

    /// The command status it sets.
    pub fn status(self) -> CommandStatus {
        match self {
            Self::Executed => CommandStatus::Executed,
            Self::Failed => CommandStatus::Failed,
        }
    }
}

/// Longest error text an ack may carry (characters).
pub const MAX_ACK_ERROR_CHARS: usize = 1000;
/// Largest payload a command may carry (bytes of JSON).
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024;
/// Longest command lifetime a parent may ask for (seconds): a week.
pub const MAX_TTL_SECS: i64 = 604_800;

/// `command:new` data: a command for a device (also the items of
/// `GET /api/devices/me/commands`). Times are RFC 3339.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CommandNew {
    /// The relay's command id.
    pub id: String,
    /// What to do: a [`CommandType`], as text, so that a type this build does not know
    /// still reaches the agent (which answers it FAILED "unsupported").
    #[cfg_attr(test, ts(type = "CommandType"))]
    pub command_type: String,
    /// A JSON object (`{}` when empty).
    #[cfg_attr(test, ts(type = "Record<string, unknown>"))]
    pub payload: Value,
    /// After this it must not run.
    pub expires_at: String,
    /// The child it is for.
    pub child_id: String,
    /// The one device it is for, or `null` for every device of the child.
    pub device_id: Option<String>,
    /// When the parent sent it.
    pub created_at: String,
}

/// `command:sent` data: a guardian's command was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CommandSent {
    /// The command.
    pub command_id: String,
    /// `PENDING`.
    pub status: CommandStatus,
    /// Its child.
    pub child_id: String,
    /// Its one device, or `null` for all of the child's.
    pub device_id: Option<String>,
    /// Its type (a [`CommandType`], as text).
    #[cfg_attr(test, ts(type = "CommandType"))]
    pub command_type: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
}

/// `command:status` data: a command's status changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CommandStatusData {
    /// The command.
    pub command_id: String,
    /// `DELIVERED`, `EXECUTED`, `FAILED` or `EXPIRED`.
    pub status: CommandStatus,
    /// The device that received or acknowledged it.
    pub device_id: Option<String>,
    /// Set for `EXECUTED` / `FAILED` (RFC 3339).
    pub executed_at: Option<String>,
    /// The device's text for `FAILED`, `"expired"` for `EXPIRED`.
    pub error: Option<String>,
    /// Its child.
    pub child_id: String,
}

/// A command as the REST API shows it (`{"command": ...}`, `{"commands": [...]}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CommandView {
    /// Relay-issued id (UUIDv7: time-ordered).
    pub id: String,
    /// Target child.
    pub child_id: String,
    /// Target device, or `null` for every device of the child.
    pub device_id: Option<String>,
    /// Its type (a [`CommandType`], as text: a relay reads back a type a newer relay
    /// created without failing).
    #[cfg_attr(test, ts(type = "CommandType"))]
    pub command_type: String,
    /// A JSON object.
    #[cfg_attr(test, ts(type = "Record<string, unknown>"))]
    pub payload: Value,
    /// Where it is in its life.
    pub status: CommandStatus,
    /// The parent who sent it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// First delivery to a device.
    pub delivered_at: Option<String>,
    /// When a device acknowledged it.
    pub executed_at: Option<String>,
    /// The device's text for `FAILED`, `"expired"` for `EXPIRED`.
    pub error: Option<String>,
    /// The device that acknowledged (or first received) it.
    pub ack_device_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_types_round_trip_through_every_spelling() {
        for t in CommandType::ALL {
            assert_eq!(CommandType::parse(t.as_str()), Some(*t));
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<CommandType>(&json).unwrap(), *t);
        }
        assert_eq!(CommandType::parse("SELF_DESTRUCT"), None);
        assert_eq!(CommandType::parse("pause"), None);
        assert_eq!(
            CommandType::list(),
            "PAUSE, RESUME, LOCK_DEVICE, UNLOCK_DEVICE, SHOW_MESSAGE"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            CommandStatus::Pending,
            CommandStatus::Delivered,
            CommandStatus::Executed,
            CommandStatus::Failed,
            CommandStatus::Expired,
        ] {
            assert_eq!(CommandStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(CommandStatus::Delivered.is_open());
        assert!(!CommandStatus::Expired.is_open());
        assert_eq!(AckStatus::Failed.status(), CommandStatus::Failed);
        assert_eq!(
            serde_json::to_value(AckStatus::Executed).unwrap(),
            "EXECUTED"
        );
    }

    #[test]
    fn frames_keep_their_field_names_and_nulls() {
        let v = serde_json::to_value(CommandStatusData {
            command_id: "c".into(),
            status: CommandStatus::Expired,
            device_id: None,
            executed_at: None,
            error: Some("expired".into()),
            child_id: "k".into(),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"commandId": "c", "status": "EXPIRED", "deviceId": null,
                "executedAt": null, "error": "expired", "childId": "k"})
        );
    }
}
