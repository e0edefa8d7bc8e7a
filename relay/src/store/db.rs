//! One SQL surface over both engines: [`Db`] runs the store's statements on SQLite
//! (rusqlite) or PostgreSQL (the `postgres` crate), with the same `?N` placeholders, the same
//! three value kinds ([`Arg`]: integer, text, null) and the same row accessors ([`Row`]).
//!
//! The statements themselves are written once, in the subset both engines accept. The only
//! dialect difference the callers see is [`Db::for_update`]: row locks for read-then-write
//! steps, which PostgreSQL needs (several nodes write at once) and SQLite does not (one
//! writer holds the database).

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::types::{IsNull, ToSql, Type};

use super::{StoreError, StoreResult};

/// A statement argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// An integer (stored as `INTEGER` / `BIGINT`).
    Int(i64),
    /// Text.
    Text(&'a str),
    /// SQL NULL.
    Null,
}

/// Turns a Rust value into an [`Arg`].
pub trait ToArg {
    /// The argument.
    fn to_arg(&self) -> Arg<'_>;
}

impl ToArg for i64 {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Int(*self)
    }
}
impl ToArg for str {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}
impl ToArg for String {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}
impl<T: ToArg + ?Sized> ToArg for &T {
    fn to_arg(&self) -> Arg<'_> {
        (**self).to_arg()
    }
}
impl<T: ToArg> ToArg for Option<T> {
    fn to_arg(&self) -> Arg<'_> {
        match self {
            Some(v) => v.to_arg(),
            None => Arg::Null,
        }
    }
}

/// `args![a, b, c]`: a slice of [`Arg`]s.
macro_rules! args {
    () => { &[] as &[$crate::store::db::Arg<'_>] };
    ($($e:expr),+ $(,)?) => { &[$($crate::store::db::ToArg::to_arg(&$e)),+][..] };
}
pub(crate) use args;

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::Int(v) => ValueRef::Integer(*v),
            Arg::Text(s) => ValueRef::Text(s.as_bytes()),
            Arg::Null => ValueRef::Null,
        }))
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Text(s) => s.to_sql(ty, out),
            Arg::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Arg::Int(v) if *ty == Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
            Arg::Int(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::TEXT | Type::VARCHAR | Type::BPCHAR
        )
    }

    postgres::types::to_sql_checked!();
}

/// One result row, whichever engine produced it.
pub enum Row<'r> {
    /// SQLite.
    Lite(&'r rusqlite::Row<'r>),
    /// PostgreSQL.
    Pg(&'r postgres::Row),
}

impl Row<'_> {
    /// A non-null integer column.
    pub fn int(&self, i: usize) -> StoreResult<i64> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Db(format!("column {i} is NULL")))
    }

    /// A nullable integer column.
    pub fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        match self {
            Row::Lite(r) => Ok(r.get(i)?),
            Row::Pg(r) => {
                let ty = r
                    .columns()
                    .get(i)
                    .map(|c| c.type_().clone())
                    .ok_or_else(|| StoreError::Db(format!("no column {i}")))?;
                Ok(match ty {
                    Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(i64::from),
                    Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(i64::from),
                    _ => r.try_get::<_, Option<i64>>(i)?,
                })
            }
        }
    }

    /// A non-null text column.
    pub fn text(&self, i: usize) -> StoreResult<String> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Db(format!("column {i} is NULL")))
    }

    /// A nullable text column.
    pub fn opt_text(&self, i: usize) -> StoreResult<Option<String>> {
        match self {
            Row::Lite(r) => Ok(r.get(i)?),
            Row::Pg(r) => Ok(r.try_get(i)?),
        }
    }
}

/// A PostgreSQL connection with its prepared-statement cache. Used by one thread at a time.
pub struct PgConn {
    url: String,
    client: RefCell<Option<postgres::Client>>,
    stmts: RefCell<HashMap<String, postgres::Statement>>,
}

