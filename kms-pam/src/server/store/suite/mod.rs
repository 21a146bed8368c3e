//! The store test suite, run against every engine: SQLite in a temporary directory and
//! PostgreSQL in a throwaway cluster (one per test binary, a fresh database per test).
//! Engine-specific checks (file modes, raw ciphertext, old-schema upgrades) stay beside each
//! engine.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::kms::api::ProjectRole;
use crate::secret::Secret;
use crate::server::store::crypto::issue_token;
use crate::server::store::postgres::test_cluster::TestCluster;
use crate::server::store::postgres::PostgresStore;
use crate::server::store::sqlite::SqliteStore;
use crate::server::store::*;
use crate::session::{EndCause, SessionId, SessionStatus};

mod audit;
mod basics;
pub(crate) mod events;
mod grants;
mod lifecycle;
mod search;

/// A store and what must live as long as it (the directory of its file or root key).
pub(crate) struct Opened {
    pub(crate) store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

/// A fresh SQLite store in a temporary directory.
pub(crate) async fn open_sqlite() -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_path(&dir.path().join("kms.db"), &dir.path().join("root.key"))
        .await
        .unwrap();
    Opened {
        store: Arc::new(store),
        _dir: dir,
    }
}

/// A fresh PostgreSQL store: a new database in this binary's cluster.
pub(crate) async fn open_postgres() -> Opened {
    let url = TestCluster::shared().fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PostgresStore::open_url(&url, &dir.path().join("root.key"))
        .await
        .unwrap();
    Opened {
        store: Arc::new(store),
        _dir: dir,
    }
}

pub(super) const SA_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.sa-token-at-rest-7f3c";

pub(super) fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// A project with a user (its administrator), an enrolled gateway, a resource and an account.
pub(super) struct Fixture {
    pub(super) store: Arc<dyn Store>,
    pub(super) project: ProjectRecord,
    pub(super) user: UserRecord,
    pub(super) gateway: GatewayRecord,
    pub(super) account: AccountRecord,
}

pub(super) async fn fixture(store: Arc<dyn Store>) -> Fixture {
    let project = store.ensure_project("default", t(0)).await.unwrap();
    let (_, hash) = issue_token("kmsu_").unwrap();
    let user = store
        .create_user(NewUser {
            name: "alice".into(),
            admin: false,
            token: hash,
            now: t(0),
        })
        .await
        .unwrap();
    // An administrator of the project, so her sessions need no grant.
    store
        .set_member(&project.id, &user.id, ProjectRole::Admin, t(0))
        .await
        .unwrap();
    let (_, enrollment) = issue_token("kmse_").unwrap();
    let gateway = store
        .create_gateway(NewGateway {
            name: "gw".into(),
            enrollment,
            enrollment_expires_at: t(3600),
            project_ids: Vec::new(),
            now: t(0),
        })
        .await
        .unwrap();
    let resource = store
        .create_resource(NewResource {
            project_id: project.id.clone(),
            name: "prod".into(),
            kind: "kubernetes".into(),
            url: "https://10.0.0.1:6443".into(),
            gateway_id: gateway.id.clone(),
            ssl_verify: true,
            ca_cert: None,
            now: t(0),
        })
        .await
        .unwrap();
    let account = store
        .create_account(NewAccount {
            project_id: project.id.clone(),
            resource_id: resource.id.clone(),
            name: "admin".into(),
            description: None,
            max_duration_secs: 3600,
            token: Secret::new(SA_TOKEN),
            now: t(0),
        })
        .await
        .unwrap();
    Fixture {
        store,
        project,
        user,
        gateway,
        account,
    }
}

impl Fixture {
    pub(super) async fn session(&self, created: u64, expires: u64) -> SessionUpdate {
        let new = self.new_session(&self.user, None, created, expires);
        self.store.create_session(new).await.unwrap()
    }

