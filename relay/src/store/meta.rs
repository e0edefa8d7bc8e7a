//! The `meta` table: the device-token signing key.

use base64::Engine as _;

use super::db::args;
use super::{Store, StoreError, StoreResult};

impl Store {
    /// The relay's device-token signing key, created on first use (shared by every node).
    pub async fn device_key(&self) -> StoreResult<Vec<u8>> {
        let mut fresh = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut fresh);
        let fresh = base64::engine::general_purpose::STANDARD.encode(fresh);
        let v: String = self
            .write(move |w| {
                w.conn.exec(
                    "INSERT INTO meta (key, value) VALUES ('device_key', ?1) ON CONFLICT (key) DO NOTHING",
                    args![fresh],
                )?;
                w.conn.one("SELECT value FROM meta WHERE key = 'device_key'", args![], |r| r.text(0))
            })
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| StoreError::Db(format!("device key: {e}")))
    }
}
