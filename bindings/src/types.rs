//! FFI mirrors of agent-core's types (records and enums), with `From` impls both ways
//! where the host passes them in.

use agent_core as core;

/// How the agent is set up. Only `relayUrl` and `stateDir` are required.
#[derive(Clone, Debug, uniffi::Record)]
pub struct AgentConfig {
    /// The relay's base URL: `ws://host:port` or `wss://host` (a path prefix is kept).
    pub relay_url: String,
    /// Directory for the agent's state file, private to the app (created if missing):
    /// `context.filesDir` on Android, Application Support on iOS.
    pub state_dir: String,
    /// The HTTP API base URL; `null`/`nil` = the relay's host over http(s).
    #[uniffi(default = None)]
    pub api_url: Option<String>,
    /// Foreground heartbeat in seconds (25–600); `null`/`nil` keeps the relay's default.
    #[uniffi(default = None)]
    pub heartbeat_secs: Option<u32>,
    /// Heartbeat while the app is in the background (25–600).
    #[uniffi(default = 300)]
    pub background_heartbeat_secs: u32,
    /// Extra trusted CA certificates (PEM) for a self-hosted relay.
    #[uniffi(default = None)]
    pub extra_ca_pem: Option<String>,
    /// Seconds after which a command the host has not completed is acked FAILED
    /// "timeout".
    #[uniffi(default = 120)]
    pub command_timeout_secs: u64,
}

impl From<AgentConfig> for core::AgentConfig {
    fn from(c: AgentConfig) -> Self {
        let mut out = core::AgentConfig::new(c.relay_url, c.state_dir);
        out.api_url = c.api_url;
        out.heartbeat_secs = c.heartbeat_secs;
        out.background_heartbeat_secs = c.background_heartbeat_secs;
        out.extra_ca_pem = c.extra_ca_pem;
        out.command_timeout_secs = c.command_timeout_secs;
        out
    }
}

macro_rules! ffi_command_type {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// The kinds of remote command. Any other kind is answered FAILED "unsupported" by the
        /// agent without reaching the host.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
        pub enum CommandType {
            $($(#[$doc])* $variant,)*
        }

        impl From<core::CommandType> for CommandType {
            fn from(t: core::CommandType) -> Self {
                match t {
                    $(core::CommandType::$variant => Self::$variant,)*
                }
            }
        }
    };
}

// The one list of command types is the wire crate's: a new type appears here by itself.
wire::with_command_types!(ffi_command_type);

/// A command to run, given to `CommandRunner.onCommand`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Command {
    /// The relay's command id: pass it back to `completeCommand`.
    pub id: String,
    /// What to do.
    pub command_type: CommandType,
    /// The wire name of the type (`PAUSE`, `LOCK_DEVICE`, ...), handy for JavaScript.
    pub command_type_name: String,
    /// The payload, a JSON object as text (`{}` when empty).
    pub payload_json: String,
    /// When the command expires (RFC 3339).
    pub expires_at: String,
    /// When the parent sent it (RFC 3339), when the relay said.
    pub created_at: Option<String>,
}

impl From<core::Command> for Command {
    fn from(c: core::Command) -> Self {
        Self {
            id: c.id,
            command_type: c.command_type.into(),
            command_type_name: c.command_type.as_str().to_owned(),
            payload_json: c.payload_json,
            expires_at: c.expires_at,
            created_at: c.created_at,
        }
    }
}

/// How the host finished a command.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum CommandOutcome {
    /// Done.
    Executed,
    /// Not done; `error` is shown to the parent (at most 1,000 characters are sent).
    Failed {
        /// Why.
        error: String,
    },
}

impl From<CommandOutcome> for core::CommandOutcome {
    fn from(o: CommandOutcome) -> Self {
        match o {
            CommandOutcome::Executed => Self::Executed,
            CommandOutcome::Failed { error } => Self::Failed { error },
        }
    }
}

