// Generated from the `wire` crate by ts-rs: do not edit.
// Regenerate with scripts/generate-types.sh; `cargo test -p wire` fails when stale.

/** Event names of the socket protocol. */
export const EVENTS = {
  auth: 'auth',
  authRefresh: 'auth:refresh',
  authRefreshed: 'auth:refreshed',
  authRotate: 'auth:rotate',
  ready: 'ready',
  resync: 'resync',
  error: 'error',
  ping: 'ping',
  pong: 'pong',
  heartbeat: 'heartbeat',
  commandNew: 'command:new',
  commandSent: 'command:sent',
  commandStatus: 'command:status',
  notificationNew: 'notification:new',
  screentimeAlert: 'screentime:alert',
  deviceStatus: 'device:status',
} as const;

/** WebSocket close codes the relay uses. */
export const CLOSE_CODES = {
  normal: 1000,
  goingAway: 1001,
  tooBig: 1009,
  internal: 1011,
  protocol: 4400,
  unauthorized: 4401,
  forbidden: 4403,
  timeout: 4408,
  tooMany: 4429,
  slowConsumer: 4509,
} as const;

/** The `code` of a REST error body. */
export type ErrorCode = 'bad_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'method_not_allowed' | 'conflict' | 'expired' | 'payload_too_large' | 'unsupported_media_type' | 'rate_limited' | 'internal' | 'unavailable';

/** The `code` of an `error` frame. */
export type FrameErrorCode = 'bad_frame' | 'forbidden' | 'unauthorized' | 'rate_limited';

/**
 * What a parent asks a child's device to do.
 */
export type CommandType = "PAUSE" | "RESUME" | "LOCK_DEVICE" | "UNLOCK_DEVICE" | "SHOW_MESSAGE";

/**
 * Where a command is in its life.
 */
export type CommandStatus = "PENDING" | "DELIVERED" | "EXECUTED" | "FAILED" | "EXPIRED";

/**
 * The status a device acknowledges a command with.
 */
export type AckStatus = "EXECUTED" | "FAILED";

/**
 * `command:new` data: a command for a device (also the items of
 * `GET /api/devices/me/commands`). Times are RFC 3339.
 */
export type CommandNew = { 
/**
 * The relay's command id.
 */
id: string, 
/**
 * What to do: a [`CommandType`], as text, so that a type this build does not know
 * still reaches the agent (which answers it FAILED "unsupported").
 */
commandType: CommandType, 
/**
 * A JSON object (`{}` when empty).
 */
payload: Record<string, unknown>, 
/**
 * After this it must not run.
 */
expiresAt: string, 
/**
 * The child it is for.
 */
childId: string, 
/**
 * The one device it is for, or `null` for every device of the child.
 */
deviceId: string | null, 
/**
 * When the parent sent it.
 */
createdAt: string, };

/**
 * `command:sent` data: a guardian's command was accepted.
 */
export type CommandSent = { 
/**
 * The command.
 */
commandId: string, 
/**
 * `PENDING`.
 */
status: CommandStatus, 
/**
 * Its child.
 */
childId: string, 
/**
 * Its one device, or `null` for all of the child's.
 */
deviceId: string | null, 
/**
 * Its type (a [`CommandType`], as text).
 */
commandType: CommandType, 
/**
 * When it expires (RFC 3339).
 */
expiresAt: string, };

/**
 * `command:status` data: a command's status changed.
 */
export type CommandStatusData = { 
/**
 * The command.
 */
commandId: string, 
/**
 * `DELIVERED`, `EXECUTED`, `FAILED` or `EXPIRED`.
 */
status: CommandStatus, 
/**
 * The device that received or acknowledged it.
 */
deviceId: string | null, 
/**
 * Set for `EXECUTED` / `FAILED` (RFC 3339).
 */
executedAt: string | null, 
/**
 * The device's text for `FAILED`, `"expired"` for `EXPIRED`.
 */
error: string | null, 
/**
 * Its child.
 */
childId: string, };

/**
 * A command as the REST API shows it (`{"command": ...}`, `{"commands": [...]}`).
 */
