//! The closed vocabularies of the API: error codes, principal kinds, gateway statuses, resource
//! kinds, project roles. Each serializes as the lowercase string docs/api.md lists, and each has an `Unknown`
//! that any other string reads as, so a client keeps working against a newer KMS that added a
//! value (it shows `unknown` for it instead of failing to read the whole answer).

use std::fmt;

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// The `code` of an API error: what kind of answer it is, which decides what a caller does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 401: no credentials, or credentials that identify nobody.
    Unauthenticated,
    /// 403: the caller is known but may not do this.
    Forbidden,
    /// 404: no such object, or the caller may not see it.
    NotFound,
    /// 409: a name is taken, or the object is not in a state that allows this.
    Conflict,
    /// 400 (or another 4xx the request's form earned): the request is malformed or invalid.
    Invalid,
    /// 503: the KMS cannot answer now; retry later.
    Unavailable,
    /// 500: the KMS failed; its log has the detail.
    Internal,
    /// A code this version does not know (from a newer KMS).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire (`not_found`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }

    /// The HTTP status docs/api.md pairs with the code. `Invalid` answers may carry another 4xx
    /// (405, 413, 415, 422) when the framework found the request's form wrong.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Invalid => StatusCode::BAD_REQUEST,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal | Self::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the same request may succeed later: the KMS was unavailable or failed.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable | Self::Internal)
    }
}

/// Who a token belongs to (`WhoAmI.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PrincipalKind {
    /// A person, with a user API token.
    User,
    /// A gateway, with the token it received at enrollment.
    Gateway,
    /// A kind this version does not know (from a newer KMS).
    #[serde(other)]
    Unknown,
}

impl PrincipalKind {
    /// The kind as it appears on the wire (`user`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Gateway => "gateway",
            Self::Unknown => "unknown",
        }
    }
}

/// Whether a gateway can take sessions now (`Gateway.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GatewayStatus {
    /// Enrolled, and its last heartbeat is recent.
    Online,
    /// Enrolled, but not heard from recently.
    Offline,
    /// Created, not enrolled yet.
    Pending,
    /// Revoked: its token and tunnels are refused until it enrolls again.
    Revoked,
    /// A status this version does not know (from a newer KMS).
    #[serde(other)]
    Unknown,
}

impl GatewayStatus {
    /// The status as it appears on the wire (`online`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Pending => "pending",
            Self::Revoked => "revoked",
            Self::Unknown => "unknown",
        }
    }
}

/// What a PAM resource is (`Resource.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResourceKind {
    /// A Kubernetes cluster, reached at its API server URL.
    Kubernetes,
    /// A kind this version does not know: a newer KMS's, or a request for one this KMS refuses.
    #[serde(other)]
    Unknown,
}

impl ResourceKind {
    /// The kind as it appears on the wire (`kubernetes`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Unknown => "unknown",
        }
    }

    /// The kind a stored name stands for; `Unknown` for any name this version does not know.
    pub fn from_name(name: &str) -> Self {
        match name {
            "kubernetes" => Self::Kubernetes,
            _ => Self::Unknown,
        }
    }
}

/// A user's role in a PAM project (`Member.role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProjectRole {
    /// Manages the project: resources, accounts, grants, members, every session.
    Admin,
    /// Opens sessions on the accounts granted to them; sees their own sessions.
    Member,
    /// Reads every session of the project; changes nothing.
    Auditor,
    /// A role this version does not know (from a newer KMS).
    #[serde(other)]
    Unknown,
}

impl ProjectRole {
    /// The role as it appears on the wire (`auditor`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Auditor => "auditor",
            Self::Unknown => "unknown",
        }
    }

    /// The role named `name`; `None` for any other name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Admin, Self::Member, Self::Auditor]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

macro_rules! display_as_str {
    ($($type:ty),*) => {$(
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

display_as_str!(
    ErrorCode,
    PrincipalKind,
    GatewayStatus,
    ResourceKind,
    ProjectRole
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_strings_both_ways() {
        for code in [
            ErrorCode::Unauthenticated,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::Invalid,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{code}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        assert_eq!(
            serde_json::to_string(&GatewayStatus::Online).unwrap(),
            r#""online""#
        );
        assert_eq!(
            serde_json::to_string(&PrincipalKind::Gateway).unwrap(),
            r#""gateway""#
        );
        assert_eq!(ErrorCode::NotFound.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn values_from_a_newer_kms_read_as_unknown() {
        let code: ErrorCode = serde_json::from_str(r#""rate_limited""#).unwrap();
        assert_eq!(code, ErrorCode::Unknown);
        let status: GatewayStatus = serde_json::from_str(r#""draining""#).unwrap();
        assert_eq!(status, GatewayStatus::Unknown);
        let kind: ResourceKind = serde_json::from_str(r#""postgres""#).unwrap();
        assert_eq!(kind, ResourceKind::Unknown);
        assert_eq!(
            ResourceKind::from_name("kubernetes"),
            ResourceKind::Kubernetes
        );
        let role: ProjectRole = serde_json::from_str(r#""owner""#).unwrap();
        assert_eq!(role, ProjectRole::Unknown);
        assert_eq!(
            ProjectRole::from_name("auditor"),
            Some(ProjectRole::Auditor)
        );
        assert_eq!(ProjectRole::from_name("unknown"), None);
    }
}
