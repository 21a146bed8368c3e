//! A PAM project's calls (the second table of docs/api.md's "Endpoints"): resources, accounts,
//! grants and sessions, each area behind its handle. They go to the client's project
//! (`/v1/projects/{project}/…`, see [`KmsClient::in_project`]), else to the unprefixed routes,
//! which are the project `default`'s.

use http::Method;

use super::error::KmsError;
use super::kms_client::{Call, KmsClient};
use crate::kms::api::{
    Account, ChainReport, CreateAccount, CreateGrant, CreateResource, CreateSession,
    CreatedSession, Grant, RecordingView, Resource, RevokeGrant, SessionBundle, SessionDetail,
    SessionView, UpdateAccount, UpdateResource,
};
use crate::session::SessionId;

impl KmsClient {
    /// The project's resources (`…/resources`).
    pub fn resources(&self) -> ResourcesApi<'_> {
        ResourcesApi { client: self }
    }

    /// The project's accounts (`…/resources/{resource}/accounts`, `…/accounts`).
    pub fn accounts(&self) -> AccountsApi<'_> {
        AccountsApi { client: self }
    }

    /// The project's grants (`…/grants`).
    pub fn grants(&self) -> GrantsApi<'_> {
        GrantsApi { client: self }
    }

    /// The project's sessions (`…/sessions`), their records and recordings.
    pub fn sessions(&self) -> SessionsApi<'_> {
        SessionsApi { client: self }
    }
}

/// Which sessions `GET /v1/sessions` lists. The default lists every session the caller may see;
/// the `with_*` methods narrow it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionFilter {
    /// Only active sessions.
    pub active: bool,
    /// Only this user's sessions.
    pub user: Option<String>,
    /// Only sessions of this resource.
    pub resource: Option<String>,
}

impl SessionFilter {
    /// Only active sessions when `active`.
    pub fn with_active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }

    /// Only `user`'s sessions, when given.
    pub fn with_user(mut self, user: Option<String>) -> Self {
        self.user = user;
        self
    }

    /// Only sessions of `resource`, when given.
    pub fn with_resource(mut self, resource: Option<String>) -> Self {
        self.resource = resource;
        self
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if self.active {
            query.push(("active", "true".to_owned()));
        }
        if let Some(user) = &self.user {
            query.push(("user", user.clone()));
        }
        if let Some(resource) = &self.resource {
            query.push(("resource", resource.clone()));
        }
        query
    }
}

/// The project's resources: [`KmsClient::resources`].
#[derive(Clone, Copy, Debug)]
pub struct ResourcesApi<'a> {
    client: &'a KmsClient,
}

impl ResourcesApi<'_> {
    /// `POST /v1/resources` (admin).
    pub async fn create(&self, request: &CreateResource) -> Result<Resource, KmsError> {
        self.client
            .call(
                Call::new(Method::POST, &["resources"])
                    .json(request)?
                    .in_project(),
            )
            .await
    }

    /// `GET /v1/resources`.
    pub async fn list(&self) -> Result<Vec<Resource>, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["resources"]).in_project())
            .await
    }

    /// `GET /v1/resources/{name}`.
    pub async fn get(&self, name: &str) -> Result<Resource, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["resources", name]).in_project())
            .await
    }

    /// `PATCH /v1/resources/{name}` (project admin): changes what `request` names; what it
    /// leaves out stays. Its accounts, grants and open sessions stay.
    pub async fn update(&self, name: &str, request: &UpdateResource) -> Result<Resource, KmsError> {
        self.client
            .call(
                Call::new(Method::PATCH, &["resources", name])
                    .json(request)?
                    .in_project(),
            )
            .await
    }

    /// `DELETE /v1/resources/{name}` (admin); its accounts and grants go too.
    pub async fn delete(&self, name: &str) -> Result<(), KmsError> {
        self.client
            .call_no_answer(Call::new(Method::DELETE, &["resources", name]).in_project())
            .await
    }
}

/// The project's accounts: [`KmsClient::accounts`].
#[derive(Clone, Copy, Debug)]
pub struct AccountsApi<'a> {
    client: &'a KmsClient,
}

impl AccountsApi<'_> {
    /// `POST /v1/resources/{resource}/accounts` (admin). The token in `request` is stored
    /// encrypted and never returned.
    pub async fn create(
        &self,
        resource: &str,
        request: &CreateAccount,
    ) -> Result<Account, KmsError> {
        let segments = ["resources", resource, "accounts"];
        self.client
            .call(
                Call::new(Method::POST, &segments)
                    .json(request)?
                    .in_project(),
            )
            .await
    }

    /// `PATCH /v1/resources/{resource}/accounts/{account}` (project admin): changes what
    /// `request` names; what it leaves out stays, the stored token included.
    pub async fn update(
        &self,
        resource: &str,
        account: &str,
        request: &UpdateAccount,
    ) -> Result<Account, KmsError> {
        let segments = ["resources", resource, "accounts", account];
        self.client
            .call(
                Call::new(Method::PATCH, &segments)
                    .json(request)?
                    .in_project(),
            )
            .await
    }

    /// `GET /v1/accounts[?resource=R]`: members see only the accounts granted to them.
    pub async fn list(&self, resource: Option<&str>) -> Result<Vec<Account>, KmsError> {
        let mut call = Call::new(Method::GET, &["accounts"]).in_project();
        if let Some(resource) = resource {
            call.query.push(("resource", resource.to_owned()));
        }
        self.client.call(call).await
    }

    /// `DELETE /v1/resources/{resource}/accounts/{account}` (admin).
    pub async fn delete(&self, resource: &str, account: &str) -> Result<(), KmsError> {
        let segments = ["resources", resource, "accounts", account];
        self.client
            .call_no_answer(Call::new(Method::DELETE, &segments).in_project())
            .await
    }
}

