//! Push wake-ups on the device: the push token the relay wakes this device through (kept in
//! the state directory and re-sent until the relay has it: after a restart, after a new
//! device token), and what one sync within a background budget did ([`SyncReport`]).

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wire::rest::FromBody;

use crate::error::AgentError;
use crate::storage::Storage;

/// The state file.
const FILE: &str = "push-token.json";

/// What [`Agent::sync_now_within`](crate::Agent::sync_now_within) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Commands handed to the host.
    pub ran: u32,
    /// Whether this call asked the relay (no request while the socket is open, or while
    /// another sync is running: that one's commands are the same).
    pub pulled: bool,
    /// Whether every ack queued so far had been answered by the relay when it returned (a
    /// command the host is still running has no ack yet).
    pub acks_done: bool,
}

/// The push token, as stored: the request body and whether the relay has it.
pub(crate) struct PushTokens {
    storage: Arc<dyn Storage>,
    state: Mutex<Option<(Value, bool)>>,
}

impl PushTokens {
    /// Loads the stored token (a damaged file counts as none: the host registers again at
    /// its next token callback).
    pub(crate) fn load(storage: Arc<dyn Storage>) -> Result<PushTokens, AgentError> {
        let raw = storage.load(FILE).map_err(|e| AgentError::Storage {
            reason: e.to_string(),
        })?;
        let state = raw
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| {
                let body = v.get("body")?.clone();
                wire::push::PushToken::from_body(&body).ok()?;
                Some((
                    body,
                    v.get("sent").and_then(Value::as_bool).unwrap_or(false),
                ))
            });
        Ok(PushTokens {
            storage,
            state: Mutex::new(state),
        })
    }

    fn save(&self, state: &(Value, bool)) -> Result<(), AgentError> {
        let v = json!({"body": state.0, "sent": state.1});
        self.storage
            .save(FILE, v.to_string().as_bytes())
            .map_err(|e| AgentError::Storage {
                reason: e.to_string(),
            })
    }

    /// Checks and stores a new token, not yet sent. A token equal to the stored one keeps
    /// its state (the platforms call back with the same token on every start).
    pub(crate) fn set(
        &self,
        provider: &str,
        token: &str,
        apns_environment: Option<&str>,
    ) -> Result<(), AgentError> {
        let mut body = json!({"provider": provider, "token": token});
        if let Some(env) = apns_environment {
            body["apnsEnvironment"] = json!(env);
        }
        let checked = wire::push::PushToken::from_body(&body).map_err(|e| AgentError::Config {
            reason: format!("push token: {}", e.0),
        })?;
        let body = serde_json::to_value(&checked).unwrap_or(body);
        let mut st = crate::lock(&self.state);
        if st.as_ref().is_some_and(|(b, _)| *b == body) {
            return Ok(());
        }
        let new = (body, false);
        self.save(&new)?;
        *st = Some(new);
        Ok(())
    }

    /// The body to send, when the relay does not have it yet.
    pub(crate) fn unsent(&self) -> Option<Value> {
        crate::lock(&self.state)
            .as_ref()
            .filter(|(_, sent)| !sent)
            .map(|(b, _)| b.clone())
    }

    /// The relay answered 2xx for `body` (unless the token changed meanwhile).
    pub(crate) fn sent(&self, body: &Value) {
        let mut st = crate::lock(&self.state);
        if let Some(s) = st.as_mut().filter(|(b, _)| b == body) {
            s.1 = true;
            let copy = s.clone();
            if let Err(e) = self.save(&copy) {
                tracing::warn!(error = %e, "could not record the push token as sent");
            }
        }
    }

    /// The device token changed (another device record, maybe): send the token again.
    pub(crate) fn resend(&self) {
        let mut st = crate::lock(&self.state);
        if let Some(s) = st.as_mut() {
            s.1 = false;
            let copy = s.clone();
            let _ = self.save(&copy);
        }
    }
}
