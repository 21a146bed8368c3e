//! The organisation's calls (the first table of docs/api.md's "Endpoints"): whether the KMS
//! answers and who the caller is, on the client itself; users, gateways, projects and their
//! members, the audit keys and the console's sign-in links, each area behind its handle.

use http::Method;

use super::error::KmsError;
use super::kms_client::{Call, KmsClient};
use crate::kms::api::{
    AssignGateway, AuditKeys, CreateGateway, CreateProject, CreateUser, CreatedGateway,
    CreatedUser, EnrollGateway, EnrolledGateway, Gateway, IssueRelayCertificate, Member, Project,
    ProjectRole, RelayCertificate, SetMember, UpdateGateway, User, WhoAmI,
};

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

    /// The organisation's users (`/v1/users`, organisation admin).
    pub fn users(&self) -> UsersApi<'_> {
        UsersApi { client: self }
    }

    /// The gateways as the organisation manages them (`/v1/gateways`); a gateway's own calls
    /// are [`KmsClient::gateway`]'s.
    pub fn gateways(&self) -> GatewaysApi<'_> {
        GatewaysApi { client: self }
    }

    /// Relays' certificates (`/v1/relays`, organisation admin).
    pub fn relays(&self) -> RelaysApi<'_> {
        RelaysApi { client: self }
    }

    /// The PAM projects (`/v1/projects`).
    pub fn projects(&self) -> ProjectsApi<'_> {
        ProjectsApi { client: self }
    }

    /// The members of PAM projects (`/v1/projects/{project}/members`).
    pub fn members(&self) -> MembersApi<'_> {
        MembersApi { client: self }
    }

    /// The public keys sessions' records are checked with (`/v1/audit/keys`).
    pub fn audit(&self) -> AuditApi<'_> {
        AuditApi { client: self }
    }

    /// Sign-in links to the web console (`/v1/console/links`).
    pub fn console(&self) -> ConsoleApi<'_> {
        ConsoleApi { client: self }
    }
}

/// Relays' certificates: [`KmsClient::relays`].
#[derive(Clone, Copy, Debug)]
pub struct RelaysApi<'a> {
    client: &'a KmsClient,
}

impl RelaysApi<'_> {
    /// `POST /v1/relays/certificate` (organisation admin): a relay's serving certificate, for
    /// the key of the request's CSR, with the KMS CA and its expiry.
    pub async fn issue_certificate(
        &self,
        request: &IssueRelayCertificate,
    ) -> Result<RelayCertificate, KmsError> {
        let call = Call::new(Method::POST, &["relays", "certificate"]).json(request)?;
        self.client.call(call).await
    }
}

/// The organisation's users: [`KmsClient::users`].
#[derive(Clone, Copy, Debug)]
pub struct UsersApi<'a> {
    client: &'a KmsClient,
}

impl UsersApi<'_> {
    /// `POST /v1/users` (admin). The answer holds the new user's token, shown only this once.
    pub async fn create(&self, name: &str, admin: bool) -> Result<CreatedUser, KmsError> {
        let body = CreateUser {
            name: name.to_owned(),
            admin,
        };
        self.client
            .call(Call::new(Method::POST, &["users"]).json(&body)?)
            .await
    }

    /// `GET /v1/users` (admin).
    pub async fn list(&self) -> Result<Vec<User>, KmsError> {
        self.client.call(Call::new(Method::GET, &["users"])).await
    }

    /// `POST /v1/users/{name}/disable` (organisation admin): the user's token stops working and
    /// their active sessions end.
    pub async fn disable(&self, name: &str) -> Result<User, KmsError> {
        self.client
            .call(Call::new(Method::POST, &["users", name, "disable"]))
            .await
    }

    /// `POST /v1/users/{name}/enable` (organisation admin).
    pub async fn enable(&self, name: &str) -> Result<User, KmsError> {
        self.client
            .call(Call::new(Method::POST, &["users", name, "enable"]))
            .await
    }

    /// `DELETE /v1/users/{name}` (organisation admin): their sessions end; their history stays.
    pub async fn delete(&self, name: &str) -> Result<(), KmsError> {
        self.client
            .call_no_answer(Call::new(Method::DELETE, &["users", name]))
            .await
    }

    /// `POST /v1/users/{name}/token` (organisation admin): a new API token, shown only in this
    /// answer; the old one stops working and the user's active sessions end.
    pub async fn rotate_token(&self, name: &str) -> Result<CreatedUser, KmsError> {
        self.client
            .call(Call::new(Method::POST, &["users", name, "token"]))
            .await
    }
}

/// The gateways as the organisation manages them: [`KmsClient::gateways`].
#[derive(Clone, Copy, Debug)]
pub struct GatewaysApi<'a> {
    client: &'a KmsClient,
}

