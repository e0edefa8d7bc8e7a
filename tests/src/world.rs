//! [`World`]: the common end-to-end fixture — a relay, the backend, parent `u1`, child
//! `kid1` of that parent, and one registered device with its token.

use crate::{Backend, Parent, Relay, R};

/// A relay with one family and one registered device (not started: tests start the
/// simulated device the way they need).
pub struct World {
    /// The relay.
    pub relay: Relay,
    /// REST as the backend.
    pub backend: Backend,
    /// Parent `u1`.
    pub parent: Parent,
    /// Child `kid1`, guarded by `u1`.
    pub child: String,
    /// The registered device.
    pub device_id: String,
    /// Its token.
    pub token: String,
    /// A scratch directory (state directories of devices).
    pub dir: tempfile::TempDir,
}

impl World {
    /// Starts a relay and registers the family and the device.
    pub async fn new() -> R<World> {
        let relay = Relay::start().await?;
        let backend = Backend::new(&relay);
        let parent = Parent::new(&relay, "u1");
        let child = "kid1".to_owned();
        backend.child(&child, "u1").await?;
        let (device_id, token) = backend.device(&child, "Mia's tablet").await?;
        Ok(World {
            relay,
            backend,
            parent,
            child,
            device_id,
            token,
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
        })
    }
}
