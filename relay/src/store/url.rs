//! `SAFESTREAM_DB`: which engine, and the path or URL it names.

use super::Engine;

/// Turns `SAFESTREAM_DB` into an engine and a path or URL.
pub(super) fn parse_db(db: &str) -> Result<(Engine, String), String> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        db.parse::<postgres::Config>()
            .map_err(|e| format!("SAFESTREAM_DB is not a valid PostgreSQL URL: {e}"))?;
        return Ok((Engine::Postgres, db.to_string()));
    }
    let path = db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"))
        .unwrap_or(db);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Err(
            "SAFESTREAM_DB must name a SQLite file (in-memory databases are not durable)".into(),
        );
    }
    Ok((Engine::Sqlite, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_urls() {
        assert_eq!(parse_db("safestream.db").unwrap().1, "safestream.db");
        assert_eq!(parse_db("sqlite:///tmp/x.db").unwrap().1, "/tmp/x.db");
        assert_eq!(parse_db("sqlite:x.db?mode=rwc").unwrap().1, "x.db");
        assert!(parse_db(":memory:").is_err());
        assert_eq!(parse_db("postgres://u@h/db").unwrap().0, Engine::Postgres);
        assert!(parse_db("postgres://u@h:notaport/db").is_err());
    }
}
