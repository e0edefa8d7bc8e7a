//! Field checks for request bodies, with the exact messages clients see in a 400.
//!
//! Every check answers [`Invalid`] with a message meant for the client; nothing here looks
//! anything up, so a body is always validated before any state is read.

use serde_json::Value;

/// A request body or field that is not acceptable: a 400 `bad_request` with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl Invalid {
    /// An `Invalid` with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Invalid(message.into())
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// The result of a check.
pub type Checked<T> = Result<T, Invalid>;

/// Whether `s` is an acceptable id (child ids are the main app's; relay ids are UUIDs):
/// 1–128 characters of `[A-Za-z0-9_.:-]`.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Fails unless `s` is a [`valid_id`].
pub fn check_id(what: &str, s: &str) -> Checked<()> {
    if valid_id(s) {
        Ok(())
    } else {
        Err(Invalid(format!(
            "{what} must be 1-128 characters of A-Z a-z 0-9 _ . : -"
        )))
    }
}

/// A user id: a string [`valid_id`], or an integer (the main app's numeric ids), as text.
pub fn user_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if valid_id(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// Fails unless the body is a JSON object.
pub fn require_object(body: &Value) -> Checked<()> {
    if body.is_object() {
        Ok(())
    } else {
        Err(Invalid::new("the body must be a JSON object"))
    }
}

/// A required string field, length within `1..=max` characters, not blank.
pub fn req_str(body: &Value, field: &str, max: usize) -> Checked<String> {
    match body.get(field) {
        Some(Value::String(s)) => check_len(field, s, 1, max).map(|_| s.clone()),
        Some(_) => Err(Invalid(format!("{field} must be a string"))),
        None => Err(Invalid(format!("{field} is required"))),
    }
}

/// A required id field: a string that is a [`valid_id`].
pub fn req_id(body: &Value, field: &str) -> Checked<String> {
    let s = req_str(body, field, 128)?;
    check_id(field, &s)?;
    Ok(s)
}

/// An optional string field (`null` counts as absent), length within `min..=max` characters.
pub fn opt_str(body: &Value, field: &str, min: usize, max: usize) -> Checked<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => check_len(field, s, min, max).map(|_| Some(s.clone())),
        Some(_) => Err(Invalid(format!("{field} must be a string"))),
    }
}

/// An optional id field (`null` counts as absent).
pub fn opt_id(body: &Value, field: &str) -> Checked<Option<String>> {
    let s = opt_str(body, field, 1, 128)?;
    if let Some(s) = &s {
        check_id(field, s)?;
    }
    Ok(s)
}

fn check_len(field: &str, s: &str, min: usize, max: usize) -> Checked<()> {
    let n = s.chars().count();
    if n < min || n > max || (min > 0 && s.trim().is_empty()) {
        return Err(Invalid(format!("{field} must be {min}-{max} characters")));
    }
    if s.contains('\0') {
        return Err(Invalid(format!("{field} must not contain NUL")));
    }
    Ok(())
}

/// An optional integer field within `min..=max`; `None` when absent or null.
pub fn opt_int(body: &Value, field: &str, min: i64, max: i64) -> Checked<Option<i64>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Invalid(format!(
                "{field} must be an integer from {min} to {max}"
            ))),
        },
    }
}

/// An optional JSON object field of at most `max_bytes` serialized; `{}` when absent or null.
pub fn opt_object(body: &Value, field: &str, max_bytes: usize) -> Checked<Value> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => {
            if v.to_string().len() > max_bytes {
                Err(Invalid(format!(
                    "{field} must be at most {max_bytes} bytes of JSON"
                )))
            } else {
                Ok(v.clone())
            }
        }
        Some(_) => Err(Invalid(format!("{field} must be an object"))),
    }
}

/// Fails if the object has a field not in `allowed` (typos are errors, not no-ops).
pub fn only_fields(body: &Value, allowed: &[&str]) -> Checked<()> {
    if let Some(obj) = body.as_object() {
        if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Invalid(format!(
                "unknown field {:?}; allowed: {}",
                truncate(k, 40),
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Cuts a string for safe inclusion in an error message.
pub fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids() {
        assert!(valid_id("child-1"));
        assert!(valid_id("a:b.c_d"));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert!(!valid_id("x/../y"));
        assert!(!valid_id(&"a".repeat(129)));
        assert_eq!(user_id(&json!(42)), Some("42".into()));
        assert_eq!(user_id(&json!("u-1")), Some("u-1".into()));
        assert_eq!(user_id(&json!("u 1")), None);
        assert_eq!(user_id(&json!(1.5)), None);
    }

    #[test]
    fn field_checks() {
        let b = json!({"name": "x", "n": 5, "o": {"a": 1}, "bad": 3});
        assert_eq!(req_str(&b, "name", 10).unwrap(), "x");
        assert_eq!(
            req_str(&b, "missing", 10).unwrap_err().0,
            "missing is required"
        );
        assert_eq!(req_str(&b, "n", 10).unwrap_err().0, "n must be a string");
        assert_eq!(opt_int(&b, "n", 0, 10).unwrap(), Some(5));
        assert!(opt_int(&b, "n", 6, 10).is_err());
        assert!(opt_object(&b, "o", 100).is_ok());
        assert!(opt_object(&b, "o", 3).is_err());
        assert!(only_fields(&b, &["name", "n", "o"]).is_err());
        assert!(only_fields(&b, &["name", "n", "o", "bad"]).is_ok());
        assert!(opt_str(&json!({"s": "  "}), "s", 1, 10).is_err());
        assert!(opt_str(&json!({"s": "a\0b"}), "s", 0, 10).is_err());
        assert_eq!(opt_id(&json!({"d": null}), "d").unwrap(), None);
        assert!(opt_id(&json!({"d": "a/b"}), "d").is_err());
        assert!(require_object(&json!([])).is_err());
    }
}