impl PgConn {
    /// Connects. Call from a plain thread: the `postgres` client blocks on its own runtime.
    pub fn connect(url: &str) -> Result<PgConn, String> {
        let c = PgConn {
            url: url.to_string(),
            client: RefCell::new(None),
            stmts: RefCell::new(HashMap::new()),
        };
        c.ensure().map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// Reconnects if the connection was lost (PostgreSQL restarted, network cut).
    pub fn ensure(&self) -> StoreResult<()> {
        let mut slot = self.client.borrow_mut();
        if slot.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.stmts.borrow_mut().clear();
        let client = postgres::Client::connect(&self.url, postgres::NoTls)
            .map_err(|e| StoreError::Db(format!("connecting to PostgreSQL: {e}")))?;
        *slot = Some(client);
        Ok(())
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> StoreResult<T> {
        let mut slot = self.client.borrow_mut();
        let client = slot
            .as_mut()
            .ok_or_else(|| StoreError::Db("not connected to PostgreSQL".into()))?;
        Ok(f(client)?)
    }

    fn statement(&self, sql: &str) -> StoreResult<postgres::Statement> {
        if let Some(s) = self.stmts.borrow().get(sql) {
            return Ok(s.clone());
        }
        let pg_sql = dollar_placeholders(sql);
        let stmt = self.with(|c| c.prepare(&pg_sql))?;
        let mut cache = self.stmts.borrow_mut();
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }

    fn query(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<postgres::Row>> {
        let stmt = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        self.with(|c| c.query(&stmt, &params))
    }

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        let stmt = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        self.with(|c| c.execute(&stmt, &params))
    }
}

/// `?1` -> `$1` (the store's SQL has no `?` inside string literals).
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A connection of either engine, borrowed for one operation.
#[derive(Clone, Copy)]
pub enum Db<'a> {
    /// SQLite.
    Lite(&'a rusqlite::Connection),
    /// PostgreSQL.
    Pg(&'a PgConn),
}

impl Db<'_> {
    /// Runs a statement; returns the number of rows it changed.
    pub fn exec(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        match self {
            Db::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(args.iter()))? as u64)
            }
            Db::Pg(c) => c.execute(sql, args),
        }
    }

    /// Maps every row.
    pub fn map<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&Row<'_>) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        match self {
            Db::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Lite(r))?);
                }
                Ok(out)
            }
            Db::Pg(c) => c.query(sql, args)?.iter().map(|r| f(&Row::Pg(r))).collect(),
        }
    }

    /// Maps the first row, if any.
    pub fn opt<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnOnce(&Row<'_>) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        match self {
            Db::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&Row::Lite(r))?)),
                    None => Ok(None),
                }
            }
            Db::Pg(c) => match c.query(sql, args)?.first() {
                Some(r) => Ok(Some(f(&Row::Pg(r))?)),
                None => Ok(None),
            },
        }
    }

    /// Maps the first row; an error if there is none.
    pub fn one<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnOnce(&Row<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.opt(sql, args, f)?
            .ok_or_else(|| StoreError::Db("the query returned no row".into()))
    }

    /// Whether the query returns a row.
    pub fn exists(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<bool> {
        Ok(self.opt(sql, args, |_| Ok(()))?.is_some())
    }

    /// One integer (`COUNT`, `COALESCE(MAX(..), 0)`, ...).
    pub fn int(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<i64> {
        self.one(sql, args, |r| r.int(0))
    }

    /// Runs statements without arguments (transaction control).
    pub fn batch(&self, sql: &str) -> StoreResult<()> {
        match self {
            Db::Lite(c) => Ok(c.execute_batch(sql)?),
            Db::Pg(c) => c.with(|cl| cl.batch_execute(sql)),
        }
    }

    /// `" FOR UPDATE"` on PostgreSQL (lock the rows a read-then-write step reads, since other
    /// nodes write concurrently), nothing on SQLite (its one writer already excludes them).
    pub fn for_update(&self) -> &'static str {
        match self {
            Db::Lite(_) => "",
            Db::Pg(_) => " FOR UPDATE",
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
                StoreError::Conflict("a concurrent request wrote the same record; retry".into())
            }
            Some(c)
                if *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                StoreError::Db(format!("concurrent update, retry: {e}"))
            }
            _ => StoreError::Db(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE x = ?1 AND y > ?12 LIMIT ?3"),
            "SELECT a FROM t WHERE x = $1 AND y > $12 LIMIT $3"
        );
        assert_eq!(dollar_placeholders("a ? b"), "a ? b");
    }

    #[test]
    fn sqlite_round_trip() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let db = Db::Lite(&c);
        db.batch("CREATE TABLE t (a INTEGER, b TEXT)").unwrap();
        let none: Option<String> = None;
        assert_eq!(
            db.exec("INSERT INTO t VALUES (?1, ?2)", args![7i64, "x"])
                .unwrap(),
            1
        );
        db.exec("INSERT INTO t VALUES (?1, ?2)", args![8i64, none])
            .unwrap();
        let rows = db
            .map("SELECT a, b FROM t ORDER BY a", args![], |r| {
                Ok((r.int(0)?, r.opt_text(1)?))
            })
            .unwrap();
        assert_eq!(rows, vec![(7, Some("x".into())), (8, None)]);
        assert!(db
            .exists("SELECT 1 FROM t WHERE a = ?1", args![8i64])
            .unwrap());
        assert!(!db
            .exists("SELECT 1 FROM t WHERE a = ?1", args![9i64])
            .unwrap());
        assert_eq!(db.int("SELECT COUNT(*) FROM t", args![]).unwrap(), 2);
        assert!(db
            .one("SELECT a FROM t WHERE a = 0", args![], |r| r.int(0))
            .is_err());
    }
}
