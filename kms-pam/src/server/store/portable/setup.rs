//! The project `default` and the stored CA.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, new_id, secs, EngineStore};
use crate::server::store::crypto::CA_KEY_AAD;
use crate::server::store::{ProjectRecord, ProjectStore, SetupStore, StoreError, StoredCa};
use crate::tls::PrivateKeyPem;

/// Setting holding the CA certificate (PEM, clear).
pub(super) const CA_CERT_SETTING: &str = "ca_cert";
/// Setting holding the CA private key (PEM, sealed under the root key).
pub(super) const CA_KEY_SETTING: &str = "ca_key";

#[async_trait]
impl SetupStore for EngineStore {
    async fn ensure_project(
        &self,
        name: &str,
        now: SystemTime,
    ) -> Result<ProjectRecord, StoreError> {
        // Insert first (a no-op when it exists) so the read below always finds the row.
        sqlx::query(
            "INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(new_id())
        .bind(name)
        .bind(secs(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        self.project(name).await
    }

    async fn ca(&self) -> Result<Option<StoredCa>, StoreError> {
        let cert = self.setting(CA_CERT_SETTING).await?;
        let key = self.setting(CA_KEY_SETTING).await?;
        let (cert, sealed_key) = match (cert, key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => return Ok(None),
            _ => {
                return Err(StoreError::Corrupt(
                    "the CA certificate and key are not both stored".to_owned(),
                ))
            }
        };
        let cert_pem = String::from_utf8(cert)
            .map_err(|_| StoreError::Corrupt("CA certificate is not UTF-8".to_owned()))?;
        let key = self.key().open_secret(CA_KEY_AAD, &sealed_key)?;
        Ok(Some(StoredCa {
            cert_pem,
            key: PrivateKeyPem::new(key.expose().to_owned()),
        }))
    }

    async fn save_ca(&self, ca: &StoredCa) -> Result<(), StoreError> {
        let sealed = self
            .key()
            .seal(CA_KEY_AAD, ca.key.expose_secret().as_bytes())?;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        for (name, value) in [
            (CA_CERT_SETTING, ca.cert_pem.as_bytes().to_vec()),
            (CA_KEY_SETTING, sealed),
        ] {
            sqlx::query("INSERT INTO kms_settings (name, value) VALUES ($1, $2)")
                .bind(name)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(|e| super::unique_error(e, || "a CA is already stored".to_owned()))?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

impl EngineStore {
    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT value FROM kms_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(row.map(|(value,)| value))
    }
}
