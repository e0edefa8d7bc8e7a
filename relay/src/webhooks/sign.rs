//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! keyed by the base64-decoded part of a `whsec_<base64>` secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::hmac;

/// The prefix of a Standard Webhooks secret.
const PREFIX: &str = "whsec_";
/// Shortest and longest key accepted, in bytes (the spec asks for 24 to 64).
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
/// Secrets active at once, at most (the current one and the next, while rotating).
pub const MAX_SECRETS: usize = 2;

/// One signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct Secret {
    key: hmac::Key,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Parses one `whsec_<base64>` secret. The error says what is wrong, never the secret.
    pub fn parse(s: &str) -> Result<Secret, String> {
        let s = s.trim();
        let Some(b64) = s.strip_prefix(PREFIX) else {
            return Err("does not start with `whsec_`".into());
        };
        let key = STANDARD
            .decode(b64)
            .map_err(|_| "is not valid base64 after `whsec_`".to_string())?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(format!(
                "decodes to {} bytes; a key must be {} to {} bytes \
                 (make one with: echo whsec_$(openssl rand -base64 32))",
                key.len(),
                KEY_BYTES.start(),
                KEY_BYTES.end()
            ));
        }
        Ok(Secret {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        })
    }

    /// The signature of one attempt: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
    }
}

/// Parses the secrets setting: one secret, or two separated by a comma or spaces.
/// `what` names the setting in errors (which say which secret is wrong, never its text).
pub fn parse_secrets(raw: &str, what: &str) -> Result<Vec<Secret>, String> {
    let parts: Vec<&str> = raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if parts.len() > MAX_SECRETS {
        return Err(format!(
            "{what} has {} secrets; at most {MAX_SECRETS} may be active (the current one and the next)",
            parts.len()
        ));
    }
    let n = parts.len();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| Secret::parse(p).map_err(|e| format!("{what}: secret {} of {n} {e}", i + 1)))
        .collect()
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(secrets: &[Secret], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's published example.
    #[test]
    fn the_spec_test_vector_signs_as_published() {
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            s.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_spec_library_verifies_what_we_sign_with_each_of_two_secrets() {
        let (a, b) = (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
        let secrets = parse_secrets(&format!("{a}, {b}"), "S").unwrap();
        let body = r#"{"id":"evt_1","type":"command.status","data":{"x":"é"}}"#;
        let ts = chrono::Utc::now().timestamp();
        let sig = signature_header(&secrets, "evt_1", ts, body);
        assert_eq!(sig.split(' ').count(), 2);
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", "evt_1".parse().unwrap());
        headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        headers.insert("webhook-signature", sig.parse().unwrap());
        for secret in [a, b] {
            let wh = standardwebhooks::Webhook::new(secret).unwrap();
            wh.verify(body.as_bytes(), &headers)
                .unwrap_or_else(|e| panic!("{secret}: {e:?}"));
        }
        let other =
            standardwebhooks::Webhook::new("whsec_ZZECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .unwrap();
        assert!(other.verify(body.as_bytes(), &headers).is_err());
        // A changed body does not verify.
        let wh = standardwebhooks::Webhook::new(a).unwrap();
        assert!(wh.verify(b"{}", &headers).is_err());
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        let cases = [
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "does not start with `whsec_`",
            ),
            ("whsec_not*base64!", "not valid base64"),
            ("whsec_c2hvcnQ=", "decodes to 5 bytes"),
            ("", "is empty"),
        ];
        for (raw, want) in cases {
            let e = parse_secrets(raw, "SAFESTREAM_WEBHOOK_SECRETS").unwrap_err();
            assert!(e.contains(want), "{raw:?}: {e}");
            if !raw.is_empty() {
                assert!(!e.contains(raw), "the error echoes the secret: {e}");
            }
        }
        let good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let e = parse_secrets(&format!("{good},{good},{good}"), "S").unwrap_err();
        assert!(e.contains("has 3 secrets") && !e.contains("MfKQ"), "{e}");
        let e = parse_secrets(&format!("{good},whsec_x"), "S").unwrap_err();
        assert!(e.starts_with("S: secret 2 of 2"), "{e}");
        assert_eq!(format!("{:?}", Secret::parse(good).unwrap()), "Secret(..)");
    }
}