impl GatewaysApi<'_> {
    /// `POST /v1/gateways` (admin), for the project `default`. The answer holds a one-time
    /// enrollment token.
    pub async fn create(&self, name: &str) -> Result<CreatedGateway, KmsError> {
        self.create_for(name, &[]).await
    }

    /// `POST /v1/gateways` (admin), for the projects named (none: `default`).
    pub async fn create_for(
        &self,
        name: &str,
        projects: &[String],
    ) -> Result<CreatedGateway, KmsError> {
        let body = CreateGateway {
            name: name.to_owned(),
            projects: projects.to_vec(),
        };
        self.client
            .call(Call::new(Method::POST, &["gateways"]).json(&body)?)
            .await
    }

    /// `GET /v1/gateways`.
    pub async fn list(&self) -> Result<Vec<Gateway>, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["gateways"]))
            .await
    }

    /// `GET /v1/gateways/{name}`.
    pub async fn get(&self, name: &str) -> Result<Gateway, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["gateways", name]))
            .await
    }

    /// `PATCH /v1/gateways/{name}` (organisation admin): replaces what `change` gives.
    pub async fn update(&self, name: &str, change: &UpdateGateway) -> Result<Gateway, KmsError> {
        self.client
            .call(Call::new(Method::PATCH, &["gateways", name]).json(change)?)
            .await
    }

    /// `POST /v1/gateways/{name}/projects` (organisation admin): lets `project` use it.
    pub async fn assign(&self, name: &str, project: &str) -> Result<Gateway, KmsError> {
        let body = AssignGateway {
            project: project.to_owned(),
        };
        self.client
            .call(Call::new(Method::POST, &["gateways", name, "projects"]).json(&body)?)
            .await
    }

    /// `DELETE /v1/gateways/{name}/projects/{project}` (organisation admin).
    pub async fn unassign(&self, name: &str, project: &str) -> Result<Gateway, KmsError> {
        self.client
            .call(Call::new(
                Method::DELETE,
                &["gateways", name, "projects", project],
            ))
            .await
    }

    /// `POST /v1/gateways/enroll`: spends the enrollment token in `request`; no client token is
    /// needed.
    pub async fn enroll(&self, request: &EnrollGateway) -> Result<EnrolledGateway, KmsError> {
        self.client
            .call(Call::new(Method::POST, &["gateways", "enroll"]).json(request)?)
            .await
    }

    /// `POST /v1/gateways/{name}/revoke` (organisation admin): the gateway's token stops
    /// working, its sessions end and KMS opens no new ones on it until it enrolls again.
    pub async fn revoke(&self, name: &str) -> Result<Gateway, KmsError> {
        self.client
            .call(Call::new(Method::POST, &["gateways", name, "revoke"]))
            .await
    }
}

/// The PAM projects: [`KmsClient::projects`].
#[derive(Clone, Copy, Debug)]
pub struct ProjectsApi<'a> {
    client: &'a KmsClient,
}

impl ProjectsApi<'_> {
    /// `POST /v1/projects` (organisation admin).
    pub async fn create(&self, name: &str) -> Result<Project, KmsError> {
        let body = CreateProject {
            name: name.to_owned(),
        };
        self.client
            .call(Call::new(Method::POST, &["projects"]).json(&body)?)
            .await
    }

    /// `GET /v1/projects`: the projects the caller belongs to (every one for an organisation
    /// admin), with the caller's role in each.
    pub async fn list(&self) -> Result<Vec<Project>, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["projects"]))
            .await
    }

    /// `GET /v1/projects/{name}` (its members): 404 for a project the caller is not in.
    pub async fn get(&self, name: &str) -> Result<Project, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["projects", name]))
            .await
    }

    /// `DELETE /v1/projects/{name}` (organisation admin): refused for `default` and for a
    /// project that still has resources.
    pub async fn delete(&self, name: &str) -> Result<(), KmsError> {
        self.client
            .call_no_answer(Call::new(Method::DELETE, &["projects", name]))
            .await
    }
}

/// The members of PAM projects: [`KmsClient::members`].
#[derive(Clone, Copy, Debug)]
pub struct MembersApi<'a> {
    client: &'a KmsClient,
}

impl MembersApi<'_> {
    /// `GET /v1/projects/{project}/members` (project admin, auditor).
    pub async fn list(&self, project: &str) -> Result<Vec<Member>, KmsError> {
        let segments = ["projects", project, "members"];
        self.client.call(Call::new(Method::GET, &segments)).await
    }

    /// `PUT /v1/projects/{project}/members/{user}` (project admin): adds the user with `role`,
    /// or changes their role.
    pub async fn set(
        &self,
        project: &str,
        user: &str,
        role: ProjectRole,
    ) -> Result<Member, KmsError> {
        let segments = ["projects", project, "members", user];
        let body = SetMember { role };
        self.client
            .call(Call::new(Method::PUT, &segments).json(&body)?)
            .await
    }

    /// `DELETE /v1/projects/{project}/members/{user}` (project admin): ends the user's active
    /// sessions in the project and removes their grants there.
    pub async fn remove(&self, project: &str, user: &str) -> Result<(), KmsError> {
        let segments = ["projects", project, "members", user];
        self.client
            .call_no_answer(Call::new(Method::DELETE, &segments))
            .await
    }
}

/// The public keys sessions' records are checked with: [`KmsClient::audit`].
#[derive(Clone, Copy, Debug)]
pub struct AuditApi<'a> {
    client: &'a KmsClient,
}

impl AuditApi<'_> {
    /// `GET /v1/audit/keys`: KMS's audit key and every gateway's.
    pub async fn keys(&self) -> Result<AuditKeys, KmsError> {
        self.client
            .call(Call::new(Method::GET, &["audit", "keys"]))
            .await
    }
}

/// Sign-in links to the web console: [`KmsClient::console`].
#[derive(Clone, Copy, Debug)]
pub struct ConsoleApi<'a> {
    client: &'a KmsClient,
}

impl ConsoleApi<'_> {
    /// `POST /v1/console/links`: a one-time sign-in link to the web console for the caller
    /// (valid 60 s). Returns its full URL.
    pub async fn link(&self) -> Result<String, KmsError> {
        #[derive(serde::Deserialize)]
        struct Link {
            path: String,
        }
        let link: Link = self
            .client
            .call(Call::new(Method::POST, &["console", "links"]))
            .await?;
        Ok(format!(
            "{}{}",
            self.client.current_url().trim_end_matches('/'),
            link.path
        ))
    }
}
