//! One typed method per endpoint of docs/api.md: the ones every user calls, the PAM project's
//! and the gateway's (the organisation's administration is in `admin.rs`).

use std::time::Duration;

use http::Method;

use super::{Call, KmsClient, KmsError};
use crate::kms::api::{
    Account, Changes, CreateAccount, CreateGateway, CreateGrant, CreateResource, CreateSession,
    CreateUser, CreatedGateway, CreatedSession, CreatedUser, EnrollGateway, EnrolledGateway,
    Gateway, GatewayCredential, Grant, Heartbeat, Resource, SessionDetail, SessionView,
    UpdateAccount, User, WhoAmI,
};
use crate::session::SessionId;

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

/// The longest `changes` long poll the API allows.
const MAX_CHANGES_WAIT: Duration = Duration::from_secs(30);

impl KmsClient {
    /// `GET /v1/healthz`: whether the KMS answers at all.
    pub async fn healthz(&self) -> Result<(), KmsError> {
        self.call_no_answer(Call::new(Method::GET, &["healthz"]))
            .await
    }

    /// `GET /v1/whoami`: who the token belongs to.
    pub async fn whoami(&self) -> Result<WhoAmI, KmsError> {
        self.call(Call::new(Method::GET, &["whoami"])).await
    }

    /// `POST /v1/console/links`: a one-time sign-in link to the web console for the caller
    /// (valid 60 s). Returns its full URL.
    pub async fn console_link(&self) -> Result<String, KmsError> {
        #[derive(serde::Deserialize)]
        struct Link {
            path: String,
        }
        let link: Link = self
            .call(Call::new(Method::POST, &["console", "links"]))
            .await?;
        Ok(format!(
            "{}{}",
            self.current_url().trim_end_matches('/'),
            link.path
        ))
    }

    /// `POST /v1/users` (admin). The answer holds the new user's token, shown only this once.
    pub async fn create_user(&self, name: &str, admin: bool) -> Result<CreatedUser, KmsError> {
        let body = CreateUser {
            name: name.to_owned(),
            admin,
        };
        self.call(Call::new(Method::POST, &["users"]).json(&body)?)
            .await
    }

    /// `GET /v1/users` (admin).
    pub async fn list_users(&self) -> Result<Vec<User>, KmsError> {
        self.call(Call::new(Method::GET, &["users"])).await
    }

    /// `POST /v1/gateways` (admin). The answer holds a one-time enrollment token.
    pub async fn create_gateway(&self, name: &str) -> Result<CreatedGateway, KmsError> {
        let body = CreateGateway {
            name: name.to_owned(),
        };
        self.call(Call::new(Method::POST, &["gateways"]).json(&body)?)
            .await
    }

    /// `GET /v1/gateways`.
    pub async fn list_gateways(&self) -> Result<Vec<Gateway>, KmsError> {
        self.call(Call::new(Method::GET, &["gateways"])).await
    }

    /// `POST /v1/gateways/enroll`: spends the enrollment token in `request`; no client token is
    /// needed.
    pub async fn enroll_gateway(
        &self,
        request: &EnrollGateway,
    ) -> Result<EnrolledGateway, KmsError> {
        self.call(Call::new(Method::POST, &["gateways", "enroll"]).json(request)?)
            .await
    }

    /// `POST /v1/gateway/heartbeat` (gateway token).
    pub async fn heartbeat(&self, address: &str) -> Result<(), KmsError> {
        let body = Heartbeat {
            address: address.to_owned(),
        };
        self.call_no_answer(Call::new(Method::POST, &["gateway", "heartbeat"]).json(&body)?)
            .await
    }

    /// `POST /v1/resources` (admin).
    pub async fn create_resource(&self, request: &CreateResource) -> Result<Resource, KmsError> {
        self.call(
            Call::new(Method::POST, &["resources"])
                .json(request)?
                .in_project(),
        )
        .await
    }

    /// `GET /v1/resources`.
    pub async fn list_resources(&self) -> Result<Vec<Resource>, KmsError> {
        self.call(Call::new(Method::GET, &["resources"]).in_project())
            .await
    }

    /// `GET /v1/resources/{name}`.
    pub async fn get_resource(&self, name: &str) -> Result<Resource, KmsError> {
        self.call(Call::new(Method::GET, &["resources", name]).in_project())
            .await
    }

    /// `DELETE /v1/resources/{name}` (admin); its accounts and grants go too.
    pub async fn delete_resource(&self, name: &str) -> Result<(), KmsError> {
        self.call_no_answer(Call::new(Method::DELETE, &["resources", name]).in_project())
            .await
    }

    /// `POST /v1/resources/{resource}/accounts` (admin). The token in `request` is stored
    /// encrypted and never returned.
    pub async fn create_account(
        &self,
        resource: &str,
        request: &CreateAccount,
    ) -> Result<Account, KmsError> {
        let segments = ["resources", resource, "accounts"];
        self.call(
            Call::new(Method::POST, &segments)
                .json(request)?
                .in_project(),
        )
        .await
    }

    /// `PATCH /v1/resources/{resource}/accounts/{account}` (project admin): changes what
    /// `request` names; what it leaves out stays, the stored token included.
    pub async fn update_account(
        &self,
        resource: &str,
        account: &str,
        request: &UpdateAccount,
    ) -> Result<Account, KmsError> {
        let segments = ["resources", resource, "accounts", account];
        self.call(
            Call::new(Method::PATCH, &segments)
                .json(request)?
                .in_project(),
        )
        .await
    }