export type CommandView = { 
/**
 * Relay-issued id (UUIDv7: time-ordered).
 */
id: string, 
/**
 * Target child.
 */
childId: string, 
/**
 * Target device, or `null` for every device of the child.
 */
deviceId: string | null, 
/**
 * Its type (a [`CommandType`], as text: a relay reads back a type a newer relay
 * created without failing).
 */
commandType: CommandType, 
/**
 * A JSON object.
 */
payload: Record<string, unknown>, 
/**
 * Where it is in its life.
 */
status: CommandStatus, 
/**
 * The parent who sent it.
 */
createdBy: string, 
/**
 * RFC 3339.
 */
createdAt: string, 
/**
 * RFC 3339.
 */
expiresAt: string, 
/**
 * First delivery to a device.
 */
deliveredAt: string | null, 
/**
 * When a device acknowledged it.
 */
executedAt: string | null, 
/**
 * The device's text for `FAILED`, `"expired"` for `EXPIRED`.
 */
error: string | null, 
/**
 * The device that acknowledged (or first received) it.
 */
ackDeviceId: string | null, };

/**
 * A child, as the main app knows it.
 */
export type ChildView = { 
/**
 * The main app's id.
 */
id: string, 
/**
 * Display name.
 */
name: string, 
/**
 * Daily screen-time limit in minutes; `null` = no limit.
 */
dailyLimitMinutes: number | null, 
/**
 * IANA time zone that decides what "today" is.
 */
timezone: string, 
/**
 * User ids of the parents who may act on this child.
 */
guardians: Array<string>, 
/**
 * RFC 3339.
 */
createdAt: string, 
/**
 * RFC 3339.
 */
updatedAt: string, };

/**
 * One install of the child app.
 */
export type DeviceView = { 
/**
 * Relay-issued id (UUIDv7).
 */
id: string, 
/**
 * The child it belongs to.
 */
childId: string, 
/**
 * Display name.
 */
name: string, 
/**
 * RFC 3339.
 */
createdAt: string, 
/**
 * Revoked devices are refused everywhere.
 */
revoked: boolean, 
/**
 * When its last socket ended (RFC 3339).
 */
lastSeen: string | null, };

/**
 * A device as `GET /api/children/{childId}/devices` lists it: the record and its live
 * presence (from any node).
 */
export type DeviceListItem = { 
/**
 * Whether a socket of it is open on any node.
 */
online: boolean, 
/**
 * What it last reported in `device:status` (false while offline).
 */
activeViewing: boolean, 
/**
 * What it last reported (an object, a string, or null): device text, show it as text.
 */
currentVideo: Record<string, unknown> | string | null, 
/**
 * Relay-issued id (UUIDv7).
 */
id: string, 
/**
 * The child it belongs to.
 */
childId: string, 
/**
 * Display name.
 */
name: string, 
/**
 * RFC 3339.
 */
createdAt: string, 
/**
 * Revoked devices are refused everywhere.
 */
revoked: boolean, 
/**
 * When its last socket ended (RFC 3339).
 */
lastSeen: string | null, };

/**
 * `GET /api/admin/overview` (admin parents): what an operator looks at first.
 */
export type AdminOverview = { 
/**
 * Sockets on the node that answered.
 */
node: AdminNode, 
/**
 * Children with commands waiting (PENDING or DELIVERED, unexpired), most first, at most 50.
 */
pendingByChild: Array<PendingCount>, 
/**
 * The newest FAILED and EXPIRED commands, newest first, at most 20.
 */
recentFailures: Array<CommandView>, };

/**
 * One node's sockets, in [`AdminOverview`].
 */
export type AdminNode = { 
/**
 * The node's id.
 */
id: string, 
/**
 * Authenticated parent sockets.
 */
parents: number, 
/**
 * Authenticated device sockets.
 */
devices: number, };

/**
 * Commands waiting for one child, in [`AdminOverview`].
 */
export type PendingCount = { 
/**
 * The child.
 */
childId: string, 
/**
 * PENDING or DELIVERED, unexpired.
 */
pending: number, };

/**
 * What a notification is about.
 */
export type NotificationType = "SCREEN_TIME_LIMIT" | "RESTRICTED_CONTENT" | "DEVICE_PAIRING" | "COMMAND_EXECUTED" | "COMMAND_FAILED";

/**
 * A notification for one parent (also the data of `notification:new`).
 */
export type NotificationView = { 
/**
 * Relay-issued id (UUIDv7: newest sorts last).
 */
id: string, 
/**
 * What it is about: a [`NotificationType`] (text, so that a relay that knows a newer
 * type can still send it to an older client).
 */
type: NotificationType, 
/**
 * Short title.
 */
title: string, 
/**
 * Body text.
 */
message: string, 
/**
 * A JSON object.
 */
metadata: Record<string, unknown>, 
/**
 * RFC 3339.
 */
createdAt: string, 
/**
 * Whether the parent marked it read.
 */
read: boolean, };

/**
 * `auth` data: the first client frame.
 */
export type Auth = { 
/**
 * A parent JWT or a device token.
 */
token: string, 
/**
 * Parents: the highest `seq` processed, to replay what came after.
 */
lastSeq?: number, };

