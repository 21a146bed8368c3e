//! PAM accounts, with their service-account tokens sealed under the root key.

use async_trait::async_trait;

use super::{
    db_error, duration_from_db, duration_to_db, found, new_id, secs, time, unique_error,
    EngineStore,
};
use crate::secret::Secret;
use crate::server::store::crypto::account_token_aad;
use crate::server::store::{AccountChange, AccountRecord, AccountStore, NewAccount, StoreError};

const SELECT: &str = "SELECT a.id, a.project_id, a.resource_id, r.name AS resource, a.name, \
                      a.description, a.max_duration_secs, a.created_at \
                      FROM accounts a JOIN resources r ON r.id = a.resource_id";

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    project_id: String,
    resource_id: String,
    resource: String,
    name: String,
    description: Option<String>,
    max_duration_secs: i64,
    created_at: i64,
}

impl TryFrom<AccountRow> for AccountRecord {
    type Error = StoreError;

    fn try_from(row: AccountRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            project_id: row.project_id,
            resource_id: row.resource_id,
            resource: row.resource,
            name: row.name,
            description: row.description,
            max_duration_secs: duration_from_db(row.max_duration_secs)?,
            created_at: time(row.created_at),
        })
    }
}

impl EngineStore {
    async fn account_where(
        &self,
        condition: &str,
        binds: &[&str],
        what: impl FnOnce() -> String,
    ) -> Result<AccountRecord, StoreError> {
        let sql = format!("{SELECT} WHERE {condition}");
        let mut query = sqlx::query_as::<_, AccountRow>(&sql);
        for value in binds {
            query = query.bind(*value);
        }
        let row = query.fetch_optional(&self.pool).await.map_err(db_error)?;
        found(row, what)?.try_into()
    }
}

#[async_trait]
impl AccountStore for EngineStore {
    async fn create_account(&self, new: NewAccount) -> Result<AccountRecord, StoreError> {
        let id = new_id();
        let sealed = self
            .key()
            .seal_secret(&account_token_aad(&new.resource_id, &id), &new.token)?;
        sqlx::query(
            "INSERT INTO accounts (id, project_id, resource_id, name, description, \
             max_duration_secs, token_sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&new.project_id)
        .bind(&new.resource_id)
        .bind(&new.name)
        .bind(&new.description)
        .bind(duration_to_db(new.max_duration_secs)?)
        .bind(sealed)
        .bind(secs(new.now))
        .execute(&self.pool)
        .await
        .map_err(|e| unique_error(e, || format!("account {} already exists", new.name)))?;
        self.account_by_id(&id).await
    }

    async fn update_account(&self, change: AccountChange) -> Result<AccountRecord, StoreError> {
        let account = self.account_by_id(&change.id).await?;
        let sealed = match &change.token {
            Some(token) => Some(
                self.key()
                    .seal_secret(&account_token_aad(&account.resource_id, &account.id), token)?,
            ),
            None => None,
        };
        let updated = sqlx::query(
            "UPDATE accounts SET description = $1, max_duration_secs = $2, \
             token_sealed = COALESCE($3, token_sealed) WHERE id = $4",
        )
        .bind(&change.description)
        .bind(duration_to_db(change.max_duration_secs)?)
        .bind(sealed)
        .bind(&account.id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "account {}/{}",
                account.resource, account.name
            )));
        }
        self.account_by_id(&account.id).await
    }

    async fn accounts(
        &self,
        project_id: &str,
        resource: Option<&str>,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        let by_resource = if resource.is_some() {
            " AND r.name = $2"
        } else {
            ""
        };
        let sql = format!("{SELECT} WHERE a.project_id = $1{by_resource} ORDER BY r.name, a.name");
        let mut query = sqlx::query_as::<_, AccountRow>(&sql).bind(project_id);
        if let Some(resource) = resource {
            query = query.bind(resource);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        rows.into_iter().map(AccountRecord::try_from).collect()
    }

    async fn account(
        &self,
        project_id: &str,
        resource: &str,
        name: &str,
    ) -> Result<AccountRecord, StoreError> {
        self.account_where(
            "a.project_id = $1 AND r.name = $2 AND a.name = $3",
            &[project_id, resource, name],
            || format!("account {resource}/{name}"),
        )
        .await
    }

    async fn account_by_id(&self, id: &str) -> Result<AccountRecord, StoreError> {
        self.account_where("a.id = $1", &[id], || format!("account {id}"))
            .await
    }

    async fn account_token(&self, account: &AccountRecord) -> Result<Secret, StoreError> {
        let row: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT resource_id, token_sealed FROM accounts WHERE id = $1")
                .bind(&account.id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        let (resource_id, sealed) = found(row, || format!("account {}", account.name))?;
        self.key()
            .open_secret(&account_token_aad(&resource_id, &account.id), &sealed)
    }

    async fn delete_account(
        &self,
        project_id: &str,
        resource: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let account = self.account(project_id, resource, name).await?;
        // Grants go with it through ON DELETE CASCADE.
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(&account.id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
