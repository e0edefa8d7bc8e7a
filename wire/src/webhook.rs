//! Webhooks the relay sends to the backend (Standard Webhooks): event types and headers.
//!
//! Every body is `{"id", "type", "timestamp", "data"}`; `docs/protocol.md` ("Webhooks")
//! documents each type's data.

/// A command was created or changed status; data: the command as the REST API shows it.
pub const COMMAND_STATUS: &str = "command.status";
/// A device's first socket opened; data: as in `device:status`.
pub const DEVICE_ONLINE: &str = "device.online";
/// A device's last socket closed; data: as in `device:status`.
pub const DEVICE_OFFLINE: &str = "device.offline";
/// A parent entered a device's pairing code; the pairing awaits approval.
pub const PAIRING_REQUESTED: &str = "pairing.requested";
/// A pairing was approved and its device created.
pub const PAIRING_APPROVED: &str = "pairing.approved";
/// A device was registered (by the backend or through pairing); data: the device.
pub const DEVICE_REGISTERED: &str = "device.registered";
/// A device was revoked; data: the device.
pub const DEVICE_REVOKED: &str = "device.revoked";
/// A child reached the day's screen-time limit; data: as in `screentime:alert`.
pub const SCREENTIME_ALERT: &str = "screentime.alert";
/// A notification was created; data: the notification as the REST API shows it.
pub const NOTIFICATION_CREATED: &str = "notification.created";

/// Every event type, in the order `docs/protocol.md` lists them.
pub const TYPES: &[&str] = &[
    COMMAND_STATUS,
    DEVICE_ONLINE,
    DEVICE_OFFLINE,
    PAIRING_REQUESTED,
    PAIRING_APPROVED,
    DEVICE_REGISTERED,
    DEVICE_REVOKED,
    SCREENTIME_ALERT,
    NOTIFICATION_CREATED,
];

/// Header: the event id, the same on every attempt.
pub const HEADER_ID: &str = "webhook-id";
/// Header: when this attempt was signed, in seconds since the epoch.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header: `v1,<base64 signature>`, one per active secret, space-separated.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
