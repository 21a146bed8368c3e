//! KMS's database opened behind its back, as whoever can write it would: SQLite or PostgreSQL.

/// The database, opened behind KMS's back.
pub(super) enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    /// The SQLite file of the KMS serving from `data_dir`.
    pub(super) fn sqlite(data_dir: &std::path::Path) -> Self {
        let url = format!("sqlite://{}", data_dir.join("kms.db").display());
        Self::Sqlite(sqlx::SqlitePool::connect_lazy(&url).unwrap())
    }

    /// The PostgreSQL database at `url`.
    pub(super) fn postgres(url: &str) -> Self {
        Self::Postgres(sqlx::PgPool::connect_lazy(url).unwrap())
    }

    /// Runs `sql` with text parameters `$1`, `$2`, … (`None`: NULL).
    pub(super) async fn exec(&self, sql: &str, binds: &[Option<&str>]) {
        match self {
            Self::Sqlite(db) => {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                query.execute(db).await.unwrap();
            }
            Self::Postgres(db) => {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                query.execute(db).await.unwrap();
            }
        }
    }

    /// The text column of the first row `sql` finds with `$1` = `arg`.
    pub(super) async fn text(&self, sql: &str, arg: &str) -> Option<String> {
        match self {
            Self::Sqlite(db) => sqlx::query_scalar(sql).bind(arg).fetch_one(db).await,
            Self::Postgres(db) => sqlx::query_scalar(sql).bind(arg).fetch_one(db).await,
        }
        .unwrap()
    }

    /// `(id, event JSON)` of the session's stored events, by seq.
    pub(super) async fn events(&self, session: &str) -> Vec<(String, String)> {
        let sql = "SELECT id, event FROM session_events WHERE session_id = $1 ORDER BY seq";
        match self {
            Self::Sqlite(db) => sqlx::query_as(sql).bind(session).fetch_all(db).await,
            Self::Postgres(db) => sqlx::query_as(sql).bind(session).fetch_all(db).await,
        }
        .unwrap()
    }
}
