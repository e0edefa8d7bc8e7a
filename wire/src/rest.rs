//! Typed REST request bodies. Each is validated in one place, [`FromBody::from_body`], with
//! the messages of `docs/protocol.md`; handlers call it before they look anything up.
//!
//! They serialize to the JSON a client sends (the agent posts [`AckCommand`] this way), and
//! their TypeScript twins are generated into `src/generated/wire.ts`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::command::{
    AckStatus, CommandType, MAX_ACK_ERROR_CHARS, MAX_PAYLOAD_BYTES, MAX_TTL_SECS,
};
use crate::event;
use crate::records::NotificationType;
use crate::validate::{
    opt_id, opt_int, opt_object, opt_str, req_id, req_str, require_object, user_id, valid_id,
    Checked, Invalid,
};

/// A request body that is validated from untyped JSON.
pub trait FromBody: Sized {
    /// Checks `body` and builds the typed request, or says what is wrong with it.
    fn from_body(body: &Value) -> Checked<Self>;
}

/// `POST /api/dashboard/remote-control`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CreateCommand {
    /// The child whose devices run it.
    pub child_id: String,
    /// What to do.
    pub command_type: CommandType,
    /// A JSON object of at most 8 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "Record<string, unknown>"))]
    pub payload: Option<Value>,
    /// Only this device of the child.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub device_id: Option<String>,
    /// Lifetime, 1 s to a week (the relay's default when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub expires_in_seconds: Option<i64>,
}

impl FromBody for CreateCommand {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        let child_id = req_id(body, "childId")?;
        let type_name = req_str(body, "commandType", 64)?;
        let command_type = CommandType::parse(&type_name).ok_or_else(|| {
            Invalid(format!(
                "commandType must be one of {}",
                CommandType::list()
            ))
        })?;
        let payload = opt_object(body, "payload", MAX_PAYLOAD_BYTES)?;
        let device_id = opt_id(body, "deviceId")?;
        let expires_in_seconds = opt_int(body, "expiresInSeconds", 1, MAX_TTL_SECS)?;
        Ok(CreateCommand {
            child_id,
            command_type,
            payload: Some(payload),
            device_id,
            expires_in_seconds,
        })
    }
}

/// `PATCH /api/dashboard/remote-control/{id}`: a device's durable ack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AckCommand {
    /// `EXECUTED` or `FAILED`.
    pub status: AckStatus,
    /// Why it failed (at most 1,000 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub error: Option<String>,
}

impl FromBody for AckCommand {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        let status = match body.get("status").and_then(Value::as_str) {
            Some("EXECUTED") => AckStatus::Executed,
            Some("FAILED") => AckStatus::Failed,
            _ => return Err(Invalid::new("status must be EXECUTED or FAILED")),
        };
        let error = opt_str(body, "error", 0, MAX_ACK_ERROR_CHARS)?;
        Ok(AckCommand { status, error })
    }
}

/// `PUT /api/children/{childId}`: creates or changes a child; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PutChild {
    /// Display name, 1–100 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub name: Option<String>,
    /// `Some(None)` (JSON `null`) removes the limit; 0–1440 minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(as = "Option<Option<f64>>", optional = nullable))]
    pub daily_limit_minutes: Option<Option<i64>>,
    /// IANA time zone name; the relay checks it is one it knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub timezone: Option<String>,
    /// The backend only: user ids of the child's guardians (at most 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "Array<string | number>"))]
    pub guardians: Option<Vec<String>>,
}

