//! Store records as the API shows them (docs/api.md "Objects"). No view carries a token.

use std::time::{Duration, SystemTime};

use crate::kms::api::{
    Account, Gateway, GatewayReach, GatewayStatus, Grant, Member, Project, ProjectRole,
    RecordingPolicy, Resource, ResourceKind, SessionClient, SessionView, User,
};
use crate::server::store::{
    AccountRecord, GatewayRecord, GrantRecord, MemberRecord, ProjectRecord, ResourceRecord,
    SessionRecord, UserRecord,
};
use crate::session::{EndCause, SessionBinding, SessionStatus};

/// A gateway is online when its last heartbeat is at most this old.
pub(crate) const ONLINE_WINDOW: Duration = Duration::from_secs(30);

pub(crate) fn user(record: &UserRecord) -> User {
    User {
        name: record.name.clone(),
        admin: record.admin,
        disabled: record.disabled,
        created_at: record.created_at,
    }
}

pub(crate) fn project(record: &ProjectRecord, role: Option<ProjectRole>) -> Project {
    Project {
        name: record.name.clone(),
        role,
        created_at: record.created_at,
    }
}

pub(crate) fn member(record: &MemberRecord) -> Member {
    Member {
        user: record.user.clone(),
        role: record.role,
        created_at: record.created_at,
    }
}

/// `revoked` from its revocation until it enrolls again, `pending` until enrolled, then
/// `online` or `offline` by the last heartbeat.
pub(crate) fn gateway_status(record: &GatewayRecord, now: SystemTime) -> GatewayStatus {
    if record.revoked {
        return GatewayStatus::Revoked;
    }
    if !record.enrolled {
        return GatewayStatus::Pending;
    }
    let recent = record.last_heartbeat.is_some_and(|beat| {
        now.duration_since(beat)
            .map_or(true, |age| age <= ONLINE_WINDOW)
    });
    if recent {
        GatewayStatus::Online
    } else {
        GatewayStatus::Offline
    }
}

pub(crate) fn gateway(record: &GatewayRecord, now: SystemTime) -> Gateway {
    Gateway {
        name: record.name.clone(),
        address: record.address.clone(),
        status: gateway_status(record, now),
        last_heartbeat: record.last_heartbeat,
        created_at: record.created_at,
        audit_key: None,
        projects: Vec::new(),
        allowed_url_hosts: record.allowed_url_hosts.clone(),
        reach: record.reach.clone(),
    }
}

/// The relays a CLI tries for a session on a gateway that reported `reach`: those holding a
/// tunnel from it first, then the others (it may be re-tunnelling to them), each group in the
/// gateway's order.
pub(crate) fn session_relays(reach: &GatewayReach) -> Vec<String> {
    let (up, down): (Vec<_>, Vec<_>) = reach.relays.iter().partition(|relay| relay.connected);
    up.into_iter()
        .chain(down)
        .map(|relay| relay.url.clone())
        .collect()
}

pub(crate) fn resource(record: &ResourceRecord) -> Resource {
    Resource {
        name: record.name.clone(),
        kind: ResourceKind::from_name(&record.kind),
        url: super::validate::shown_url(&record.url),
        gateway: record.gateway.clone(),
        ssl_verify: record.ssl_verify,
        ca_cert: record.ca_cert.clone(),
        created_at: record.created_at,
        recording: RecordingPolicy::default(),
    }
}

pub(crate) fn account(record: &AccountRecord) -> Account {
    Account {
        resource: record.resource.clone(),
        name: record.name.clone(),
        description: record.description.clone(),
        max_duration_secs: record.max_duration_secs,
        created_at: record.created_at,
    }
}

pub(crate) fn grant(record: &GrantRecord) -> Grant {
    Grant {
        id: record.id.clone(),
        resource: record.resource.clone(),
        account: record.account.clone(),
        user: record.user.clone(),
        max_duration_secs: record.max_duration_secs,
        created_at: record.created_at,
        status: record.status(super::state::now()),
        expires_at: record.expires_at,
        revoked_at: record.revoked.as_ref().map(|revoked| revoked.at),
        revoked_by: record.revoked.as_ref().map(|revoked| revoked.by.clone()),
        revoke_reason: record
            .revoked
            .as_ref()
            .map(|revoked| revoked.reason.clone()),
    }
}

