//! A complete kms-pam system in one process, for examples.

use std::time::Duration;

use kms_pam::gateway::kms::{self as kms_mode, KmsGateway};
use kms_pam::kms::api::{CreateAccount, CreateResource, GatewayStatus, ResourceKind};
use kms_pam::kms::client::KmsClient;
use kms_pam::server::{Server, ServerConfig};
use kms_pam::Secret;
use kms_pam_tests::apiserver::{ApiServerDouble, DoubleConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The resource the demo creates.
pub const RESOURCE: &str = "demo";
/// The account the demo creates.
pub const ACCOUNT: &str = "admin";

/// KMS, a gateway and a cluster, running.
#[derive(Debug)]
pub struct Demo {
    /// KMS base URL.
    pub kms_url: String,
    /// The bootstrapped admin's API token.
    pub admin_token: Secret,
    /// The cluster (an API server double).
    pub cluster: ApiServerDouble,
    /// Where KMS and the gateway keep their data.
    pub data: tempfile::TempDir,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Demo {
    /// Starts KMS (fresh SQLite data dir), enrolls gateway `gw-demo`, starts the cluster and
    /// registers it as resource `demo` with account `admin`; returns once the gateway is online.
    pub async fn start() -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let stop = CancellationToken::new();
        let server = Server::open(ServerConfig::new(data.path().join("kms"))).await?;
        let admin_token = Secret::new(std::fs::read_to_string(server.admin_token_path())?.trim());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let kms_url = format!("http://{}", listener.local_addr()?);
        let kms_stop = stop.clone().cancelled_owned();
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = server.serve(listener, kms_stop).await {
                eprintln!("KMS stopped: {e}");
            }
        })];
        let admin = KmsClient::new(&kms_url, Some(admin_token.clone()))?;

        let enrollment = admin.gateways().create("gw-demo").await?.enrollment_token;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let gateway = KmsGateway::new(
            kms_url.clone(),
            "gw-demo",
            data.path().join("gateway"),
            listener.local_addr()?.to_string(),
        )
        .with_enroll_token(Some(enrollment));
        let gateway_stop = stop.clone().cancelled_owned();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = kms_mode::serve(listener, gateway, gateway_stop).await {
                eprintln!("gateway stopped: {e}");
            }
        }));

        let cluster = ApiServerDouble::start(DoubleConfig::default()).await?;
        let resource = CreateResource {
            kind: ResourceKind::Kubernetes,
            name: RESOURCE.into(),
            url: cluster.url(),
            gateway: "gw-demo".into(),
            ssl_verify: true,
            ca_cert: Some(cluster.ca_pem().to_owned()),
            recording: Default::default(),
        };
        admin.resources().create(&resource).await?;
        let account = CreateAccount {
            name: ACCOUNT.into(),
            token: Secret::new(cluster.token()),
            description: Some("cluster-admin service account".into()),
            max_duration_secs: Some(3600),
        };
        admin.accounts().create(RESOURCE, &account).await?;
        wait_online(&admin).await?;
        Ok(Self {
            kms_url,
            admin_token,
            cluster,
            data,
            stop,
            tasks,
        })
    }

    /// A client acting as the admin.
    pub fn admin(&self) -> anyhow::Result<KmsClient> {
        Ok(KmsClient::new(
            &self.kms_url,
            Some(self.admin_token.clone()),
        )?)
    }

    /// Stops everything.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.cluster.shutdown().await;
    }
}

/// The gateway enrolls and sends its first heartbeat right after start.
async fn wait_online(admin: &KmsClient) -> anyhow::Result<()> {
    for _ in 0..100 {
        if admin
            .gateways()
            .list()
            .await?
            .iter()
            .any(|g| g.status == GatewayStatus::Online)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the gateway did not come online")
}
