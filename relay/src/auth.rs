//! Who is calling: parent JWTs, relay-issued device tokens, and the backend's server key.
//!
//! Parent tokens are verified with the one algorithm the configuration pins, so `alg: none`
//! and HS/RS confusion fail before any key is used. Device tokens are HS256 JWTs signed with
//! the relay's own device key (kept in the database, so every node shares it) and carry the
//! `kid` [`DEVICE_KID`]; they never expire but are refused once the device is revoked, and
//! each carries a generation (`gen`, absent for generation 0): the store decides which
//! generations of a device are accepted (token rotation, `store/rotation.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::model::now_ms;
use wire::validate::valid_id;

/// `kid` header of relay-issued device tokens.
pub const DEVICE_KID: &str = "safestream-device";
const DEVICE_ISS: &str = "safestream-relay";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A dashboard user.
    Parent {
        /// The main app's user id.
        user_id: String,
        /// Admins also receive `admins` room events.
        is_admin: bool,
        /// Token expiry, seconds since the epoch.
        exp: i64,
    },
    /// One install of the child app. Revocation is checked by the caller of [`Keys::verify`].
    Device {
        /// Relay-issued device id.
        device_id: String,
        /// The child it belongs to.
        child_id: String,
        /// The token's generation (0 when the token carries none).
        gen: i64,
    },
    /// The main app's servers.
    Backend,
}

impl Actor {
    /// A short name for logs and metrics (never the token).
    pub fn role(&self) -> &'static str {
        match self {
            Actor::Parent { .. } => "parent",
            Actor::Device { .. } => "device",
            Actor::Backend => "backend",
        }
    }
}

/// Why a credential was refused. Messages are safe to show the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Nothing usable was presented.
    #[error("missing credential")]
    Missing,
    /// Wrongly signed, malformed, wrong algorithm, wrong issuer or audience.
    #[error("invalid token")]
    Invalid,
    /// `exp` passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// The device was revoked.
    #[error("device revoked")]
    Revoked,
}

#[derive(Serialize, Deserialize)]
struct DeviceClaims {
    sub: String,
    cid: String,
    typ: String,
    iss: String,
    iat: i64,
    /// Token generation; absent (0) in tokens of a device's first generation.
    #[serde(default, skip_serializing_if = "is_zero")]
    gen: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// How many verified tokens [`Keys`] remembers (about 300 bytes each); when full it forgets
/// them all and starts over.
const VERIFIED_CAP: usize = 8192;

/// The keys and validation rules, built once at start.
pub struct Keys {
    parent_key: DecodingKey,
    parent_validation: Validation,
    device_enc: EncodingKey,
    device_dec: DecodingKey,
    device_validation: Validation,
    server_key_digest: [u8; 32],
    server_key_len: usize,
    /// Tokens whose signature and claims were checked, with what they proved and until when
    /// (seconds since the epoch: a parent token's `exp` plus the leeway, never for a device
    /// token). A token presented again, byte for byte, costs a hash lookup instead of a
    /// signature check (~32,000 instructions for HS256, ~10x that for RS256: 10 % of a
    /// command's relay CPU, BENCHMARKS.md). Only correctly signed tokens get in, so a
    /// stranger cannot fill it; device revocation is checked by callers on every use, as
    /// before.
    verified: Mutex<HashMap<Box<str>, (Actor, i64)>>,
    leeway: i64,
}

impl Keys {
    /// Builds the keys from the configuration and the relay's device key.
    pub fn new(
        cfg: &Config,
        jwt_secret: &str,
        server_key: &str,
        device_key: &[u8],
    ) -> Result<Keys, String> {
        let alg = match cfg.jwt_alg.to_ascii_uppercase().as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "EDDSA" => Algorithm::EdDSA,
            other => {
                return Err(format!(
                    "unsupported --jwt-alg {other}; use HS256, RS256, ES256 or EdDSA"
                ))
            }
        };
        let parent_key = match alg {
            Algorithm::HS256 => DecodingKey::from_secret(jwt_secret.as_bytes()),
            _ => {
                let path = cfg.jwt_public_key.as_ref().ok_or_else(|| {
                    "--jwt-public-key is required for asymmetric algorithms".to_string()
                })?;
                let pem =
                    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                let key = match alg {
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                    Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
                    _ => DecodingKey::from_ed_pem(&pem),
                };
                key.map_err(|e| format!("parsing {}: {e}", path.display()))?
            }
        };
        let mut pv = Validation::new(alg);
        pv.leeway = cfg.jwt_leeway_secs;
        pv.validate_exp = true;
        pv.validate_nbf = true;
        pv.required_spec_claims = HashSet::from(["exp".to_string()]);
        // A configured iss/aud is required, not merely checked when present.
        match &cfg.jwt_audience {
            Some(aud) => {
                pv.set_audience(&[aud]);
                pv.required_spec_claims.insert("aud".to_string());
            }
            None => pv.validate_aud = false,
        }
        if let Some(iss) = &cfg.jwt_issuer {
            pv.set_issuer(&[iss]);
            pv.required_spec_claims.insert("iss".to_string());
        }

