//! Where the device token lives: the [`TokenStore`] trait and its stores.
//!
//! The token is a bearer credential: it is never logged (its `Debug` is redacted), never
//! put in a URL, and only leaves the process in the socket's first frame and in
//! `Authorization` headers.

use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::error::AgentError;
use crate::platform::Platform;

/// A secure place for the device token.
pub trait TokenStore: Send + Sync {
    /// The stored token, if any.
    fn load(&self) -> Result<Option<String>, String>;
    /// Stores `token`, replacing any previous one.
    fn save(&self, token: &str) -> Result<(), String>;
    /// Deletes the token.
    fn clear(&self) -> Result<(), String>;
}

/// A token held in memory only (tests, the simulated device).
#[derive(Default)]
pub struct MemoryTokenStore(Mutex<Option<String>>);

impl MemoryTokenStore {
    /// A store holding `token`.
    pub fn new(token: Option<String>) -> Self {
        Self(Mutex::new(token))
    }
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryTokenStore(<redacted>)")
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<String>, String> {
        Ok(self.0.lock().map_err(|_| "poisoned".to_owned())?.clone())
    }
    fn save(&self, token: &str) -> Result<(), String> {
        *self.0.lock().map_err(|_| "poisoned".to_owned())? = Some(token.to_owned());
        Ok(())
    }
    fn clear(&self) -> Result<(), String> {
        *self.0.lock().map_err(|_| "poisoned".to_owned())? = None;
        Ok(())
    }
}

/// The host's own secure store, through [`Platform::load_token`] and
/// [`Platform::save_token`] (Android Keystore-backed storage, for instance).
pub struct PlatformTokenStore(Arc<dyn Platform>);

impl PlatformTokenStore {
    /// A store that delegates to `platform`.
    pub fn new(platform: Arc<dyn Platform>) -> Self {
        Self(platform)
    }
}

impl TokenStore for PlatformTokenStore {
    fn load(&self) -> Result<Option<String>, String> {
        Ok(self.0.load_token())
    }
    fn save(&self, token: &str) -> Result<(), String> {
        self.0.save_token(Some(token.to_owned()));
        Ok(())
    }
    fn clear(&self) -> Result<(), String> {
        self.0.save_token(None);
        Ok(())
    }
}

/// The platform keystore through the `keyring` crate (feature `keyring-store`): Keychain
/// on iOS/macOS, Credential Manager on Windows. On other targets keyring has no persistent
/// store with these features (its mock keeps the token in memory only), so
/// [`default_token_store`] does not pick it there.
#[cfg(feature = "keyring-store")]
pub struct KeyringTokenStore(keyring::Entry);

#[cfg(feature = "keyring-store")]
impl KeyringTokenStore {
    /// The entry `service`/`account` (e.g. `"safestream"`, `"device-token"`).
    pub fn new(service: &str, account: &str) -> Result<Self, String> {
        keyring::Entry::new(service, account)
            .map(Self)
            .map_err(|e| e.to_string())
    }
}

#[cfg(feature = "keyring-store")]
impl TokenStore for KeyringTokenStore {
    fn load(&self) -> Result<Option<String>, String> {
        match self.0.get_password() {
            Ok(t) => Ok(Some(t)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn save(&self, token: &str) -> Result<(), String> {
        self.0.set_password(token).map_err(|e| e.to_string())
    }
    fn clear(&self) -> Result<(), String> {
        match self.0.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The store to use by default: the keyring on iOS, macOS and Windows when the
/// `keyring-store` feature is on, else the host's callbacks ([`PlatformTokenStore`]).
pub fn default_token_store(platform: Arc<dyn Platform>) -> Arc<dyn TokenStore> {
    #[cfg(all(
        feature = "keyring-store",
        any(target_os = "ios", target_os = "macos", target_os = "windows")
    ))]
    {
        if let Ok(store) = KeyringTokenStore::new("safestream", "device-token") {
            return Arc::new(store);
        }
    }
    Arc::new(PlatformTokenStore::new(platform))
}

/// A token in memory, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Secret(pub(crate) String);

/// Whether `t` can be a device token (it goes in a frame and a header as is).
pub(crate) fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= 8192 && t.bytes().all(|b| b.is_ascii_graphic())
}

/// The current device token, shared by the agent's parts, and the store that keeps it.
/// Watchers ([`Credentials::subscribe`]) see every change except a refresh announced on
/// the open socket.
pub(crate) struct Credentials {
    store: Arc<dyn TokenStore>,
    token: watch::Sender<Option<Secret>>,
}

fn malformed() -> AgentError {
    AgentError::Config {
        reason: "token is malformed".into(),
    }
}

impl Credentials {
    /// Loads the stored token (a malformed one counts as none).
    pub(crate) fn load(store: Arc<dyn TokenStore>) -> Result<Self, AgentError> {
        let token = store
            .load()
            .map_err(|reason| AgentError::Storage { reason })?
            .filter(|t| valid_token(t))
            .map(Secret);
        Ok(Self {
            store,
            token: watch::channel(token).0,
        })
    }

