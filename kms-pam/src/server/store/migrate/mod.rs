//! `kms-pam server migrate-store`: copies a SQLite store into an empty PostgreSQL database, row
//! for row (ids, sealed values and hash chains unchanged, so the same root key opens the copy),
//! then verifies it: equal row counts per table and, per session, the same events in the same
//! order with the same hashes.

mod tables;

use crate::server::StoreFailure;
use std::collections::BTreeMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{PgPool, Row, SqlitePool};

use self::tables::Kind::{self, Bool, Bytes, Int, Text};
use self::tables::TABLES;
use super::error::StoreError;
use super::postgres::PostgresStore;

/// One cell, as read from SQLite.
#[derive(Debug)]
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

/// What was copied: rows per table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationReport {
    /// Rows copied per table, in copy order.
    pub rows: Vec<(String, u64)>,
    /// Sessions whose event chains were compared.
    pub sessions_verified: u64,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn read(row: &SqliteRow, i: usize, kind: Kind) -> Result<Value, StoreError> {
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    Ok(match kind {
        Text => Value::Text(row.try_get(i).map_err(corrupt)?),
        Int => Value::Int(row.try_get(i).map_err(corrupt)?),
        Bool => Value::Bool(row.try_get(i).map_err(corrupt)?),
        Bytes => Value::Bytes(row.try_get(i).map_err(corrupt)?),
    })
}

/// Copies every row of the SQLite store at `from` (`sqlite://PATH`, opened read-only) into the
/// migrated, empty PostgreSQL database at `to` (`postgres://USER@HOST:PORT/DB`) in one
/// PostgreSQL transaction, then verifies the copy: row counts per table and every session's
/// event chain. A destination that already holds users or projects is refused (`Conflict`);
/// other URL pairs are refused (`Invalid`). On any failure nothing is committed.
pub async fn migrate_urls(from: &str, to: &str) -> Result<MigrationReport, StoreFailure> {
    copy_urls(from, to).await.map_err(StoreFailure::new)
}

/// [`migrate_urls`], with the store's own error.
async fn copy_urls(from: &str, to: &str) -> Result<MigrationReport, StoreError> {
    use std::str::FromStr;

    let (Some(path), true) = (
        from.strip_prefix("sqlite:"),
        to.starts_with("postgres:") || to.starts_with("postgresql:"),
    ) else {
        return Err(StoreError::Invalid(
            "migrate-store copies from sqlite://PATH to postgres://USER@HOST:PORT/DB".into(),
        ));
    };
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(from)
        .map_err(|e| StoreError::Invalid(format!("source URL: {e}")))?
        .read_only(true);
    if !std::path::Path::new(path.trim_start_matches("//")).exists() {
        return Err(StoreError::NotFound(format!("source database {path}")));
    }
    let source = SqlitePool::connect_with(options).await.map_err(db)?;
    let destination = PgPool::connect(to).await.map_err(db)?;
    let report = sqlite_to_postgres(&source, &destination).await;
    source.close().await;
    destination.close().await;
    report
}

/// Copies every row of the SQLite store at `from` into the migrated, empty PostgreSQL
/// database at `to`, in one PostgreSQL transaction, then verifies the copy.
///
/// Refuses a destination that already holds users or projects (`Conflict`); the source is
/// only read. On any failure nothing is committed.
pub(crate) async fn sqlite_to_postgres(
    from: &SqlitePool,
    to: &PgPool,
) -> Result<MigrationReport, StoreError> {
    PostgresStore::migrate(to).await?;
    let (existing,): (i64,) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM projects)")
            .fetch_one(to)
            .await
            .map_err(db)?;
    if existing > 0 {
        return Err(StoreError::Conflict(
            "the destination database already holds a store; migrate into an empty one".into(),
        ));
    }
    check_source_schema(from).await?;
    let mut report = MigrationReport::default();
    let mut tx = to.begin().await.map_err(db)?;
    for (table, columns) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let select = format!("SELECT {} FROM {table} ORDER BY rowid", names.join(", "));
        let rows = sqlx::query(&select).fetch_all(from).await.map_err(db)?;
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        for row in &rows {
            let mut query = sqlx::query(&insert);
            for (i, (_, kind)) in columns.iter().enumerate() {
                query = match read(row, i, *kind)? {
                    Value::Text(v) => query.bind(v),
                    Value::Int(v) => query.bind(v),
                    Value::Bool(v) => query.bind(v),
                    Value::Bytes(v) => query.bind(v),
                };
            }
            query.execute(&mut *tx).await.map_err(db)?;
        }
        report.rows.push(((*table).to_owned(), rows.len() as u64));
    }
    // The change log keeps its numbers; new changes continue after them.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('session_changes', 'seq'), \
         COALESCE((SELECT MAX(seq) FROM session_changes), 0) + 1, false)",
    )
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    report.sessions_verified = verify(from, to, &report).await?;
    Ok(report)
}

