//! The REST views of children, devices and notifications, and the notification types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A child, as the main app knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChildView {
    /// The main app's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Daily screen-time limit in minutes; `null` = no limit.
    #[cfg_attr(test, ts(type = "number | null"))]
    pub daily_limit_minutes: Option<i64>,
    /// IANA time zone that decides what "today" is.
    pub timezone: String,
    /// User ids of the parents who may act on this child.
    pub guardians: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// One install of the child app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DeviceView {
    /// Relay-issued id (UUIDv7).
    pub id: String,
    /// The child it belongs to.
    pub child_id: String,
    /// Display name.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// Revoked devices are refused everywhere.
    pub revoked: bool,
    /// When its last socket ended (RFC 3339).
    pub last_seen: Option<String>,
}

/// A device as `GET /api/children/{childId}/devices` lists it: the record and its live
/// presence (from any node).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DeviceListItem {
    /// The stored record (`lastSeen` is the live one while it is online).
    #[serde(flatten)]
    pub device: DeviceView,
    /// Whether a socket of it is open on any node.
    pub online: bool,
    /// What it last reported in `device:status` (false while offline).
    pub active_viewing: bool,
    /// What it last reported (an object, a string, or null): device text, show it as text.
    #[cfg_attr(test, ts(type = "Record<string, unknown> | string | null"))]
    pub current_video: Value,
}

/// `GET /api/admin/overview` (admin parents): what an operator looks at first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AdminOverview {
    /// Sockets on the node that answered.
    pub node: AdminNode,
    /// Children with commands waiting (PENDING or DELIVERED, unexpired), most first, at most 50.
    pub pending_by_child: Vec<PendingCount>,
    /// The newest FAILED and EXPIRED commands, newest first, at most 20.
    pub recent_failures: Vec<crate::command::CommandView>,
}

/// One node's sockets, in [`AdminOverview`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AdminNode {
    /// The node's id.
    pub id: String,
    /// Authenticated parent sockets.
    pub parents: u32,
    /// Authenticated device sockets.
    pub devices: u32,
}

/// Commands waiting for one child, in [`AdminOverview`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PendingCount {
    /// The child.
    pub child_id: String,
    /// PENDING or DELIVERED, unexpired.
    pub pending: u32,
}

macro_rules! define_notification_type {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// What a notification is about.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(test, derive(ts_rs::TS))]
        pub enum NotificationType {
            $($(#[$doc])* #[serde(rename = $wire)] $variant,)*
        }

        impl NotificationType {
            /// Every notification type.
            pub const ALL: &'static [NotificationType] = &[$(NotificationType::$variant),*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(NotificationType::$variant => $wire,)*
                }
            }

            /// Parses a wire name.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some(NotificationType::$variant),)*
                    _ => None,
                }
            }

            /// `SCREEN_TIME_LIMIT, ...`: for error messages.
            pub fn list() -> String {
                [$($wire),*].join(", ")
            }
        }
    };
}

define_notification_type! {
    /// A child passed the daily limit.
    ScreenTimeLimit = "SCREEN_TIME_LIMIT",
    /// A child tried to open restricted content.
    RestrictedContent = "RESTRICTED_CONTENT",
    /// A device asks to be paired.
    DevicePairing = "DEVICE_PAIRING",
    /// A command ran.
    CommandExecuted = "COMMAND_EXECUTED",
    /// A command failed.
    CommandFailed = "COMMAND_FAILED",
}

/// A notification for one parent (also the data of `notification:new`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct NotificationView {
    /// Relay-issued id (UUIDv7: newest sorts last).
    pub id: String,
    /// What it is about: a [`NotificationType`] (text, so that a relay that knows a newer
    /// type can still send it to an older client).
    #[serde(rename = "type")]
    #[cfg_attr(test, ts(type = "NotificationType"))]
    pub kind: String,
    /// Short title.
    pub title: String,
    /// Body text.
    pub message: String,
    /// A JSON object.
    #[cfg_attr(test, ts(type = "Record<string, unknown>"))]
    pub metadata: Value,
    /// RFC 3339.
    pub created_at: String,
    /// Whether the parent marked it read.
    pub read: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_types_round_trip() {
        for t in NotificationType::ALL {
            assert_eq!(NotificationType::parse(t.as_str()), Some(*t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert_eq!(NotificationType::parse("SPAM"), None);
        assert!(NotificationType::list().starts_with("SCREEN_TIME_LIMIT, RESTRICTED_CONTENT"));
    }
}