    /// `GET /v1/accounts[?resource=R]`: members see only the accounts granted to them.
    pub async fn list_accounts(&self, resource: Option<&str>) -> Result<Vec<Account>, KmsError> {
        let mut call = Call::new(Method::GET, &["accounts"]).in_project();
        if let Some(resource) = resource {
            call.query.push(("resource", resource.to_owned()));
        }
        self.call(call).await
    }

    /// `DELETE /v1/resources/{resource}/accounts/{account}` (admin).
    pub async fn delete_account(&self, resource: &str, account: &str) -> Result<(), KmsError> {
        let segments = ["resources", resource, "accounts", account];
        self.call_no_answer(Call::new(Method::DELETE, &segments).in_project())
            .await
    }

    /// `POST /v1/grants` (admin).
    pub async fn create_grant(&self, request: &CreateGrant) -> Result<Grant, KmsError> {
        self.call(
            Call::new(Method::POST, &["grants"])
                .json(request)?
                .in_project(),
        )
        .await
    }

    /// `GET /v1/grants` (admin).
    pub async fn list_grants(&self) -> Result<Vec<Grant>, KmsError> {
        self.call(Call::new(Method::GET, &["grants"]).in_project())
            .await
    }

    /// `DELETE /v1/grants/{id}` (admin).
    pub async fn delete_grant(&self, id: &str) -> Result<(), KmsError> {
        self.call_no_answer(Call::new(Method::DELETE, &["grants", id]).in_project())
            .await
    }

    /// `POST /v1/sessions`: the session, its client certificate (from the CSR in `request`),
    /// the KMS CA and the gateway's address.
    pub async fn create_session(
        &self,
        request: &CreateSession,
    ) -> Result<CreatedSession, KmsError> {
        self.call(
            Call::new(Method::POST, &["sessions"])
                .json(request)?
                .in_project(),
        )
        .await
    }

    /// `GET /v1/sessions?…`: members see only their own.
    pub async fn list_sessions(
        &self,
        filter: &SessionFilter,
    ) -> Result<Vec<SessionView>, KmsError> {
        let mut call = Call::new(Method::GET, &["sessions"]).in_project();
        call.query = filter.query();
        self.call(call).await
    }

    /// `GET /v1/sessions/{id}?commands=false` (owner, admin, auditor): the session without its
    /// commands (`commands` is empty), cheap enough to poll; [`KmsClient::session_detail`] has
    /// them. Asked by the session's owner, it is also the session's heartbeat: KMS ends a
    /// session nobody has asked about for 30 s (cause `abandoned`).
    pub async fn get_session(&self, id: &SessionId) -> Result<SessionDetail, KmsError> {
        let segments = ["sessions", id.as_str()];
        let mut call = Call::new(Method::GET, &segments).in_project();
        call.query = vec![("commands", "false".to_owned())];
        self.call(call).await
    }

    /// `GET /v1/sessions/{id}` (owner, admin): the session and every command run in it.
    pub async fn session_detail(&self, id: &SessionId) -> Result<SessionDetail, KmsError> {
        self.call(Call::new(Method::GET, &["sessions", id.as_str()]).in_project())
            .await
    }

    /// `POST /v1/sessions/{id}/end` (owner, admin).
    pub async fn end_session(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        let segments = ["sessions", id.as_str(), "end"];
        self.call(Call::new(Method::POST, &segments).in_project())
            .await
    }

    /// `POST /v1/sessions/{id}/terminate` (admin): ends an active session everywhere at once.
    pub async fn terminate_session(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        let segments = ["sessions", id.as_str(), "terminate"];
        self.call(Call::new(Method::POST, &segments).in_project())
            .await
    }

    /// `GET /v1/gateway/sessions/{id}` (gateway token): a session bound to the caller.
    pub async fn gateway_session(&self, id: &SessionId) -> Result<SessionView, KmsError> {
        let segments = ["gateway", "sessions", id.as_str()];
        self.call(Call::new(Method::GET, &segments)).await
    }

    /// `GET /v1/gateway/sessions/{id}/credential` (gateway token): the account's upstream and
    /// token, only while the session is active and bound to the caller.
    pub async fn gateway_credential(&self, id: &SessionId) -> Result<GatewayCredential, KmsError> {
        let segments = ["gateway", "sessions", id.as_str(), "credential"];
        self.call(Call::new(Method::GET, &segments)).await
    }

    /// `GET /v1/gateway/changes?after=SEQ&wait_secs=N` (gateway token): status changes of the
    /// caller's sessions after `after`, waiting up to `wait_secs` (at most 30) seconds for one.
    /// `after = 0` answers at once with the current sequence number.
    pub async fn changes(&self, after: u64, wait_secs: u64) -> Result<Changes, KmsError> {
        let wait = Duration::from_secs(wait_secs).min(MAX_CHANGES_WAIT);
        let mut call = Call::new(Method::GET, &["gateway", "changes"]);
        call.query = vec![
            ("after", after.to_string()),
            ("wait_secs", wait.as_secs().to_string()),
        ];
        call.extra_wait = wait;
        self.call(call).await
    }
}