    /// The current token.
    pub(crate) fn current(&self) -> Option<Secret> {
        self.token.borrow().clone()
    }

    /// A receiver that sees the token change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Secret>> {
        self.token.subscribe()
    }

    /// Stores a new token and tells the watchers.
    pub(crate) fn set(&self, token: String) -> Result<(), AgentError> {
        if !valid_token(&token) {
            return Err(malformed());
        }
        self.store
            .save(&token)
            .map_err(|reason| AgentError::Storage { reason })?;
        self.token.send_replace(Some(Secret(token)));
        Ok(())
    }

    /// Stores a refreshed token; tells the watchers only when `notify` (no open socket to
    /// announce it on). Returns it.
    pub(crate) fn refresh(&self, token: String, notify: bool) -> Result<Secret, AgentError> {
        if !valid_token(&token) {
            return Err(malformed());
        }
        self.store
            .save(&token)
            .map_err(|reason| AgentError::Storage { reason })?;
        let secret = Secret(token);
        self.token.send_if_modified(|t| {
            *t = Some(secret.clone());
            notify
        });
        Ok(secret)
    }

    /// Stores a token the relay rotated (`auth:rotate`), then reads it back: it is only
    /// taken (returned, and made the current token without telling the watchers) when the
    /// store gives it back unchanged. A store that silently keeps nothing (a host whose
    /// `save_token` does nothing) must not make the agent switch: the relay would then
    /// retire the old token, and the next process start would load it and be refused.
    /// On a mismatch the old token is written back (best effort) and kept; it stays valid
    /// and the relay sends the new one again at the next connect.
    pub(crate) fn store_rotated(&self, token: String) -> Result<Secret, AgentError> {
        if !valid_token(&token) {
            return Err(malformed());
        }
        self.store
            .save(&token)
            .map_err(|reason| AgentError::Storage { reason })?;
        let read_back = self
            .store
            .load()
            .map_err(|reason| AgentError::Storage { reason })?;
        if read_back.as_deref() != Some(token.as_str()) {
            if let Some(old) = self.current() {
                let _ = self.store.save(&old.0);
            }
            return Err(AgentError::Storage {
                reason: "the token store did not keep the rotated token".into(),
            });
        }
        let secret = Secret(token);
        self.token.send_if_modified(|t| {
            *t = Some(secret.clone());
            false
        });
        Ok(secret)
    }

    /// Deletes the token and tells the watchers.
    pub(crate) fn clear(&self) -> Result<(), AgentError> {
        self.store
            .clear()
            .map_err(|reason| AgentError::Storage { reason })?;
        self.token.send_replace(None);
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_round_trips_and_redacts() {
        let s = MemoryTokenStore::new(None);
        assert_eq!(s.load().unwrap(), None);
        s.save("tok-123").unwrap();
        assert_eq!(s.load().unwrap().as_deref(), Some("tok-123"));
        assert!(!format!("{s:?}").contains("tok-123"));
        assert!(!format!("{:?}", Secret("tok-123".into())).contains("tok-123"));
        s.clear().unwrap();
        assert_eq!(s.load().unwrap(), None);
    }

    /// A store whose `save` silently does nothing (a host without `save_token`).
    struct Forgetful(Option<String>);
    impl TokenStore for Forgetful {
        fn load(&self) -> Result<Option<String>, String> {
            Ok(self.0.clone())
        }
        fn save(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn clear(&self) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn a_rotated_token_is_taken_only_when_the_store_gives_it_back() {
        let c = Credentials::load(Arc::new(Forgetful(Some("old-token".into())))).unwrap();
        assert!(matches!(
            c.store_rotated("new-token".into()),
            Err(AgentError::Storage { .. })
        ));
        assert_eq!(c.current(), Some(Secret("old-token".into())));

        let store = Arc::new(MemoryTokenStore::new(Some("old-token".into())));
        let c = Credentials::load(store.clone()).unwrap();
        assert_eq!(c.store_rotated("new-token".into()).unwrap().0, "new-token");
        assert_eq!(c.current(), Some(Secret("new-token".into())));
        assert_eq!(store.load().unwrap().as_deref(), Some("new-token"));
    }
}
