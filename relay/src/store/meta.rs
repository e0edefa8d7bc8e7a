//! The `meta` table: the device-token signing key, and dev mode's generated secrets.

use base64::Engine as _;

use super::db::args;
use super::{Store, StoreResult};

impl Store {
    /// The relay's device-token signing key, created on first use (shared by every node).
    pub async fn device_key(&self) -> StoreResult<Vec<u8>> {
        let v = self.meta_secret("device_key").await?;
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| super::StoreError::Db(format!("device key: {e}")))
    }

    /// A random 32-byte secret (standard base64) kept under `key`, created on first use; the
    /// first node to insert it wins, so every node and every restart sees the same value.
    /// Dev mode keeps its generated JWT secret and server key here, so the tokens it printed
    /// (and a console signed in with them) still work after a restart.
    pub async fn meta_secret(&self, key: &'static str) -> StoreResult<String> {
        let mut fresh = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut fresh);
        let fresh = base64::engine::general_purpose::STANDARD.encode(fresh);
        self.write(move |w| {
            w.conn.exec(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                args![key, fresh],
            )?;
            w.conn
                .one("SELECT value FROM meta WHERE key = ?1", args![key], |r| {
                    r.text(0)
                })
        })
        .await
    }
}
