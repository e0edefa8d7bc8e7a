//! Schema migrations for both dialects (`relay/migrations/<dialect>/`), applied at start:
//! SQLite on the writer's connection, PostgreSQL under an advisory lock.

use super::db::{args, Db, PgConn};
use super::StoreError;

pub(super) struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The migrations of one dialect (`relay/migrations/<dialect>/`): the same versions and
/// names for both engines, so version N is the same tables in either (indexes may differ
/// where one engine has no query for them: version 8; or the layout of a table: version 9).
macro_rules! migrations {
    ($dialect:literal) => {
        &[
            Migration {
                version: 1,
                name: "init",
                sql: include_str!(concat!("../../migrations/", $dialect, "/0001_init.sql")),
            },
            Migration {
                version: 2,
                name: "per_user_event_seq",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $dialect,
                    "/0002_per_user_event_seq.sql"
                )),
            },
            Migration {
                version: 3,
                name: "pending_by_time",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $dialect,
                    "/0003_pending_by_time.sql"
                )),
            },
            Migration {
                version: 4,
                name: "device_token_rotation",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $dialect,
                    "/0004_device_token_rotation.sql"
                )),
            },
            Migration {
                version: 5,
                name: "webhooks",
                sql: include_str!(concat!("../../migrations/", $dialect, "/0005_webhooks.sql")),
            },
            Migration {
                version: 6,
                name: "push",
                sql: include_str!(concat!("../../migrations/", $dialect, "/0006_push.sql")),
            },
            Migration {
                version: 7,
                name: "failures_by_time",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $dialect,
                    "/0007_failures_by_time.sql"
                )),
            },
            Migration {
                version: 8,
                name: "sqlite_index_writes",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $dialect,
                    "/0008_sqlite_index_writes.sql"
                )),
            },
            Migration {
                version: 9,
                name: "event_log_in_commit_order",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $dialect,
                    "/0009_event_log_in_commit_order.sql"
                )),
            },
        ]
    };
}
pub(super) const SQLITE_MIGRATIONS: &[Migration] = migrations!("sqlite");
const PG_MIGRATIONS: &[Migration] = migrations!("postgres");
/// Key of the advisory lock held while migrating PostgreSQL (several nodes may start at once).
const PG_MIGRATION_LOCK: i64 = 0x5afe_57ea;

/// Migrates PostgreSQL under an advisory lock, so nodes starting together take turns.
pub(super) fn pg_migrate(c: &PgConn) -> Result<(), String> {
    let db = Db::Pg(c);
    let err = |e: StoreError| format!("migrating the database: {e}");
    db.exec("SELECT pg_advisory_lock(?1)", args![PG_MIGRATION_LOCK])
        .map_err(err)?;
    let res = migrate(db, PG_MIGRATIONS);
    let _ = db.exec("SELECT pg_advisory_unlock(?1)", args![PG_MIGRATION_LOCK]);
    res
}

pub(super) fn migrate(db: Db<'_>, migrations: &[Migration]) -> Result<(), String> {
    let err = |e: StoreError| format!("migrating the database: {e}");
    db.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .map_err(err)?;
    let current = db
        .int(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            args![],
        )
        .map_err(err)?;
    let newest = migrations.last().map(|m| m.version).unwrap_or(0);
    if current > newest {
        return Err(format!(
            "the database schema is version {current}, newer than this relay knows ({newest}); \
             run a newer relay"
        ));
    }
    let begin = if db.is_pg() {
        "BEGIN"
    } else {
        "BEGIN IMMEDIATE"
    };
    for m in migrations.iter().filter(|m| m.version > current) {
        db.batch(begin).map_err(err)?;
        let applied = db.batch(m.sql).and_then(|_| {
            db.exec(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                args![m.version, m.name, crate::model::now_ms()],
            )
        });
        match applied {
            Ok(_) => db.batch("COMMIT").map_err(err)?,
            Err(e) => {
                let _ = db.batch("ROLLBACK");
                return Err(err(e));
            }
        }
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}