impl FromBody for PutChild {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        let mut patch = PutChild {
            name: opt_str(body, "name", 1, 100)?,
            ..Default::default()
        };
        match body.get("dailyLimitMinutes") {
            None => {}
            Some(Value::Null) => patch.daily_limit_minutes = Some(None),
            Some(v) => match v.as_i64() {
                Some(n) if (0..=1440).contains(&n) => patch.daily_limit_minutes = Some(Some(n)),
                _ => {
                    return Err(Invalid::new(
                        "dailyLimitMinutes must be an integer from 0 to 1440, or null",
                    ))
                }
            },
        }
        patch.timezone = opt_str(body, "timezone", 1, 64)?;
        match body.get("guardians") {
            None => {}
            Some(Value::Array(items)) => {
                if items.len() > 100 {
                    return Err(Invalid::new("guardians: at most 100"));
                }
                let mut list = Vec::with_capacity(items.len());
                for item in items {
                    let id = user_id(item)
                        .ok_or_else(|| Invalid::new("guardians must be a list of user ids"))?;
                    if !list.contains(&id) {
                        list.push(id);
                    }
                }
                patch.guardians = Some(list);
            }
            Some(_) => return Err(Invalid::new("guardians must be a list of user ids")),
        }
        Ok(patch)
    }
}

/// `POST /api/children/{childId}/devices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CreateDevice {
    /// Display name, 1–100 characters.
    pub name: String,
}

impl FromBody for CreateDevice {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        Ok(CreateDevice {
            name: req_str(body, "name", 100)?,
        })
    }
}

/// The answer to `POST /api/devices/{deviceId}/rotate-token` (202): a rotation is pending
/// (a new one, or the one already pending: a second call does not start another).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RotateTokenAccepted {
    /// The device.
    pub device_id: String,
    /// The generation of the pending token; it becomes the device's current one when the
    /// device first uses it.
    #[cfg_attr(test, ts(as = "f64"))]
    pub pending_generation: i64,
}

/// `POST /api/dashboard/notifications` (the backend).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CreateNotification {
    /// The parent it is for (a string id, or the main app's integer id).
    #[cfg_attr(test, ts(type = "string | number"))]
    pub user_id: String,
    /// What it is about.
    #[serde(rename = "type")]
    pub kind: NotificationType,
    /// 1–200 characters.
    pub title: String,
    /// At most 2,000 characters.
    pub message: String,
    /// A JSON object of at most 8 KiB.
    #[cfg_attr(test, ts(optional, type = "Record<string, unknown>"))]
    pub metadata: Value,
}

impl FromBody for CreateNotification {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        let user_id = body
            .get("userId")
            .and_then(user_id)
            .ok_or_else(|| Invalid::new("userId must be a user id"))?;
        let kind = req_str(body, "type", 64)?;
        let kind = NotificationType::parse(&kind)
            .ok_or_else(|| Invalid(format!("type must be one of {}", NotificationType::list())))?;
        Ok(CreateNotification {
            user_id,
            kind,
            title: req_str(body, "title", 200)?,
            message: opt_str(body, "message", 0, 2000)?.unwrap_or_default(),
            metadata: opt_object(body, "metadata", 8 * 1024)?,
        })
    }
}

/// `POST /api/dashboard/screen-time` (a device for its own child, or the backend).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ScreenTimeReport {
    /// The child.
    pub child_id: String,
    /// Minutes used today, 0–1440.
    #[cfg_attr(test, ts(as = "f64"))]
    pub minutes_used: i64,
}

impl FromBody for ScreenTimeReport {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        let child_id = req_id(body, "childId")?;
        let minutes_used = opt_int(body, "minutesUsed", 0, 1440)?
            .ok_or_else(|| Invalid::new("minutesUsed is required (an integer from 0 to 1440)"))?;
        Ok(ScreenTimeReport {
            child_id,
            minutes_used,
        })
    }
}

/// `POST /api/devices/me/restricted-attempts` (a device).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RestrictedAttempt {
    /// What was opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub url: Option<String>,
    /// Its title.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub title: Option<String>,
    /// Why it was blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub reason: Option<String>,
    /// A JSON object of at most 8 KiB.
    #[cfg_attr(test, ts(optional, type = "Record<string, unknown>"))]
    pub metadata: Value,
}

