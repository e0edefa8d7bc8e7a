//! Remote commands: the public types the host sees and the validation of `command:new`.

use serde_json::Value;

use crate::time::parse_rfc3339_ms;

/// The command types the agent knows (the wire crate's one list). Any other type is answered
/// FAILED "unsupported" without calling the host.
pub use wire::CommandType;

/// A command handed to the host by [`Platform::run_command`](crate::Platform::run_command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The relay's command id; pass it back to [`Agent::complete_command`](crate::Agent::complete_command).
    pub id: String,
    /// What to do.
    pub command_type: CommandType,
    /// The command's payload, a JSON object serialized as text (`{}` when empty).
    pub payload_json: String,
    /// When the command expires (RFC 3339).
    pub expires_at: String,
    /// When the parent sent it (RFC 3339), when the relay said.
    pub created_at: Option<String>,
}

/// How the host finished a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Done.
    Executed,
    /// Not done; `error` is shown to the parent (at most 1,000 characters are sent).
    Failed {
        /// Why.
        error: String,
    },
}

/// The status of an ack on the wire.
pub use wire::AckStatus;

/// Longest error text the relay accepts in an ack.
pub(crate) const MAX_ERROR_CHARS: usize = wire::command::MAX_ACK_ERROR_CHARS;
/// Longest command id the agent accepts.
pub(crate) const MAX_ID_LEN: usize = 128;
/// Largest payload the agent hands to the host.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

impl CommandOutcome {
    /// The ack status and error text this outcome is posted as.
    pub(crate) fn to_ack(&self) -> (AckStatus, Option<String>) {
        match self {
            Self::Executed => (AckStatus::Executed, None),
            Self::Failed { error } => {
                let text: String = error.chars().take(MAX_ERROR_CHARS).collect();
                let text = if text.trim().is_empty() {
                    "failed".to_owned()
                } else {
                    text
                };
                (AckStatus::Failed, Some(text))
            }
        }
    }
}

/// What validation made of one `command:new` (or `GET /api/devices/me/commands`) item.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Run it (unless seen before). `exp`: its expiry, relay time (Unix ms).
    Run { cmd: Command, exp: i64 },
    /// Expired by the relay's clock: never run, never acked (the relay expires it itself).
    Expired { id: String },
    /// Not runnable: answer FAILED with this reason, without calling the host.
    Refuse {
        id: String,
        reason: &'static str,
        exp: Option<i64>,
    },
    /// No usable id: nothing can be answered; dropped and logged.
    Garbage { why: &'static str },
}

/// Whether a command id is acceptable: 1–128 characters, no control characters, no `/`,
/// `?` or `#` (it goes into a URL path) and no whitespace.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.chars().all(|c| {
            !c.is_control() && !c.is_whitespace() && !matches!(c, '/' | '?' | '#' | '%' | '\\')
        })
}