/**
 * `auth:refresh` data.
 */
export type AuthRefresh = { 
/**
 * The new token, for the same user or device.
 */
token: string, };

/**
 * `auth:refreshed` data.
 */
export type AuthRefreshed = { 
/**
 * When the new token expires (RFC 3339), or `null` when it does not.
 */
expiresAt: string | null, };

/**
 * `auth:rotate` data (relay → device): the device's next token. The device stores it
 * durably, then sends it in `auth:refresh`; from that first use on, older tokens of the
 * device are refused.
 */
export type AuthRotate = { 
/**
 * The new device token.
 */
token: string, };

/**
 * `ready` data for a parent.
 */
export type ParentReady = { 
/**
 * `"parent"`.
 */
role: string, 
/**
 * The parent's user id.
 */
userId: string, 
/**
 * Seconds between the relay's pings.
 */
heartbeatSec: number, 
/**
 * The newest event position the relay knows for this user.
 */
seq: number, 
/**
 * Whether the events after `lastSeq` were replayed.
 */
resumed: boolean, };

/**
 * `ready` data for a device.
 */
export type DeviceReady = { 
/**
 * `"device"`.
 */
role: string, 
/**
 * The device.
 */
deviceId: string, 
/**
 * Its child.
 */
childId: string, 
/**
 * Seconds between the relay's pings.
 */
heartbeatSec: number, 
/**
 * The relay's clock when it sent this (RFC 3339): the agent judges command expiry by
 * it plus its own monotonic time since, never by the device's wall clock.
 */
serverTime: string, };

/**
 * `resync` data: refetch over REST, then continue after `seq`.
 */
export type Resync = { 
/**
 * Why (`history_gap`).
 */
reason: string, 
/**
 * The position to continue from.
 */
seq: number, };

/**
 * `error` frame data.
 */
export type ErrorData = { 
/**
 * See [`crate::error::frame`].
 */
code: string, 
/**
 * Human-readable.
 */
message: string, };

/**
 * `heartbeat` data, both ways.
 */
export type Heartbeat = { 
/**
 * Seconds between pings, from the relay's `heartbeatSec` to 600.
 */
intervalSec: number, };

/**
 * `device:status` sent by a device.
 */
export type DeviceStatusReport = { 
/**
 * Whether a video is playing.
 */
activeViewing: boolean, 
/**
 * An object or a string of at most 2 KiB, or `null`.
 */
currentVideo: Record<string, unknown> | string | null, };

/**
 * `device:status` sent to guardians: a device's presence.
 */
export type DeviceStatus = { 
/**
 * The device.
 */
deviceId: string, 
/**
 * Its child.
 */
childId: string, 
/**
 * Whether a socket of it is open.
 */
online: boolean, 
/**
 * Whether a video is playing.
 */
activeViewing: boolean, 
/**
 * What it reported, or `null`.
 */
currentVideo: Record<string, unknown> | string | null, 
/**
 * When its last socket ended (RFC 3339), when offline.
 */
lastSeen: string | null, };

/**
 * `screentime:alert` data: a child passed the daily limit.
 */
export type ScreentimeAlert = { 
/**
 * The child.
 */
childId: string, 
/**
 * Its name.
 */
childName: string, 
/**
 * Minutes used today.
 */
minutesUsed: number, 
/**
 * The daily limit.
 */
limit: number, };

/**
 * The REST error body.
 */
export type ErrorBody = { 
/**
 * The error.
 */
error: ErrorDetail, };

/**
 * What went wrong, for a machine (`code`) and a person (`message`).
 */
export type ErrorDetail = { 
/**
 * One of the codes below.
 */
code: string, 
/**
 * Human-readable; never holds secrets.
 */
message: string, };

/**
 * `POST /api/dashboard/remote-control`.
 */
export type CreateCommand = { 
/**
 * The child whose devices run it.
 */
childId: string, 
/**
 * What to do.
 */
commandType: CommandType, 
/**
 * A JSON object of at most 8 KiB.
 */
payload?: Record<string, unknown>, 
/**
 * Only this device of the child.
 */
deviceId?: string, 
/**
 * Lifetime, 1 s to a week (the relay's default when absent).
 */
expiresInSeconds?: number, };

/**
 * `PATCH /api/dashboard/remote-control/{id}`: a device's durable ack.
 */
export type AckCommand = { 
/**
 * `EXECUTED` or `FAILED`.
 */
status: AckStatus, 
/**
 * Why it failed (at most 1,000 characters).
 */
error?: string, };