impl FromBody for RestrictedAttempt {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        Ok(RestrictedAttempt {
            url: opt_str(body, "url", 0, 2000)?,
            title: opt_str(body, "title", 0, 2000)?,
            reason: opt_str(body, "reason", 0, 2000)?,
            metadata: opt_object(body, "metadata", 8 * 1024)?,
        })
    }
}

/// Where `POST /api/publish` sends an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishRoom {
    /// `user:<id>`: one parent's sockets.
    User(String),
    /// `child:<id>`: one child's devices.
    Child(String),
    /// `admins`.
    Admins,
}

/// `POST /api/publish` (the backend): an event of its own to a room's sockets.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Publish {
    /// `user:<id>`, `child:<id>` or `admins`.
    #[serde(serialize_with = "ser_room")]
    #[cfg_attr(test, ts(type = "string"))]
    pub room: PublishRoom,
    /// 1–64 characters of `[A-Za-z0-9_.:-]`, not a protocol event.
    pub event: String,
    /// Anything.
    #[cfg_attr(test, ts(type = "unknown"))]
    pub data: Value,
}

fn ser_room<S: serde::Serializer>(room: &PublishRoom, s: S) -> Result<S::Ok, S::Error> {
    match room {
        PublishRoom::User(id) => s.serialize_str(&format!("user:{id}")),
        PublishRoom::Child(id) => s.serialize_str(&format!("child:{id}")),
        PublishRoom::Admins => s.serialize_str("admins"),
    }
}

impl FromBody for Publish {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        let target = req_str(body, "room", 140)?;
        let room = match target.split_once(':') {
            Some(("user", id)) if valid_id(id) => PublishRoom::User(id.to_owned()),
            Some(("child", id)) if valid_id(id) => PublishRoom::Child(id.to_owned()),
            None if target == "admins" => PublishRoom::Admins,
            _ => return Err(Invalid::new("room must be user:<id>, child:<id> or admins")),
        };
        let event = req_str(body, "event", 64)?;
        if !valid_id(&event) || event::CONTROL.contains(&event.as_str()) {
            return Err(Invalid::new(
                "event must be 1-64 characters of A-Z a-z 0-9 _ . : - and not a protocol event (auth, ready, resync, error, pong, ...)",
            ));
        }
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        Ok(Publish { room, event, data })
    }
}

/// `POST /api/pairing` (no credential): a device asks to be paired. The body may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CreatePairing {
    /// The name the parent sees, 1–100 characters (`New device` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub device_name: Option<String>,
}

impl FromBody for CreatePairing {
    fn from_body(body: &Value) -> Checked<Self> {
        if body.is_null() {
            return Ok(CreatePairing::default());
        }
        require_object(body)?;
        Ok(CreatePairing {
            device_name: opt_str(body, "deviceName", 1, 100)?,
        })
    }
}

/// `POST /api/pairing/claim` (a parent types the code).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ClaimPairing {
    /// The code the device shows (`K7QF-M2XD`; case and the dash do not matter).
    pub code: String,
    /// Approve at once for this child.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub child_id: Option<String>,
}

impl FromBody for ClaimPairing {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        let code = req_str(body, "code", 20)?;
        let child_id = opt_id(body, "childId")?;
        Ok(ClaimPairing { code, child_id })
    }
}

/// `POST /api/pairing/{id}/approve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ApprovePairing {
    /// The child the device is for.
    pub child_id: String,
    /// A name for the device, 1–100 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub name: Option<String>,
}

