//! PAM projects and their members.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, found, new_id, secs, time, unique_error, EngineStore};
use crate::kms::api::ProjectRole;
use crate::server::store::{MemberRecord, ProjectRecord, ProjectStore, StoreError};

const LIVE: &str = "SELECT id, name, created_at FROM projects WHERE deleted_at IS NULL";

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: String,
    name: String,
    created_at: i64,
}

impl From<ProjectRow> for ProjectRecord {
    fn from(row: ProjectRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_at: time(row.created_at),
        }
    }
}

fn parse_role(role: &str) -> Result<ProjectRole, StoreError> {
    ProjectRole::from_name(role)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown project role {role:?}")))
}

fn role_to_db(role: ProjectRole) -> Result<&'static str, StoreError> {
    match role {
        ProjectRole::Unknown => Err(StoreError::Invalid(
            "a member's role is admin, member or auditor".to_owned(),
        )),
        known => Ok(known.as_str()),
    }
}

#[async_trait]
impl ProjectStore for EngineStore {
    async fn create_project(
        &self,
        name: &str,
        now: SystemTime,
    ) -> Result<ProjectRecord, StoreError> {
        sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(new_id())
            .bind(name)
            .bind(secs(now))
            .execute(&self.pool)
            .await
            .map_err(|e| unique_error(e, || format!("project {name} already exists")))?;
        self.project(name).await
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        let rows: Vec<ProjectRow> = sqlx::query_as(&format!("{LIVE} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(ProjectRecord::from).collect())
    }

    async fn project(&self, name: &str) -> Result<ProjectRecord, StoreError> {
        let row: Option<ProjectRow> = sqlx::query_as(&format!("{LIVE} AND name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        found(row, || format!("project {name}")).map(ProjectRecord::from)
    }

    async fn delete_project(&self, id: &str, now: SystemTime) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The write first, so the transaction holds the write lock before it counts resources.
        let renamed = sqlx::query(
            "UPDATE projects SET deleted_at = $1, name = name || '~' || id \
             WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(secs(now))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if renamed.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("project {id}")));
        }
        let (resources,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM resources WHERE project_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        if resources > 0 {
            return Err(StoreError::Conflict(format!(
                "the project still has {resources} resource(s); delete them first"
            )));
        }
        sqlx::query("DELETE FROM project_members WHERE project_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn members(&self, project_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT m.project_id, m.user_id, u.name, m.role, m.created_at \
             FROM project_members m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = $1 AND u.deleted_at IS NULL ORDER BY u.name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(project_id, user_id, user, role, created_at)| {
                Ok(MemberRecord {
                    project_id,
                    user_id,
                    user,
                    role: parse_role(&role)?,
                    created_at: time(created_at),
                })
            })
            .collect()
    }

    async fn role_of(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Option<ProjectRole>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|(role,)| parse_role(&role)).transpose()
    }

    async fn memberships(
        &self,
        user_id: &str,
    ) -> Result<Vec<(ProjectRecord, ProjectRole)>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT p.id, p.name, p.created_at, m.role \
             FROM project_members m JOIN projects p ON p.id = m.project_id \
             WHERE m.user_id = $1 AND p.deleted_at IS NULL ORDER BY p.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(id, name, created_at, role)| {
                let project = ProjectRecord {
                    id,
                    name,
                    created_at: time(created_at),
                };
                Ok((project, parse_role(&role)?))
            })
            .collect()
    }

    async fn set_member(
        &self,
        project_id: &str,
        user_id: &str,
        role: ProjectRole,
        now: SystemTime,
    ) -> Result<Option<ProjectRole>, StoreError> {
        let role = role_to_db(role)?;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // A no-op write first takes the write lock, so the read below cannot go stale.
        sqlx::query(
            "UPDATE project_members SET role = role WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let previous: Option<(String,)> = sqlx::query_as(
            "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let sql = if previous.is_some() {
            "UPDATE project_members SET role = $3, created_at = $4 \
             WHERE project_id = $1 AND user_id = $2"
        } else {
            "INSERT INTO project_members (project_id, user_id, role, created_at) \
             VALUES ($1, $2, $3, $4)"
        };
        sqlx::query(sql)
            .bind(project_id)
            .bind(user_id)
            .bind(role)
            .bind(secs(now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        previous.map(|(role,)| parse_role(&role)).transpose()
    }

    async fn remove_member(&self, project_id: &str, user_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let removed =
            sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        if removed.rows_affected() == 0 {
            return Err(StoreError::NotFound("membership".to_owned()));
        }
        sqlx::query("DELETE FROM grants WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }
}