        let mut dv = Validation::new(Algorithm::HS256);
        dv.validate_exp = false;
        dv.validate_aud = false;
        dv.required_spec_claims = HashSet::from(["sub".to_string(), "iss".to_string()]);
        dv.set_issuer(&[DEVICE_ISS]);

        Ok(Keys {
            parent_key,
            parent_validation: pv,
            device_enc: EncodingKey::from_secret(device_key),
            device_dec: DecodingKey::from_secret(device_key),
            device_validation: dv,
            server_key_digest: Sha256::digest(server_key.as_bytes()).into(),
            server_key_len: server_key.len(),
            verified: Mutex::new(HashMap::new()),
            leeway: i64::try_from(cfg.jwt_leeway_secs).unwrap_or(i64::MAX / 2),
        })
    }

    /// Whether `candidate` is the backend's server key: compared in constant time through
    /// its SHA-256. A candidate of another length is refused before hashing (every parent
    /// and device request passes here, and hashing a JWT cost 28,000 instructions per
    /// command); the time that takes reveals the key's length only, not its content.
    pub fn is_server_key(&self, candidate: &str) -> bool {
        if candidate.len() != self.server_key_len {
            return false;
        }
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        d.ct_eq(&self.server_key_digest).into()
    }

    /// Issues a device token of generation 0 (a new device). It carries no expiry:
    /// revocation or a rotation ends it.
    pub fn issue_device_token(&self, device_id: &str, child_id: &str) -> String {
        self.issue_device_token_gen(device_id, child_id, 0, now_ms() / 1000)
    }

    /// Issues the device token of generation `gen`, issued at `iat` (seconds). The same
    /// arguments give the same token, so a pending rotation's token can be sent again
    /// without being stored.
    pub fn issue_device_token_gen(
        &self,
        device_id: &str,
        child_id: &str,
        gen: i64,
        iat: i64,
    ) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(DEVICE_KID.to_string());
        let claims = DeviceClaims {
            sub: device_id.to_string(),
            cid: child_id.to_string(),
            typ: "device".to_string(),
            iss: DEVICE_ISS.to_string(),
            iat,
            gen,
        };
        // Encoding HS256 with a byte key and plain claims cannot fail.
        encode(&header, &claims, &self.device_enc).unwrap_or_default()
    }

    /// Verifies a parent JWT or a device token (not the server key). Device revocation is
    /// not checked here: callers look the device up in the store. A token verified before
    /// and not expired since is answered from memory.
    pub fn verify(&self, token: &str) -> Result<Actor, AuthError> {
        let now = now_ms() / 1000;
        if let Some(actor) = self.cached(token, now) {
            return Ok(actor);
        }
        let actor = self.verify_signed(token)?;
        let until = match &actor {
            Actor::Parent { exp, .. } => exp.saturating_add(self.leeway),
            _ => i64::MAX,
        };
        if let Ok(mut m) = self.verified.lock() {
            if m.len() >= VERIFIED_CAP {
                m.clear();
            }
            m.insert(token.into(), (actor.clone(), until));
        }
        Ok(actor)
    }

    /// What `token` proved when it was verified, if it was and is still valid at `now`
    /// (seconds); an expired entry is dropped.
    fn cached(&self, token: &str, now: i64) -> Option<Actor> {
        let mut m = self.verified.lock().ok()?;
        let (actor, until) = m.get(token)?;
        if now <= *until {
            return Some(actor.clone());
        }
        m.remove(token);
        None
    }

    /// The signature and claims check behind [`Keys::verify`].
    fn verify_signed(&self, token: &str) -> Result<Actor, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > 8 * 1024 {
            return Err(AuthError::Invalid);
        }
        let header = decode_header(token).map_err(|_| AuthError::Invalid)?;
        if header.kid.as_deref() == Some(DEVICE_KID) {
            let data = decode::<DeviceClaims>(token, &self.device_dec, &self.device_validation)
                .map_err(map_jwt_error)?;
            let c = data.claims;
            if c.typ != "device" || !valid_id(&c.sub) || !valid_id(&c.cid) || c.gen < 0 {
                return Err(AuthError::Invalid);
            }
            return Ok(Actor::Device {
                device_id: c.sub,
                child_id: c.cid,
                gen: c.gen,
            });
        }
        let data = decode::<Value>(token, &self.parent_key, &self.parent_validation)
            .map_err(map_jwt_error)?;
        let claims = data.claims;
        let user_id = claim_id(claims.get("sub")).or_else(|| claim_id(claims.get("id")));
        let user_id = match user_id {
            Some(u) if valid_id(&u) => u,
            _ => return Err(AuthError::Invalid),
        };
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(AuthError::Invalid)?;
        let is_admin = claims
            .get("isAdmin")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Actor::Parent {
            user_id,
            is_admin,
            exp,
        })
    }
}