/// Validates one command object. Expiry is judged by `relay_now_ms`, the relay's clock as
/// the agent knows it (never the device's wall clock, which the child can move). Before
/// the relay said its time (`None`: an older relay), the agent trusts that the relay sends
/// only unexpired commands, which it does: it checks expiry before writing a command to a
/// socket or listing it over HTTPS.
pub(crate) fn check(value: &Value, relay_now_ms: Option<i64>) -> Checked {
    let Some(obj) = value.as_object() else {
        return Checked::Garbage {
            why: "not an object",
        };
    };
    let Some(id) = obj.get("id").and_then(Value::as_str) else {
        return Checked::Garbage {
            why: "no string id",
        };
    };
    if !valid_id(id) {
        return Checked::Garbage { why: "invalid id" };
    }
    let id = id.to_owned();
    let Some(expires_at) = obj.get("expiresAt").and_then(Value::as_str) else {
        return Checked::Refuse {
            id,
            reason: "invalid: no expiresAt",
            exp: None,
        };
    };
    let Some(expires_ms) = parse_rfc3339_ms(expires_at) else {
        return Checked::Refuse {
            id,
            reason: "invalid: bad expiresAt",
            exp: None,
        };
    };
    if relay_now_ms.is_some_and(|now| expires_ms <= now) {
        return Checked::Expired { id };
    }
    let exp = Some(expires_ms);
    let Some(type_name) = obj.get("commandType").and_then(Value::as_str) else {
        return Checked::Refuse {
            id,
            reason: "invalid: no commandType",
            exp,
        };
    };
    let Some(command_type) = CommandType::parse(type_name) else {
        return Checked::Refuse {
            id,
            reason: "unsupported",
            exp,
        };
    };
    let payload_json = match obj.get("payload") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(p @ Value::Object(_)) => p.to_string(),
        Some(_) => {
            return Checked::Refuse {
                id,
                reason: "invalid: payload is not an object",
                exp,
            }
        }
    };
    if payload_json.len() > MAX_PAYLOAD_BYTES {
        return Checked::Refuse {
            id,
            reason: "invalid: payload too large",
            exp,
        };
    }
    let created_at = obj
        .get("createdAt")
        .and_then(Value::as_str)
        .filter(|s| s.len() <= 64)
        .map(str::to_owned);
    Checked::Run {
        cmd: Command {
            id,
            command_type,
            payload_json,
            expires_at: expires_at.to_owned(),
            created_at,
        },
        exp: expires_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_635_000_000; // 2026-11-25T19:30:00Z

    #[test]
    fn valid_command_runs() {
        let v = json!({"id": "c1", "commandType": "PAUSE", "payload": {"a": 1},
            "expiresAt": "2026-11-25T19:35:00.000Z", "createdAt": "2026-11-25T19:30:00.000Z",
            "childId": "k", "deviceId": "d"});
        match check(&v, Some(NOW)) {
            Checked::Run { cmd: c, exp } => {
                assert_eq!(exp, NOW + 5 * 60 * 1000);
                assert_eq!(c.id, "c1");
                assert_eq!(c.command_type, CommandType::Pause);
                assert_eq!(c.payload_json, r#"{"a":1}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expired_unknown_and_garbage() {
        let exp =
            json!({"id": "c1", "commandType": "PAUSE", "expiresAt": "2026-11-25T19:29:59.999Z"});
        assert_eq!(check(&exp, Some(NOW)), Checked::Expired { id: "c1".into() });
        // Before the relay said its time, the relay's own check is trusted.
        assert!(matches!(check(&exp, None), Checked::Run { .. }));
        let unk = json!({"id": "c2", "commandType": "SELF_DESTRUCT", "expiresAt": "2026-11-25T20:00:00Z"});
        assert_eq!(
            check(&unk, Some(NOW)),
            Checked::Refuse {
                id: "c2".into(),
                reason: "unsupported",
                exp: Some(1_795_636_800_000)
            }
        );
        let bad_payload = json!({"id": "c3", "commandType": "PAUSE", "payload": [1], "expiresAt": "2026-11-25T20:00:00Z"});
        assert!(matches!(
            check(&bad_payload, Some(NOW)),
            Checked::Refuse { .. }
        ));
        let no_exp = json!({"id": "c4", "commandType": "PAUSE"});
        assert!(matches!(check(&no_exp, Some(NOW)), Checked::Refuse { .. }));
        for v in [
            json!(null),
            json!([]),
            json!({"id": 5}),
            json!({"id": ""}),
            json!({"id": "a/b"}),
            json!({"id": "x".repeat(129)}),
            json!({"id": "a\nb"}),
        ] {
            assert!(
                matches!(check(&v, Some(NOW)), Checked::Garbage { .. }),
                "{v}"
            );
        }
    }

    #[test]
    fn error_text_is_truncated_on_char_boundary() {
        let (s, e) = CommandOutcome::Failed {
            error: "é".repeat(2000),
        }
        .to_ack();
        assert_eq!(s, AckStatus::Failed);
        assert_eq!(e.unwrap().chars().count(), MAX_ERROR_CHARS);
    }
}
