//! The schema the copy knows: every table and column, with each column's type.

/// A column's type, the same in both schemas (INTEGER is BIGINT, BLOB is BYTEA in PostgreSQL).
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Text,
    Int,
    Bool,
    Bytes,
}

use Kind::{Bool, Bytes, Int, Text};

/// Every table, parents before children, with every column of migrations up to 0910 (0200's
/// audit tables included: gateways' keys, KMS's signed heads, recording policies; 0830's
/// gateway reach; 0900's single sign-on; 0910's command lines; 0920's grant lifetimes).
pub(super) const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "projects",
        &[
            ("id", Text),
            ("name", Text),
            ("created_at", Int),
            ("deleted_at", Int),
        ],
    ),
    ("kms_settings", &[("name", Text), ("value", Bytes)]),
    (
        "users",
        &[
            ("id", Text),
            ("name", Text),
            ("admin", Bool),
            ("token_hash", Text),
            ("created_at", Int),
            ("disabled_at", Int),
            ("deleted_at", Int),
        ],
    ),
    (
        "project_members",
        &[
            ("project_id", Text),
            ("user_id", Text),
            ("role", Text),
            ("created_at", Int),
        ],
    ),
    (
        "gateways",
        &[
            ("id", Text),
            ("name", Text),
            ("address", Text),
            ("token_hash", Text),
            ("last_heartbeat", Int),
            ("enrolled_at", Int),
            ("created_at", Int),
            ("revoked_at", Int),
            ("allowed_url_hosts", Text),
            ("reach", Text),
        ],
    ),
    (
        "gateway_projects",
        &[
            ("gateway_id", Text),
            ("project_id", Text),
            ("created_at", Int),
        ],
    ),
    (
        "enrollment_tokens",
        &[
            ("token_hash", Text),
            ("gateway_id", Text),
            ("expires_at", Int),
            ("spent_at", Int),
            ("created_at", Int),
        ],
    ),
    (
        "resources",
        &[
            ("id", Text),
            ("project_id", Text),
            ("name", Text),
            ("kind", Text),
            ("url", Text),
            ("gateway_id", Text),
            ("ssl_verify", Bool),
            ("ca_cert", Text),
            ("created_at", Int),
        ],
    ),
    (
        "accounts",
        &[
            ("id", Text),
            ("project_id", Text),
            ("resource_id", Text),
            ("name", Text),
            ("description", Text),
            ("max_duration_secs", Int),
            ("token_sealed", Bytes),
            ("created_at", Int),
        ],
    ),
    (
        "grants",
        &[
            ("id", Text),
            ("project_id", Text),
            ("account_id", Text),
            ("user_id", Text),
            ("max_duration_secs", Int),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("revoked_by", Text),
            ("revoke_reason", Text),
        ],
    ),
    (
        "sessions",
        &[
            ("id", Text),
            ("project_id", Text),
            ("user_id", Text),
            ("user_name", Text),
            ("resource_id", Text),
            ("resource_name", Text),
            ("account_id", Text),
            ("account_name", Text),
            ("gateway_id", Text),
            ("gateway_name", Text),
            ("status", Text),
            ("end_cause", Text),
            ("reason", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("ended_at", Int),
            ("grant_id", Text),
            ("last_seen_at", Int),
            ("client_address", Text),
            ("user_agent", Text),
            ("identity", Text),
        ],
    ),
    (
        "session_changes",
        &[
            ("seq", Int),
            ("session_id", Text),
            ("gateway_id", Text),
            ("status", Text),
            ("changed_at", Int),
        ],
    ),
    (
        "session_events",
        &[
            ("id", Text),
            ("session_id", Text),
            ("seq", Int),
            ("hash", Text),
            ("event", Text),
            ("received_at", Int),
        ],
    ),
    (
        "session_commands",
        &[("session_id", Text), ("ordinal", Int), ("line", Text)],
    ),
    (
        "console_links",
        &[
            ("hash", Text),
            ("user_id", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
        ],
    ),
    (
        "console_sessions",
        &[
            ("hash", Text),
            ("user_id", Text),
            ("created_at", Int),
            ("last_seen_at", Int),
        ],
    ),
    (
        "gateway_audit_keys",
        &[
            ("gateway_id", Text),
            ("public_key", Text),
            ("created_at", Int),
            ("endorsement", Text),
        ],
    ),
    (
        "session_keys",
        &[
            ("session_id", Text),
            ("gateway_key", Text),
            ("ticket", Text),
        ],
    ),
    (
        "gateway_sealing_keys",
        &[
            ("gateway_id", Text),
            ("public_key", Text),
            ("created_at", Int),
        ],
    ),
    (
        "session_heads",
        &[
            ("session_id", Text),
            ("head", Text),
            ("signature", Text),
            ("sealed_at", Int),
        ],
    ),
    (
        "resource_recording",
        &[
            ("resource_id", Text),
            ("unrecorded_streams", Text),
            ("max_bytes", Int),
            ("max_input_bytes", Int),
        ],
    ),
    (
        "sso_providers",
        &[
            ("id", Text),
            ("name", Text),
            ("issuer", Text),
            ("client_id", Text),
            ("client_secret", Bytes),
            ("settings", Text),
            ("created_at", Int),
        ],
    ),
    (
        "user_identities",
        &[
            ("issuer", Text),
            ("subject", Text),
            ("user_id", Text),
            ("email", Text),
            ("display_name", Text),
            ("groups", Text),
            ("last_seen_at", Int),
        ],
    ),
    (
        "sso_pending",
        &[
            ("key_hash", Text),
            ("kind", Text),
            ("data", Bytes),
            ("expires_at", Int),
        ],
    ),
    (
        "sso_credentials",
        &[
            ("id", Text),
            ("user_id", Text),
            ("provider_id", Text),
            ("issuer", Text),
            ("subject", Text),
            ("access_hash", Text),
            ("access_expires_at", Int),
            ("refresh_hash", Text),
            ("provider_refresh", Bytes),
            ("created_at", Int),
            ("refreshed_at", Int),
            ("revoked_at", Int),
        ],
    ),
];