/// The session as of `now`: one still marked active past its expiry is shown as the expiry
/// task will record it a moment later, so no answer ever calls an expired session active.
/// Where `record` was requested from; `None` when nothing was recorded (sessions older than
/// migration 0600).
pub(crate) fn session_client(record: &SessionRecord) -> Option<SessionClient> {
    (record.client_address.is_some() || record.user_agent.is_some()).then(|| SessionClient {
        address: record.client_address.clone(),
        user_agent: record.user_agent.clone(),
    })
}

pub(crate) fn session(record: &SessionRecord, now: SystemTime) -> SessionView {
    session_of(record, now, None)
}

/// The session as its gateway and its signed record see it: with its binding (project, user
/// id, client), which the gateway signs into `session_started` and KMS into the head.
pub(crate) fn bound_session(record: &SessionRecord, now: SystemTime) -> SessionView {
    let binding = SessionBinding::new(&record.project_id, &record.user_id)
        .with_client(record.client_address.clone(), record.user_agent.clone())
        .with_identity(record.identity.clone());
    session_of(record, now, Some(binding))
}

fn session_of(
    record: &SessionRecord,
    now: SystemTime,
    binding: Option<SessionBinding>,
) -> SessionView {
    let mut session = record.session.clone();
    session.binding = binding;
    let mut end_cause = record.end_cause;
    if session.status_at(now) != session.status {
        session.status = SessionStatus::Expired;
        session.ended_at = Some(session.expires_at);
        end_cause = Some(EndCause::Expiry);
    }
    SessionView {
        session,
        end_cause,
        identity: record.identity.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Session, SessionId};

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn gateway_status_follows_enrollment_and_heartbeats() {
        let mut gw = GatewayRecord {
            id: "g".into(),
            name: "gw".into(),
            address: None,
            enrolled: false,
            last_heartbeat: None,
            revoked: false,
            created_at: at(0),
            allowed_url_hosts: Vec::new(),
            reach: GatewayReach::default(),
        };
        assert_eq!(gateway_status(&gw, at(0)), GatewayStatus::Pending);
        gw.enrolled = true;
        assert_eq!(gateway_status(&gw, at(0)), GatewayStatus::Offline);
        gw.last_heartbeat = Some(at(100));
        assert_eq!(gateway_status(&gw, at(130)), GatewayStatus::Online);
        assert_eq!(gateway_status(&gw, at(131)), GatewayStatus::Offline);
        assert_eq!(
            gateway_status(&gw, at(99)),
            GatewayStatus::Online,
            "clock skew is not offline"
        );
        gw.revoked = true;
        assert_eq!(gateway_status(&gw, at(100)), GatewayStatus::Revoked);
    }

    #[test]
    fn sessions_try_connected_relays_first_in_the_gateways_order() {
        let link = |url: &str, connected| crate::kms::api::RelayLink {
            url: url.into(),
            connected,
        };
        let reach = GatewayReach {
            direct: false,
            relays: vec![
                link("a:443", false),
                link("b:443", true),
                link("c:443", false),
                link("d:443", true),
            ],
        };
        assert_eq!(session_relays(&reach), ["b:443", "d:443", "a:443", "c:443"]);
        assert!(session_relays(&GatewayReach::default()).is_empty());
    }

    #[test]
    fn active_sessions_past_expiry_show_as_expired() {
        let record = SessionRecord {
            session: Session {
                id: SessionId::new("s"),
                user: "alice".into(),
                resource: "prod".into(),
                account: "admin".into(),
                gateway: "gw".into(),
                status: SessionStatus::Active,
                created_at: at(0),
                expires_at: at(10),
                ended_at: None,
                reason: None,
                binding: None,
            },
            end_cause: None,
            project_id: "p".into(),
            user_id: "u".into(),
            resource_id: "r".into(),
            account_id: "a".into(),
            gateway_id: "g".into(),
            grant_id: None,
            last_seen_at: at(0),
            client_address: None,
            user_agent: None,
            identity: None,
        };
        assert_eq!(
            session(&record, at(9)).session.status,
            SessionStatus::Active
        );
        let late = session(&record, at(10));
        assert_eq!(late.session.status, SessionStatus::Expired);
        assert_eq!(late.session.ended_at, Some(at(10)));
        assert_eq!(late.end_cause, Some(EndCause::Expiry));
    }
}