fn claim_id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        _ => AuthError::Invalid,
    }
}

/// Takes the credential out of an `Authorization: Bearer <credential>` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        let t = rest.trim();
        (!t.is_empty()).then_some(t)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    const SECRET: &str = "test-secret-test-secret-test-secret";

    fn keys() -> Keys {
        let cfg = Config::parse_from(["relay"]);
        Keys::new(
            &cfg,
            SECRET,
            "server-key",
            b"device-key-device-key-device-key",
        )
        .unwrap()
    }

    fn hs(claims: Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn future() -> i64 {
        now_ms() / 1000 + 3600
    }

    #[test]
    fn parent_tokens() {
        let k = keys();
        let t = hs(
            json!({"sub": "u1", "exp": future(), "isAdmin": true}),
            SECRET,
        );
        assert_eq!(
            k.verify(&t),
            Ok(Actor::Parent {
                user_id: "u1".into(),
                is_admin: true,
                exp: future()
            })
        );
        // `id` instead of `sub`, as a number.
        let t = hs(json!({"id": 42, "exp": future()}), SECRET);
        assert!(matches!(k.verify(&t), Ok(Actor::Parent { user_id, .. }) if user_id == "42"));
        // Wrong secret, expired, missing exp, not yet valid, no subject.
        assert_eq!(
            k.verify(&hs(json!({"sub": "u1", "exp": future()}), "other")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            k.verify(&hs(json!({"sub": "u1", "exp": 1000}), SECRET)),
            Err(AuthError::Expired)
        );
        assert_eq!(
            k.verify(&hs(json!({"sub": "u1"}), SECRET)),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            k.verify(&hs(
                json!({"sub": "u1", "exp": future(), "nbf": future()}),
                SECRET
            )),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(
            k.verify(&hs(json!({"exp": future()}), SECRET)),
            Err(AuthError::Invalid)
        );
        assert_eq!(k.verify("garbage"), Err(AuthError::Invalid));
        assert_eq!(k.verify(""), Err(AuthError::Missing));
    }

    #[test]
    fn alg_none_and_confusion_are_refused() {
        let k = keys();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = b64.encode(json!({"sub": "u1", "exp": future()}).to_string());
        let none = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), body);
        assert_eq!(k.verify(&none), Err(AuthError::Invalid));
        // An HS384 token signed with the right secret is still refused: the algorithm is pinned.
        let t = encode(
            &Header::new(Algorithm::HS384),
            &json!({"sub": "u1", "exp": future()}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(k.verify(&t), Err(AuthError::Invalid));
        // A header claiming RS256 over an HMAC signature.
        let forged = format!(
            "{}.{}.sig",
            b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            body
        );
        assert_eq!(k.verify(&forged), Err(AuthError::Invalid));
    }

    #[test]
    fn device_tokens() {
        let k = keys();
        let t = k.issue_device_token("d1", "c1");
        assert_eq!(
            k.verify(&t),
            Ok(Actor::Device {
                device_id: "d1".into(),
                child_id: "c1".into(),
                gen: 0
            })
        );
        // Generation 0 tokens carry no `gen` claim (as before rotation existed).
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = |t: &str| -> Value {
            serde_json::from_slice(&b64.decode(t.split('.').nth(1).unwrap()).unwrap()).unwrap()
        };
        assert!(body(&t).get("gen").is_none());
        // A later generation carries it, and the same arguments give the same token.
        let t3 = k.issue_device_token_gen("d1", "c1", 3, 1_700_000_000);
        assert_eq!(body(&t3)["gen"], 3);
        assert_eq!(t3, k.issue_device_token_gen("d1", "c1", 3, 1_700_000_000));
        assert!(matches!(k.verify(&t3), Ok(Actor::Device { gen: 3, .. })));
        // A device token signed by another relay is refused.
        let other = Keys::new(
            &Config::parse_from(["relay"]),
            SECRET,
            "server-key",
            b"another-device-key-0123456789abcd",
        )
        .unwrap();
        assert_eq!(
            k.verify(&other.issue_device_token("d1", "c1")),
            Err(AuthError::Invalid)
        );
        // A parent JWT dressed up with the device kid is refused.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(DEVICE_KID.into());
        let t = encode(
            &h,
            &json!({"sub": "d1", "cid": "c1", "typ": "device", "iss": DEVICE_ISS, "iat": 1}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(k.verify(&t), Err(AuthError::Invalid));
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let mut cfg = Config::parse_from(["relay"]);
        cfg.jwt_issuer = Some("https://app.example".into());
        cfg.jwt_audience = Some("safestream".into());
        let k = Keys::new(
            &cfg,
            SECRET,
            "server-key",
            b"device-key-device-key-device-key",
        )
        .unwrap();
        let good = json!({"sub": "u1", "exp": future(), "iss": "https://app.example", "aud": "safestream"});
        assert!(k.verify(&hs(good, SECRET)).is_ok());
        let wrong_iss = json!({"sub": "u1", "exp": future(), "iss": "https://evil.example", "aud": "safestream"});
        assert_eq!(k.verify(&hs(wrong_iss, SECRET)), Err(AuthError::Invalid));
        let wrong_aud =
            json!({"sub": "u1", "exp": future(), "iss": "https://app.example", "aud": "other"});
        assert_eq!(k.verify(&hs(wrong_aud, SECRET)), Err(AuthError::Invalid));
        let missing = json!({"sub": "u1", "exp": future()});
        assert_eq!(k.verify(&hs(missing, SECRET)), Err(AuthError::Invalid));
        // Without configuration, iss/aud are not required (and a token carrying them passes).
        let plain = keys();
        let with = json!({"sub": "u1", "exp": future(), "iss": "x", "aud": "y"});
        assert!(plain.verify(&hs(with, SECRET)).is_ok());
    }

    #[test]
    fn server_key_and_bearer() {
        let k = keys();
        assert!(k.is_server_key("server-key"));
        assert!(!k.is_server_key("server-ke"));
        assert!(!k.is_server_key("server-kez"));
        assert!(!k.is_server_key(""));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn a_remembered_token_proves_the_same_and_only_until_it_expires() {
        let k = keys();
        let exp = future();
        let t = hs(json!({"sub": "u1", "exp": exp}), SECRET);
        let first = k.verify(&t).unwrap();
        assert_eq!(k.cached(&t, exp), Some(first.clone()));
        assert_eq!(k.verify(&t), Ok(first));
        // Past exp and the leeway it is forgotten, and verifying again says why.
        assert_eq!(k.cached(&t, exp + k.leeway + 1), None);
        assert_eq!(k.cached(&t, exp), None);
        // A token that differs in one byte is checked, and refused, not matched.
        let mut forged = t.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(k.verify(&forged), Err(AuthError::Invalid));
        assert_eq!(k.cached(&forged, exp), None);
        // Wrongly signed tokens are never remembered.
        let wrong = hs(
            json!({"sub": "u2", "exp": exp}),
            "another-secret-another-secret-xx",
        );
        assert_eq!(k.verify(&wrong), Err(AuthError::Invalid));
        assert_eq!(k.cached(&wrong, exp), None);
        // Device tokens are remembered without an expiry (revocation is the store's).
        let d = k.issue_device_token("dev1", "child1");
        let a = k.verify(&d).unwrap();
        assert_eq!(k.cached(&d, i64::MAX - 1), Some(a));
    }

    #[test]
    fn the_memory_of_verified_tokens_is_bounded() {
        let k = keys();
        for i in 0..VERIFIED_CAP + 10 {
            let t = hs(json!({"sub": format!("u{i}"), "exp": future()}), SECRET);
            k.verify(&t).unwrap();
        }
        let n = k.verified.lock().unwrap().len();
        assert!(n <= VERIFIED_CAP, "{n} entries");
    }
}