/**
 * `PUT /api/children/{childId}`: creates or changes a child; absent fields stay as they are.
 */
export type PutChild = { 
/**
 * Display name, 1–100 characters.
 */
name?: string, 
/**
 * `Some(None)` (JSON `null`) removes the limit; 0–1440 minutes.
 */
dailyLimitMinutes?: number | null | null, 
/**
 * IANA time zone name; the relay checks it is one it knows.
 */
timezone?: string, 
/**
 * The backend only: user ids of the child's guardians (at most 100).
 */
guardians?: Array<string | number>, };

/**
 * `POST /api/children/{childId}/devices`.
 */
export type CreateDevice = { 
/**
 * Display name, 1–100 characters.
 */
name: string, };

/**
 * The answer to `POST /api/devices/{deviceId}/rotate-token` (202): a rotation is pending
 * (a new one, or the one already pending: a second call does not start another).
 */
export type RotateTokenAccepted = { 
/**
 * The device.
 */
deviceId: string, 
/**
 * The generation of the pending token; it becomes the device's current one when the
 * device first uses it.
 */
pendingGeneration: number, };

/**
 * `POST /api/dashboard/notifications` (the backend).
 */
export type CreateNotification = { 
/**
 * The parent it is for (a string id, or the main app's integer id).
 */
userId: string | number, 
/**
 * What it is about.
 */
type: NotificationType, 
/**
 * 1–200 characters.
 */
title: string, 
/**
 * At most 2,000 characters.
 */
message: string, 
/**
 * A JSON object of at most 8 KiB.
 */
metadata?: Record<string, unknown>, };

/**
 * `POST /api/dashboard/screen-time` (a device for its own child, or the backend).
 */
export type ScreenTimeReport = { 
/**
 * The child.
 */
childId: string, 
/**
 * Minutes used today, 0–1440.
 */
minutesUsed: number, };

/**
 * `POST /api/devices/me/restricted-attempts` (a device).
 */
export type RestrictedAttempt = { 
/**
 * What was opened.
 */
url?: string, 
/**
 * Its title.
 */
title?: string, 
/**
 * Why it was blocked.
 */
reason?: string, 
/**
 * A JSON object of at most 8 KiB.
 */
metadata?: Record<string, unknown>, };

/**
 * `POST /api/publish` (the backend): an event of its own to a room's sockets.
 */
export type Publish = { 
/**
 * `user:<id>`, `child:<id>` or `admins`.
 */
room: string, 
/**
 * 1–64 characters of `[A-Za-z0-9_.:-]`, not a protocol event.
 */
event: string, 
/**
 * Anything.
 */
data: unknown, };

/**
 * `POST /api/pairing` (no credential): a device asks to be paired. The body may be absent.
 */
export type CreatePairing = { 
/**
 * The name the parent sees, 1–100 characters (`New device` when absent).
 */
deviceName?: string, };

/**
 * `POST /api/pairing/claim` (a parent types the code).
 */
export type ClaimPairing = { 
/**
 * The code the device shows (`K7QF-M2XD`; case and the dash do not matter).
 */
code: string, 
/**
 * Approve at once for this child.
 */
childId?: string, };

/**
 * `POST /api/pairing/{id}/approve`.
 */
export type ApprovePairing = { 
/**
 * The child the device is for.
 */
childId: string, 
/**
 * A name for the device, 1–100 characters.
 */
name?: string, };

/**
 * Which push service delivers to the device.
 */
export type PushProvider = "fcm" | "apns";

/**
 * Which APNs environment issued a device token (a debug build's token is a sandbox one).
 */
export type ApnsEnvironment = "production" | "sandbox";

/**
 * `PUT /api/devices/me/push-token`: the device's push token (replaces the one before), and
 * the view `GET` answers with.
 */
export type PushToken = { 
/**
 * `fcm` or `apns`.
 */
provider: PushProvider, 
/**
 * The FCM registration token, or the APNs device token in hex.
 */
token: string, 
/**
 * APNs only; `production` when absent.
 */
apnsEnvironment?: ApnsEnvironment, };

/** Which data each server event carries. */
export interface ServerEvents {
  'command:new': CommandNew;
  'command:sent': CommandSent;
  'command:status': CommandStatusData;
  'notification:new': NotificationView;
  'screentime:alert': ScreentimeAlert;
  'device:status': DeviceStatus;
  ready: ParentReady | DeviceReady;
  resync: Resync;
  error: ErrorData;
  heartbeat: Heartbeat;
  'auth:refreshed': AuthRefreshed;
  'auth:rotate': AuthRotate;
  pong: unknown;
}
