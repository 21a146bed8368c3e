//! The organisation's administration: projects and their members, and taking access away
//! (users disabled, deleted or given a new token; gateways revoked).

use http::Method;

use super::{Call, KmsClient, KmsError};
use crate::kms::api::{
    CreateProject, CreatedUser, Gateway, Member, Project, ProjectRole, SetMember, User,
};

impl KmsClient {
    /// `POST /v1/projects` (organisation admin).
    pub async fn create_project(&self, name: &str) -> Result<Project, KmsError> {
        let body = CreateProject {
            name: name.to_owned(),
        };
        self.call(Call::new(Method::POST, &["projects"]).json(&body)?)
            .await
    }

    /// `GET /v1/projects`: the projects the caller belongs to (every one for an organisation
    /// admin), with the caller's role in each.
    pub async fn list_projects(&self) -> Result<Vec<Project>, KmsError> {
        self.call(Call::new(Method::GET, &["projects"])).await
    }

    /// `GET /v1/projects/{name}` (its members): 404 for a project the caller is not in.
    pub async fn get_project(&self, name: &str) -> Result<Project, KmsError> {
        self.call(Call::new(Method::GET, &["projects", name])).await
    }

    /// `DELETE /v1/projects/{name}` (organisation admin): refused for `default` and for a
    /// project that still has resources.
    pub async fn delete_project(&self, name: &str) -> Result<(), KmsError> {
        self.call_no_answer(Call::new(Method::DELETE, &["projects", name]))
            .await
    }

    /// `GET /v1/projects/{project}/members` (project admin, auditor).
    pub async fn list_members(&self, project: &str) -> Result<Vec<Member>, KmsError> {
        let segments = ["projects", project, "members"];
        self.call(Call::new(Method::GET, &segments)).await
    }

    /// `PUT /v1/projects/{project}/members/{user}` (project admin): adds the user with `role`,
    /// or changes their role.
    pub async fn set_member(
        &self,
        project: &str,
        user: &str,
        role: ProjectRole,
    ) -> Result<Member, KmsError> {
        let segments = ["projects", project, "members", user];
        let body = SetMember { role };
        self.call(Call::new(Method::PUT, &segments).json(&body)?)
            .await
    }

    /// `DELETE /v1/projects/{project}/members/{user}` (project admin): ends the user's active
    /// sessions in the project and removes their grants there.
    pub async fn remove_member(&self, project: &str, user: &str) -> Result<(), KmsError> {
        let segments = ["projects", project, "members", user];
        self.call_no_answer(Call::new(Method::DELETE, &segments))
            .await
    }

    /// `POST /v1/users/{name}/disable` (organisation admin): the user's token stops working and
    /// their active sessions end.
    pub async fn disable_user(&self, name: &str) -> Result<User, KmsError> {
        self.call(Call::new(Method::POST, &["users", name, "disable"]))
            .await
    }

    /// `POST /v1/users/{name}/enable` (organisation admin).
    pub async fn enable_user(&self, name: &str) -> Result<User, KmsError> {
        self.call(Call::new(Method::POST, &["users", name, "enable"]))
            .await
    }

    /// `DELETE /v1/users/{name}` (organisation admin): their sessions end; their history stays.
    pub async fn delete_user(&self, name: &str) -> Result<(), KmsError> {
        self.call_no_answer(Call::new(Method::DELETE, &["users", name]))
            .await
    }

    /// `POST /v1/users/{name}/token` (organisation admin): a new API token, shown only in this
    /// answer; the old one stops working and the user's active sessions end.
    pub async fn rotate_user_token(&self, name: &str) -> Result<CreatedUser, KmsError> {
        self.call(Call::new(Method::POST, &["users", name, "token"]))
            .await
    }

    /// `POST /v1/gateways/{name}/revoke` (organisation admin): the gateway's token stops
    /// working, its sessions end and KMS opens no new ones on it until it enrolls again.
    pub async fn revoke_gateway(&self, name: &str) -> Result<Gateway, KmsError> {
        self.call(Call::new(Method::POST, &["gateways", name, "revoke"]))
            .await
    }
}
