//! The web console's sign-in codes, signed-in browsers and paged session search.

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::session_rows::{SessionRow, SELECT};
use super::{db_error, found, secs, EngineDb, EngineStore};
use crate::server::store::{
    ConsoleStore, SessionPage, SessionRecord, SessionSearch, StoreError, TokenHash, UserRecord,
};
use crate::session::SessionId;

/// `text` as a `LIKE` pattern matching it anywhere, with `\` escaping `%`, `_` and itself.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[async_trait]
impl ConsoleStore for EngineStore {
    async fn create_console_link(
        &self,
        code: &TokenHash,
        user_id: &str,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO console_links (hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(code.as_str())
        .bind(user_id)
        .bind(secs(now))
        .bind(secs(expires_at))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn redeem_console_link(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<UserRecord, StoreError> {
        let spent: Option<(String,)> = sqlx::query_as(
            "UPDATE console_links SET used_at = $1 \
             WHERE hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(secs(now))
        .bind(code.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let (user_id,) = found(spent, || "sign-in link".to_owned())?;
        self.user_by_id(&user_id).await
    }

    async fn create_console_session(
        &self,
        id: &TokenHash,
        user_id: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO console_sessions (hash, user_id, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $3)",
        )
        .bind(id.as_str())
        .bind(user_id)
        .bind(secs(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn console_session_user(
        &self,
        id: &TokenHash,
        idle_since: SystemTime,
        now: SystemTime,
    ) -> Result<UserRecord, StoreError> {
        let seen: Option<(String,)> = sqlx::query_as(
            "UPDATE console_sessions SET last_seen_at = $1 \
             WHERE hash = $2 AND last_seen_at > $3 RETURNING user_id",
        )
        .bind(secs(now))
        .bind(id.as_str())
        .bind(secs(idle_since))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let (user_id,) = found(seen, || "console session".to_owned())?;
        self.user_by_id(&user_id).await
    }

    async fn delete_console_session(&self, id: &TokenHash) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE hash = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn session_page(
        &self,
        project_id: &str,
        search: &SessionSearch,
    ) -> Result<SessionPage, StoreError> {
        let mut query = QueryBuilder::<EngineDb>::new(SELECT);
        query.push(" WHERE project_id = ").push_bind(project_id);
        if let Some(status) = &search.status {
            query.push(" AND status = ").push_bind(status.clone());
        }
        if let Some(owner) = &search.user {
            super::session_rows::push_owner(&mut query, owner);
        }
        if let Some(resource) = &search.resource {
            query
                .push(" AND resource_name = ")
                .push_bind(resource.clone());
        }
        if let Some(from) = search.from {
            query.push(" AND created_at >= ").push_bind(secs(from));
        }
        if let Some(to) = search.to {
            query.push(" AND created_at < ").push_bind(secs(to));
        }
        if let Some(text) = search.text.as_deref().filter(|t| !t.trim().is_empty()) {
            push_text(&mut query, text.trim());
        }
        let limit = i64::from(search.limit);
        query
            .push(" ORDER BY created_at DESC, id LIMIT ")
            .push_bind(limit + 1)
            .push(" OFFSET ")
            .push_bind(i64::try_from(search.offset).unwrap_or(i64::MAX));
        let rows: Vec<SessionRow> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let more = rows.len() as i64 > limit;
        let sessions = rows
            .into_iter()
            .take(search.limit as usize)
            .map(SessionRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SessionPage { sessions, more })
    }

    async fn command_counts(&self, sessions: &[SessionId]) -> Result<Vec<u64>, StoreError> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<EngineDb>::new(
            "SELECT session_id, COUNT(DISTINCT invocation) FROM session_events \
             WHERE invocation IS NOT NULL AND session_id IN (",
        );
        let mut ids = query.separated(", ");
        for id in sessions {
            ids.push_bind(id.as_str().to_owned());
        }
        query.push(") GROUP BY session_id");
        let rows: Vec<(String, i64)> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let counts: std::collections::HashMap<String, i64> = rows.into_iter().collect();
        Ok(sessions
            .iter()
            .map(|id| {
                counts
                    .get(id.as_str())
                    .map_or(0, |n| u64::try_from(*n).unwrap_or(0))
            })
            .collect())
    }

    async fn set_command_lines(
        &self,
        session: &SessionId,
        lines: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // Upserts, not delete-then-insert: two replicas indexing the same session at once
        // overwrite each other's rows instead of colliding on the key.
        for (ordinal, line) in lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO session_commands (session_id, ordinal, line) VALUES ($1, $2, $3) \
                 ON CONFLICT (session_id, ordinal) DO UPDATE SET line = excluded.line",
            )
            .bind(session.as_str())
            .bind(i64::try_from(ordinal).unwrap_or(i64::MAX))
            .bind(line)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        sqlx::query("DELETE FROM session_commands WHERE session_id = $1 AND ordinal >= $2")
            .bind(session.as_str())
            .bind(i64::try_from(lines.len()).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn sessions_without_command_lines(
        &self,
        limit: u32,
    ) -> Result<Vec<SessionId>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM sessions s \
             WHERE EXISTS (SELECT 1 FROM session_events e \
                           WHERE e.session_id = s.id AND e.invocation IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM session_commands c WHERE c.session_id = s.id) \
             ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(|(id,)| SessionId::new(id)).collect())
    }
}

/// The search box's text: found in a session's id, user, resource, account or reason; or its
/// words (in any order, case aside) all found in one of its command lines (`get pods` finds
/// `kubectl get pods -n default`, `describe deployment my-app` finds `kubectl get
/// deployments/my-app -n default  (client: kubectl describe)`). The events' JSON is not searched:
/// its key names (`method`) are in every session.
fn push_text(query: &mut QueryBuilder<'_, EngineDb>, text: &str) {
    let pattern = contains_pattern(text);
    query.push(" AND (");
    for column in ["id", "user_name", "resource_name", "account_name", "reason"] {
        query
            .push(format!("{column} LIKE "))
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR ");
    }
    query.push("EXISTS (SELECT 1 FROM session_commands c WHERE c.session_id = sessions.id");
    for word in text.split_whitespace() {
        query
            .push(" AND LOWER(c.line) LIKE ")
            .push_bind(contains_pattern(&word.to_lowercase()))
            .push(" ESCAPE '\\'");
    }
    query.push("))");
}