impl FromBody for ApprovePairing {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        let child_id = req_id(body, "childId")?;
        let name = opt_str(body, "name", 1, 100)?;
        Ok(ApprovePairing { child_id, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err<T: FromBody + std::fmt::Debug>(v: Value) -> String {
        T::from_body(&v).unwrap_err().0
    }

    #[test]
    fn create_command_checks_in_order_and_types_its_fields() {
        let ok = CreateCommand::from_body(
            &json!({"childId": "k", "commandType": "LOCK_DEVICE", "deviceId": "d", "expiresInSeconds": 60}),
        )
        .unwrap();
        assert_eq!(ok.command_type, CommandType::LockDevice);
        assert_eq!(ok.payload, Some(json!({})));
        assert_eq!(ok.expires_in_seconds, Some(60));
        assert_eq!(
            err::<CreateCommand>(json!([])),
            "the body must be a JSON object"
        );
        assert_eq!(err::<CreateCommand>(json!({})), "childId is required");
        assert!(
            err::<CreateCommand>(json!({"childId": "k", "commandType": "NUKE"}))
                .starts_with("commandType must be one of PAUSE, RESUME")
        );
        assert_eq!(
            err::<CreateCommand>(json!({"childId": "k/..", "commandType": "NUKE"})),
            "childId must be 1-128 characters of A-Z a-z 0-9 _ . : -"
        );
        assert!(err::<CreateCommand>(
            json!({"childId": "k", "commandType": "PAUSE", "expiresInSeconds": 604_801})
        )
        .starts_with("expiresInSeconds must be an integer"));
    }

    #[test]
    fn acks_and_their_json() {
        let a = AckCommand::from_body(&json!({"status": "FAILED", "error": "no"})).unwrap();
        assert_eq!(a.status, AckStatus::Failed);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"status": "FAILED", "error": "no"})
        );
        assert_eq!(
            err::<AckCommand>(json!({"status": "DELIVERED"})),
            "status must be EXECUTED or FAILED"
        );
        assert!(
            err::<AckCommand>(json!({"status": "FAILED", "error": "x".repeat(1001)}))
                .starts_with("error must be")
        );
    }

    #[test]
    fn child_patches_tell_null_from_absent() {
        let p = PutChild::from_body(&json!({"dailyLimitMinutes": null, "guardians": [1, "a", 1]}))
            .unwrap();
        assert_eq!(p.daily_limit_minutes, Some(None));
        assert_eq!(p.guardians, Some(vec!["1".to_owned(), "a".to_owned()]));
        assert_eq!(
            PutChild::from_body(&json!({})).unwrap(),
            PutChild::default()
        );
        assert!(err::<PutChild>(json!({"guardians": ["a b"]})).contains("user ids"));
    }

    #[test]
    fn publish_refuses_protocol_events_and_bad_rooms() {
        let p = Publish::from_body(&json!({"room": "child:k", "event": "video:new", "data": 1}))
            .unwrap();
        assert_eq!(p.room, PublishRoom::Child("k".into()));
        assert_eq!(serde_json::to_value(&p).unwrap()["room"], "child:k");
        assert!(err::<Publish>(json!({"room": "child:k", "event": "ready"})).contains("protocol"));
        assert!(err::<Publish>(json!({"room": "device:d", "event": "x"})).starts_with("room must"));
        assert_eq!(
            Publish::from_body(&json!({"room": "admins", "event": "x"}))
                .unwrap()
                .room,
            PublishRoom::Admins
        );
    }

    #[test]
    fn the_other_bodies() {
        assert_eq!(
            CreateNotification::from_body(
                &json!({"userId": 7, "type": "DEVICE_PAIRING", "title": "t"})
            )
            .unwrap()
            .user_id,
            "7"
        );
        assert!(
            err::<CreateNotification>(json!({"userId": 7, "type": "X", "title": "t"}))
                .starts_with("type must be one of")
        );
        assert_eq!(
            err::<ScreenTimeReport>(json!({"childId": "k"})),
            "minutesUsed is required (an integer from 0 to 1440)"
        );
        assert_eq!(
            CreatePairing::from_body(&Value::Null).unwrap(),
            CreatePairing::default()
        );
        assert!(ClaimPairing::from_body(&json!({"code": "K7QF-M2XD", "childId": "a b"})).is_err());
        assert!(ApprovePairing::from_body(&json!({"name": "x"})).is_err());
        assert!(RestrictedAttempt::from_body(&json!({"metadata": []})).is_err());
        assert_eq!(
            err::<CreateDevice>(json!({"name": ""})),
            "name must be 1-100 characters"
        );
    }
}
