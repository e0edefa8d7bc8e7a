//! Push wake-up: a device's push token (`PUT/GET/DELETE /api/devices/me/push-token`) and the
//! data a wake-up push carries (a "sync" marker, never a command's content).

use serde::Serialize;
use serde_json::Value;

use crate::rest::FromBody;
use crate::validate::{only_fields, require_object, Checked, Invalid};

/// The key of the one data field a wake-up push carries (FCM `data`, APNs custom key).
pub const DATA_KEY: &str = "safestream";
/// Its value: "pull your pending commands".
pub const DATA_SYNC: &str = "sync";
/// Longest token accepted (FCM registration tokens are about 160-200 characters today).
pub const MAX_TOKEN_CHARS: usize = 4096;

/// Which push service delivers to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum PushProvider {
    /// Firebase Cloud Messaging (Android).
    Fcm,
    /// Apple Push Notification service (iOS).
    Apns,
}

impl PushProvider {
    /// The wire (and stored) name.
    pub fn as_str(self) -> &'static str {
        match self {
            PushProvider::Fcm => "fcm",
            PushProvider::Apns => "apns",
        }
    }

    /// The provider named `s`.
    pub fn parse(s: &str) -> Option<PushProvider> {
        match s {
            "fcm" => Some(PushProvider::Fcm),
            "apns" => Some(PushProvider::Apns),
            _ => None,
        }
    }
}

/// Which APNs environment issued a device token (a debug build's token is a sandbox one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ApnsEnvironment {
    /// `api.push.apple.com`.
    Production,
    /// `api.sandbox.push.apple.com`.
    Sandbox,
}

impl ApnsEnvironment {
    /// The wire (and stored) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApnsEnvironment::Production => "production",
            ApnsEnvironment::Sandbox => "sandbox",
        }
    }

    /// The environment named `s`.
    pub fn parse(s: &str) -> Option<ApnsEnvironment> {
        match s {
            "production" => Some(ApnsEnvironment::Production),
            "sandbox" => Some(ApnsEnvironment::Sandbox),
            _ => None,
        }
    }
}

/// `PUT /api/devices/me/push-token`: the device's push token (replaces the one before), and
/// the view `GET` answers with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PushToken {
    /// `fcm` or `apns`.
    pub provider: PushProvider,
    /// The FCM registration token, or the APNs device token in hex.
    pub token: String,
    /// APNs only; `production` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub apns_environment: Option<ApnsEnvironment>,
}

impl FromBody for PushToken {
    fn from_body(body: &Value) -> Checked<Self> {
        require_object(body)?;
        only_fields(body, &["provider", "token", "apnsEnvironment"])?;
        let provider = match body.get("provider").and_then(Value::as_str) {
            Some(p) => PushProvider::parse(p),
            None => None,
        }
        .ok_or_else(|| Invalid::new("provider must be \"fcm\" or \"apns\""))?;
        let token = match body.get("token") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(Invalid::new("token must be a string")),
            None => return Err(Invalid::new("token is required")),
        };
        let env = match body.get("apnsEnvironment") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(ApnsEnvironment::parse(s).ok_or_else(|| {
                Invalid::new("apnsEnvironment must be \"production\" or \"sandbox\"")
            })?),
            Some(_) => return Err(Invalid::new("apnsEnvironment must be a string")),
        };
        match provider {
            PushProvider::Fcm => {
                if env.is_some() {
                    return Err(Invalid::new(
                        "apnsEnvironment is only for provider \"apns\"",
                    ));
                }
                let ok = (1..=MAX_TOKEN_CHARS).contains(&token.len())
                    && token.bytes().all(|b| b.is_ascii_graphic());
                if !ok {
                    return Err(Invalid(format!(
                        "token must be 1-{MAX_TOKEN_CHARS} printable ASCII characters without spaces"
                    )));
                }
                Ok(PushToken {
                    provider,
                    token,
                    apns_environment: None,
                })
            }
            PushProvider::Apns => {
                let ok = (32..=400).contains(&token.len())
                    && token.len() % 2 == 0
                    && token.bytes().all(|b| b.is_ascii_hexdigit());
                if !ok {
                    return Err(Invalid::new(
                        "token must be the APNs device token in hex (an even number of 32-400 hex digits)",
                    ));
                }
                Ok(PushToken {
                    provider,
                    token: token.to_ascii_lowercase(),
                    apns_environment: Some(env.unwrap_or(ApnsEnvironment::Production)),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_are_checked_per_provider() {
        let t = PushToken::from_body(&json!({"provider": "fcm", "token": "abc:DEF-12_x"})).unwrap();
        assert_eq!(t.provider, PushProvider::Fcm);
        assert_eq!(t.apns_environment, None);
        let hex = "AB".repeat(32);
        let t = PushToken::from_body(&json!({"provider": "apns", "token": hex})).unwrap();
        assert_eq!(t.token, "ab".repeat(32));
        assert_eq!(t.apns_environment, Some(ApnsEnvironment::Production));
        let t = PushToken::from_body(
            &json!({"provider": "apns", "token": "00".repeat(32), "apnsEnvironment": "sandbox"}),
        )
        .unwrap();
        assert_eq!(t.apns_environment, Some(ApnsEnvironment::Sandbox));
        for (bad, msg) in [
            (json!([]), "JSON object"),
            (json!({"token": "x"}), "provider"),
            (json!({"provider": "gcm", "token": "x"}), "provider"),
            (json!({"provider": "fcm"}), "token is required"),
            (
                json!({"provider": "fcm", "token": 5}),
                "token must be a string",
            ),
            (json!({"provider": "fcm", "token": ""}), "printable"),
            (json!({"provider": "fcm", "token": "a b"}), "printable"),
            (
                json!({"provider": "fcm", "token": "x".repeat(4097)}),
                "printable",
            ),
            (
                json!({"provider": "fcm", "token": "x", "apnsEnvironment": "sandbox"}),
                "only for",
            ),
            (json!({"provider": "apns", "token": "xyz"}), "hex"),
            (json!({"provider": "apns", "token": "0g".repeat(20)}), "hex"),
            (
                json!({"provider": "apns", "token": "ab".repeat(32), "apnsEnvironment": "dev"}),
                "apnsEnvironment",
            ),
            (
                json!({"provider": "fcm", "token": "x", "extra": 1}),
                "unknown field",
            ),
        ] {
            let e = PushToken::from_body(&bad).unwrap_err();
            assert!(e.0.contains(msg), "{bad}: {}", e.0);
        }
    }
}
