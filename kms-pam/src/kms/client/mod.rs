//! The KMS client: typed calls for every endpoint of docs/api.md, used by the CLI and the
//! gateway.
//!
//! The calls are grouped by API area, each behind a borrowed handle: the organisation's
//! [`users`](KmsClient::users), [`gateways`](KmsClient::gateways),
//! [`relays`](KmsClient::relays) (their certificates), [`projects`](KmsClient::projects),
//! [`members`](KmsClient::members),
//! [`audit`](KmsClient::audit) keys and [`console`](KmsClient::console) links
//! (`organisation.rs`); a PAM project's [`resources`](KmsClient::resources),
//! [`accounts`](KmsClient::accounts), [`grants`](KmsClient::grants) and
//! [`sessions`](KmsClient::sessions) (`project.rs`); and a gateway's own calls,
//! [`gateway`](KmsClient::gateway) (`gateway.rs`); single sign-on, [`sso`](KmsClient::sso) with
//! the CLI's [`LoopbackSignIn`] (`sso.rs`). [`KmsClient::whoami`] and
//! [`KmsClient::healthz`] are on the client itself.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kms_pam::kms::client::KmsError> {
//! use kms_pam::kms::client::KmsClient;
//! use kms_pam::Secret;
//!
//! let kms = KmsClient::new("http://127.0.0.1:8080", Some(Secret::new("kmsu_...")))?;
//! let me = kms.whoami().await?;
//! println!("{} (admin: {})", me.name, me.admin);
//! for resource in kms.in_project("team-a").resources().list().await? {
//!     println!("{}", resource.name);
//! }
//! # Ok(()) }
//! ```
//!
//! A client works in one PAM project: [`KmsClient::in_project`] scopes the project's calls
//! (resources, accounts, grants, sessions) to `/v1/projects/{project}/…`; without it they use the
//! unprefixed routes, which are the project `default`'s.
//!
//! `https://` URLs are verified against the system roots (or a given CA bundle, see
//! [`KmsClientOptions`]) with rustls and the `ring` provider. Plain `http://` is accepted to this
//! machine only (loopback addresses, `localhost`), unless [`KmsClientOptions::insecure_http`]
//! allows it to other hosts: API and gateway tokens, and the credentials KMS hands gateways,
//! would cross the network in clear.
//! Every call has a deadline: 5 s to connect, [`REQUEST_TIMEOUT`] for the answer (long polls get
//! their wait on top).
//!
//! KMS replicas (docs/operations.md): give several base URLs separated by commas
//! (`http://kms-a:8080,http://kms-b:8080`). Calls go to the replica that answered last; when a
//! connection to it cannot be made they go on to the next URL, while an HTTP answer (even an
//! error) never sends a call elsewhere. A request that may have reached a replica before its
//! connection broke is retried elsewhere only when it is a `GET`. When no URL answers, the error
//! names each of them.

mod error;
mod failover;
mod gateway;
mod kms_client;
mod organisation;
mod project;
mod sso;

pub use error::{ConnectionFailure, KmsError};
pub use gateway::GatewayApi;
pub use kms_client::{KmsClient, KmsClientOptions, CONNECT_TIMEOUT, REQUEST_TIMEOUT};
pub use organisation::{
    AuditApi, ConsoleApi, GatewaysApi, MembersApi, ProjectsApi, RelaysApi, UsersApi,
};
pub use project::{AccountsApi, GrantsApi, ResourcesApi, SessionFilter, SessionsApi};
pub use sso::{LoopbackError, LoopbackSignIn, SsoApi};

#[cfg(test)]
mod tests;
