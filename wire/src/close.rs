//! WebSocket close codes (`docs/protocol.md`, "Close codes").

/// Normal close.
pub const NORMAL: u16 = 1000;
/// The relay is shutting down: reconnect with backoff.
pub const GOING_AWAY: u16 = 1001;
/// A frame larger than the limit.
pub const TOO_BIG: u16 = 1009;
/// The relay could not read its database for this socket: reconnect with backoff.
pub const INTERNAL: u16 = 1011;
/// Protocol violation (binary frame, too many bad frames).
pub const PROTOCOL: u16 = 4400;
/// Token missing, invalid or expired.
pub const UNAUTHORIZED: u16 = 4401;
/// Forbidden: device revoked, or a refresh for another identity.
pub const FORBIDDEN: u16 = 4403;
/// No `auth` frame in time, or no life for two heartbeats.
pub const TIMEOUT: u16 = 4408;
/// Too many connections for this identity, or too many frames.
pub const TOO_MANY: u16 = 4429;
/// Slow consumer: the socket's send queue overflowed.
pub const SLOW_CONSUMER: u16 = 4509;

/// Whether a client should reconnect after this close code (with backoff).
pub fn should_reconnect(code: u16) -> bool {
    !matches!(code, PROTOCOL | UNAUTHORIZED | FORBIDDEN | TOO_BIG)
}