/// The project's grants: [`KmsClient::grants`].
#[derive(Clone, Copy, Debug)]
pub struct GrantsApi<'a> {
    client: &'a KmsClient,
}

impl GrantsApi<'_> {
    /// `POST /v1/grants` (admin).
    pub async fn create(&self, request: &CreateGrant) -> Result<Grant, KmsError> {
        self.client
            .call(
                Call::new(Method::POST, &["grants"])
                    .json(request)?
                    .in_project(),
            )
            .await
    }

    /// `GET /v1/grants` (admin).
    pub async fn list(&self) -> Result<Vec<Grant>, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["grants"]).in_project())
            .await
    }

    /// `POST /v1/grants/{id}/revoke` (admin): the grant, now revoked.
    pub async fn revoke(&self, id: &str, reason: &str) -> Result<Grant, KmsError> {
        let request = RevokeGrant {
            reason: reason.to_owned(),
        };
        self.client
            .call(
                Call::new(Method::POST, &["grants", id, "revoke"])
                    .json(&request)?
                    .in_project(),
            )
            .await
    }

    /// `DELETE /v1/grants/{id}` (admin).
    pub async fn delete(&self, id: &str) -> Result<(), KmsError> {
        self.client
            .call_no_answer(Call::new(Method::DELETE, &["grants", id]).in_project())
            .await
    }
}

/// The project's sessions, their records and recordings: [`KmsClient::sessions`].
#[derive(Clone, Copy, Debug)]
pub struct SessionsApi<'a> {
    client: &'a KmsClient,
}

impl SessionsApi<'_> {
    /// `POST /v1/sessions`: the session, its client certificate (from the CSR in `request`),
    /// the KMS CA and the gateway's address.
    pub async fn create(&self, request: &CreateSession) -> Result<CreatedSession, KmsError> {
        self.client
            .call(
                Call::new(Method::POST, &["sessions"])
                    .json(request)?
                    .in_project(),
            )
            .await
    }

    /// `GET /v1/sessions?…`: members see only their own.
    pub async fn list(&self, filter: &SessionFilter) -> Result<Vec<SessionView>, KmsError> {
        let mut call = Call::new(Method::GET, &["sessions"]).in_project();
        call.query = filter.query();
        self.client.call(call).await
    }

    /// `GET /v1/sessions/{id}?commands=false` (owner, admin, auditor): the session without its
    /// commands (`commands` is empty), cheap enough to poll; [`SessionsApi::detail`] has them.
    /// Asked by the session's owner, it is also the session's heartbeat: KMS ends a session
    /// nobody has asked about for 30 s (cause `abandoned`).
    pub async fn get(&self, id: &SessionId) -> Result<SessionDetail, KmsError> {
        let segments = ["sessions", id.as_str()];
        let mut call = Call::new(Method::GET, &segments).in_project();
        call.query = vec![("commands", "false".to_owned())];
        self.client.call(call).await
    }

    /// `GET /v1/sessions/{id}` (owner, admin): the session and every command run in it.
    pub async fn detail(&self, id: &SessionId) -> Result<SessionDetail, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["sessions", id.as_str()]).in_project())
            .await
    }

    /// `POST /v1/sessions/{id}/end` (owner, admin).
    pub async fn end(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        let segments = ["sessions", id.as_str(), "end"];
        self.client
            .call(Call::new(Method::POST, &segments).in_project())
            .await
    }

    /// `POST /v1/sessions/{id}/terminate` (admin): ends an active session everywhere at once.
    pub async fn terminate(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        let segments = ["sessions", id.as_str(), "terminate"];
        self.client
            .call(Call::new(Method::POST, &segments).in_project())
            .await
    }

    /// `GET /v1/sessions/{id}/verify` (owner, admin): the check of the session's hash chain.
    pub async fn verify(&self, id: &SessionId) -> Result<ChainReport, KmsError> {
        let segments = ["sessions", id.as_str(), "verify"];
        self.client
            .call(Call::new(Method::GET, &segments).in_project())
            .await
    }

    /// `GET /v1/sessions/{id}/export` (owner, admin, auditor): the session's record as a
    /// self-contained bundle, for `kms-pam verify-bundle`.
    pub async fn export(&self, id: &SessionId) -> Result<SessionBundle, KmsError> {
        let segments = ["sessions", id.as_str(), "export"];
        self.client
            .call(Call::new(Method::GET, &segments).in_project())
            .await
    }

    /// `GET /v1/sessions/{id}/recordings/{n}` (owner, admin): the `n`-th (1-based) recorded exec
    /// or attach stream, replayed.
    pub async fn recording(
        &self,
        id: &SessionId,
        number: usize,
    ) -> Result<RecordingView, KmsError> {
        let number = number.to_string();
        let segments = ["sessions", id.as_str(), "recordings", number.as_str()];
        self.client
            .call(Call::new(Method::GET, &segments).in_project())
            .await
    }
}