    /// Tries to store a session of `user` under `grant_id`, from `t(1)` to `t(100)`.
    pub(super) async fn try_session(
        &self,
        user: &UserRecord,
        grant_id: Option<&str>,
    ) -> Result<SessionUpdate, StoreError> {
        let new = self.new_session(user, grant_id, 1, 100);
        self.store.create_session(new).await
    }

    pub(super) fn new_session(
        &self,
        user: &UserRecord,
        grant_id: Option<&str>,
        created: u64,
        expires: u64,
    ) -> NewSessionRecord {
        NewSessionRecord {
            id: SessionId::new_random(),
            project_id: self.project.id.clone(),
            user: user.clone(),
            account: self.account.clone(),
            gateway: self.gateway.clone(),
            grant_id: grant_id.map(str::to_owned),
            token: None,
            identity: None,
            reason: Some("debug".into()),
            created_at: t(created),
            expires_at: t(expires),
            client_address: Some("192.0.2.7".into()),
            user_agent: Some("kms-pam/0.1.0".into()),
            key: Some(SessionKeyRecord {
                gateway_key: "gk".into(),
                ticket: "ticket".into(),
            }),
        }
    }

    /// A new user `name`, member of the project with a grant of the account; returns the grant.
    pub(super) async fn granted_member(&self, name: &str) -> (UserRecord, GrantRecord) {
        let (_, hash) = issue_token("kmsu_").unwrap();
        let new = NewUser {
            name: name.into(),
            admin: false,
            token: hash,
            now: t(0),
        };
        let user = self.store.create_user(new).await.unwrap();
        self.store
            .set_member(&self.project.id, &user.id, ProjectRole::Member, t(0))
            .await
            .unwrap();
        let grant = self.grant(&user).await;
        (user, grant)
    }

    /// A grant of the account to `user`.
    pub(super) async fn grant(&self, user: &UserRecord) -> GrantRecord {
        let new = NewGrant {
            project_id: self.project.id.clone(),
            account_id: self.account.id.clone(),
            user_id: user.id.clone(),
            max_duration_secs: 600,
            expires_at: None,
            now: t(0),
        };
        self.store.create_grant(new).await.unwrap()
    }
}

/// One `#[tokio::test]` per suite test, each on a fresh store from `$open`. Two worker threads,
/// so a test can hold one store call inside its transaction while it drives another.
macro_rules! run_suite {
    ($open:path) => {
        run_suite!($open;
            basics::names_are_unique_and_lookups_report_not_found,
            basics::deleting_a_resource_removes_accounts_and_grants_but_keeps_sessions,
            basics::the_ca_is_stored_once,
            basics::an_account_edit_keeps_its_token_unless_given_one,
            basics::a_resource_edit_keeps_its_accounts_grants_and_sessions,
            basics::gateway_assignments_and_allow_lists_are_kept,
            lifecycle::enrollment_tokens_are_single_use_and_expire,
            lifecycle::session_changes_are_logged_in_order,
            lifecycle::a_session_keeps_where_it_was_requested_from,
            lifecycle::a_session_is_stored_only_while_what_allows_it_holds,
            lifecycle::only_an_outage_postpones_abandonment_and_only_once,
            lifecycle::ending_a_session_past_expiry_records_expiry_and_filters_work,
            audit::audit_keys_heads_and_recording_policies_are_kept,
            events::an_append_waits_for_the_one_before_it_and_links_to_it,
            events::the_same_upload_appended_twice_at_once_is_stored_once,
            search::command_lines_are_searched_word_by_word,
            search::sessions_with_requests_and_no_lines_are_listed,
            grants::a_revoked_grant_stays_listed_and_allows_no_session,
            grants::a_grant_expires_and_a_new_one_replaces_a_lapsed_one
        );
    };
    ($open:path; $($module:ident :: $test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let opened = $open().await;
                super::$module::$test(opened.store.clone()).await;
            }
        )*
    };
}

mod sqlite {
    run_suite!(super::open_sqlite);
}

mod postgres {
    run_suite!(super::open_postgres);
}
