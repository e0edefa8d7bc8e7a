//! Event names of the socket protocol (`docs/protocol.md`, "WebSocket").

/// Client → relay, first frame: `{token, lastSeq?}`.
pub const AUTH: &str = "auth";
/// Client → relay: a new token for the same identity.
pub const AUTH_REFRESH: &str = "auth:refresh";
/// Relay → client: the answer to [`AUTH_REFRESH`].
pub const AUTH_REFRESHED: &str = "auth:refreshed";
/// Relay → device: a new device token to store, then to switch to with [`AUTH_REFRESH`]
/// (`docs/protocol.md`, "Device token rotation").
pub const AUTH_ROTATE: &str = "auth:rotate";
/// Relay → client: authenticated; the session starts.
pub const READY: &str = "ready";
/// Relay → parent: the replay cannot be proven complete; refetch over REST.
pub const RESYNC: &str = "resync";
/// Relay → client: a client frame was refused (see [`crate::error::frame`]).
pub const ERROR: &str = "error";
/// Client → relay: an application-level ping.
pub const PING: &str = "ping";
/// Relay → client: the answer to [`PING`].
pub const PONG: &str = "pong";
/// Both ways: ask for (and confirm) a heartbeat interval.
pub const HEARTBEAT: &str = "heartbeat";
/// Relay → device: a command to run.
pub const COMMAND_NEW: &str = "command:new";
/// Relay → guardians: a command was created.
pub const COMMAND_SENT: &str = "command:sent";
/// Relay → guardians: a command's status changed.
pub const COMMAND_STATUS: &str = "command:status";
/// Relay → parent: a notification.
pub const NOTIFICATION_NEW: &str = "notification:new";
/// Relay → guardians: a child passed the daily limit.
pub const SCREENTIME_ALERT: &str = "screentime:alert";
/// Device → relay: live status; relay → guardians: presence.
pub const DEVICE_STATUS: &str = "device:status";

/// Event names that belong to the socket protocol itself: the publish API refuses them.
pub const CONTROL: &[&str] = &[
    AUTH,
    AUTH_REFRESH,
    AUTH_REFRESHED,
    AUTH_ROTATE,
    READY,
    RESYNC,
    ERROR,
    PING,
    PONG,
    HEARTBEAT,
];