/// Refuses a source whose tables or columns are not exactly [`TABLES`] (a newer schema this
/// copy would silently drop part of).
async fn check_source_schema(from: &SqlitePool) -> Result<(), StoreError> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
    )
    .fetch_all(from)
    .await
    .map_err(db)?;
    let mut known: Vec<&str> = TABLES.iter().map(|(table, _)| *table).collect();
    known.sort_unstable();
    let found: Vec<&str> = tables.iter().map(|(name,)| name.as_str()).collect();
    if found != known {
        return Err(StoreError::Invalid(format!(
            "the source has tables {found:?}; this version copies {known:?}"
        )));
    }
    for (table, columns) in TABLES {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pragma_table_info($1)")
            .bind(*table)
            .fetch_one(from)
            .await
            .map_err(db)?;
        if usize::try_from(count).ok() != Some(columns.len()) {
            return Err(StoreError::Invalid(format!(
                "the source's {table} has {count} columns; this version copies {}",
                columns.len()
            )));
        }
    }
    Ok(())
}

/// Equal counts per table and, per session, identical `(id, seq, hash)` chains.
async fn verify(
    from: &SqlitePool,
    to: &PgPool,
    report: &MigrationReport,
) -> Result<u64, StoreError> {
    for (table, copied) in &report.rows {
        let count = format!("SELECT COUNT(*) FROM {table}");
        let (there,): (i64,) = sqlx::query_as(&count).fetch_one(to).await.map_err(db)?;
        if u64::try_from(there).ok() != Some(*copied) {
            return Err(StoreError::Corrupt(format!(
                "{table}: {copied} rows copied but {there} found in the destination"
            )));
        }
    }
    const CHAIN: &str =
        "SELECT session_id, id, seq, hash FROM session_events ORDER BY session_id, seq";
    let source: Vec<(String, String, i64, String)> =
        sqlx::query_as(CHAIN).fetch_all(from).await.map_err(db)?;
    let copy: Vec<(String, String, i64, String)> =
        sqlx::query_as(CHAIN).fetch_all(to).await.map_err(db)?;
    let chains = |rows: &[(String, String, i64, String)]| {
        let mut by_session: BTreeMap<String, Vec<(String, i64, String)>> = BTreeMap::new();
        for (session, id, seq, hash) in rows {
            by_session
                .entry(session.clone())
                .or_default()
                .push((id.clone(), *seq, hash.clone()));
        }
        by_session
    };
    let (source, copy) = (chains(&source), chains(&copy));
    if let Some(session) = source
        .iter()
        .find(|(session, chain)| copy.get(*session) != Some(*chain))
        .map(|(session, _)| session)
    {
        return Err(StoreError::Corrupt(format!(
            "session {session}: the copied event chain differs from the source"
        )));
    }
    Ok(source.len() as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::server::store::postgres::test_cluster::TestCluster;
    use crate::server::store::sqlite::SqliteStore;
    use crate::server::store::suite::{fixture, t, SA_TOKEN};
    use crate::server::store::{EventRecord, Store};
    use crate::session::EndCause;

    #[tokio::test]
    async fn a_sqlite_store_is_copied_to_postgres_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (db, key) = (dir.path().join("kms.db"), dir.path().join("root.key"));
        let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open_path(&db, &key).await.unwrap());
        let f = fixture(sqlite.clone()).await;
        let ended = f.session(1, 100).await.record.session.id;
        sqlite
            .end_session(&ended, EndCause::User, t(5))
            .await
            .unwrap();
        let active = f.session(2, 100).await.record.session.id;
        let events: Vec<EventRecord> = (1..=3)
            .map(|seq| EventRecord {
                id: format!("e{seq}"),
                session_id: ended.clone(),
                seq,
                hash: format!("h{seq}"),
                json: "{}".to_owned(),
            })
            .collect();
        crate::server::store::suite::events::append_as_given(&*sqlite, &events, t(6))
            .await
            .unwrap();
        let seq = sqlite.latest_seq().await.unwrap();
        sqlite.close().await;

        let from = SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let url = TestCluster::shared().fresh_database().await;
        let to = PgPool::connect(&url).await.unwrap();
        let report = sqlite_to_postgres(&from, &to).await.unwrap();
        assert_eq!(report.sessions_verified, 1);
        let rows: BTreeMap<_, _> = report.rows.iter().cloned().collect();
        assert_eq!((rows["sessions"], rows["session_events"]), (2, 3));

        // The copy opens with the same key and continues where the source stopped.
        let pg: Arc<dyn Store> = Arc::new(PostgresStore::open_url(&url, &key).await.unwrap());
        assert_eq!(
            pg.account_token(&f.account).await.unwrap().expose(),
            SA_TOKEN
        );
        assert_eq!(pg.session_events(&ended).await.unwrap(), events);
        assert_eq!(pg.latest_seq().await.unwrap(), seq);
        let next = pg.end_session(&active, EndCause::User, t(7)).await.unwrap();
        assert_eq!(next.seq, Some(seq + 1));

        // A second run refuses the now filled destination.
        let again = sqlite_to_postgres(&from, &to).await.unwrap_err();
        assert!(matches!(again, StoreError::Conflict(_)), "{again}");
    }
}