/// The status an ack was posted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum AckStatus {
    /// `EXECUTED`
    Executed,
    /// `FAILED`
    Failed,
}

impl From<core::AckStatus> for AckStatus {
    fn from(s: core::AckStatus) -> Self {
        match s {
            core::AckStatus::Executed => Self::Executed,
            core::AckStatus::Failed => Self::Failed,
        }
    }
}

/// How the relay answered an ack.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum AckResult {
    /// Recorded (or already recorded the same way).
    Confirmed,
    /// Refused for good (e.g. 409: the command expired undelivered); the ack is dropped.
    Rejected {
        /// The HTTP status.
        status: u16,
    },
}

impl From<core::AckResult> for AckResult {
    fn from(r: core::AckResult) -> Self {
        match r {
            core::AckResult::Confirmed => Self::Confirmed,
            core::AckResult::Rejected { status } => Self::Rejected { status },
        }
    }
}

/// The state of the agent's connection to the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionState {
    /// Not started, or stopped.
    Stopped,
    /// No device token: pair first.
    NotPaired,
    /// Opening the socket and authenticating.
    Connecting,
    /// Authenticated; commands flow.
    Connected,
    /// Lost the connection; reconnecting with backoff.
    Disconnected,
    /// The relay refused the token (device revoked): offline until a new token is set.
    Unauthorized,
}

impl From<core::ConnectionState> for ConnectionState {
    fn from(s: core::ConnectionState) -> Self {
        use core::ConnectionState as S;
        match s {
            S::Stopped => Self::Stopped,
            S::NotPaired => Self::NotPaired,
            S::Connecting => Self::Connecting,
            S::Connected => Self::Connected,
            S::Disconnected => Self::Disconnected,
            S::Unauthorized => Self::Unauthorized,
        }
    }
}

/// A pairing code to show to the parent.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PairingCode {
    /// The relay's pairing id.
    pub pairing_id: String,
    /// The code the parent types (`K7QF-M2XD`).
    pub code: String,
    /// When the code expires (RFC 3339).
    pub expires_at: String,
}

impl From<core::PairingCode> for PairingCode {
    fn from(p: core::PairingCode) -> Self {
        Self {
            pairing_id: p.pairing_id,
            code: p.code,
            expires_at: p.expires_at,
        }
    }
}

/// The device record that pairing produced.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PairedDevice {
    /// This device's id.
    pub device_id: String,
    /// The child it belongs to.
    pub child_id: String,
}

impl From<core::PairedDevice> for PairedDevice {
    fn from(d: core::PairedDevice) -> Self {
        Self {
            device_id: d.device_id,
            child_id: d.child_id,
        }
    }
}

/// What `syncNowWithin` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Commands handed to the runner.
    pub ran: u32,
    /// Whether the relay was asked (not while another sync runs: that one asks).
    pub pulled: bool,
    /// Whether every ack queued so far was answered by the relay (a command the runner is
    /// still running has none yet).
    pub acks_done: bool,
}

impl From<core::SyncReport> for SyncReport {
    fn from(r: core::SyncReport) -> Self {
        Self {
            ran: r.ran,
            pulled: r.pulled,
            acks_done: r.acks_done,
        }
    }
}

/// A restricted-content attempt to report. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct RestrictedAttempt {
    /// The URL that was blocked.
    #[uniffi(default = None)]
    pub url: Option<String>,
    /// Its title.
    #[uniffi(default = None)]
    pub title: Option<String>,
    /// Why it was blocked.
    #[uniffi(default = None)]
    pub reason: Option<String>,
    /// Extra data, a JSON object as text.
    #[uniffi(default = None)]
    pub metadata_json: Option<String>,
}

impl From<RestrictedAttempt> for core::RestrictedAttempt {
    fn from(a: RestrictedAttempt) -> Self {
        Self {
            url: a.url,
            title: a.title,
            reason: a.reason,
            metadata_json: a.metadata_json,
        }
    }
}
