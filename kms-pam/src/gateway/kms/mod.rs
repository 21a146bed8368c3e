//! A gateway run by KMS (`--kms-url`): enrollment on first run, its identity kept in the data
//! dir, heartbeats, the KMS-backed session manager and credential store ([`KmsSessionManager`],
//! [`KmsCredentialStore`]), and session tracking: every audit event is chained and spooled in
//! `DATA_DIR/spool`, then shipped to KMS (docs/session-tracking.md).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod keys;
mod link;
mod relayed;

use keys::{load_audit_key, load_sealing_key, register_audit_key, register_sealing_key};
pub use link::{KmsCredentialStore, KmsSessionManager};

use super::mtls::{GatewayTls, MtlsGateway};
use super::{GatewayError, GatewayOptions};
use crate::audit::evidence::signing::SigningKey;
use crate::audit::{
    AuditSink, ChainingSink, Spool, SpoolConfig, SpoolShipper, SpoolSink, TeeAuditSink,
};
use crate::credential::sealing::SealingKey;
use crate::kms::api::{EnrollGateway, PrincipalKind};
use crate::kms::client::{KmsClient, KmsClientOptions};
use crate::metrics::Refresh;
use crate::relay::{dial_relays, DialOptions, RelayTunnels};
use crate::secret::Secret;
use crate::tls::{generate_csr, PrivateKeyPem};

pub(super) const CERT_FILE: &str = "gateway.crt";
pub(super) const KEY_FILE: &str = "gateway.key";
const CA_FILE: &str = "kms-ca.crt";
const TOKEN_FILE: &str = "gateway.token";
/// The Ed25519 key that signs every audit event this gateway records (PKCS#8, 0600); its
/// public half is registered with KMS at enrollment.
const AUDIT_KEY_FILE: &str = "audit.key";
/// The X25519 key KMS seals this gateway's credentials to (HPKE; base64, 0600); its public half
/// is registered with KMS at enrollment (or at the first start after an upgrade). Not the audit
/// key: one signs, the other opens.
const SEALING_KEY_FILE: &str = "sealing.key";
/// The audit spool, under the data dir.
const SPOOL_DIR: &str = "spool";
/// How long a stopping gateway keeps trying to deliver what is spooled; the rest waits on disk
/// for the next start.
const FINAL_DELIVERY: Duration = Duration::from_secs(5);

/// A KMS-run gateway's settings.
#[non_exhaustive]
pub struct KmsGateway {
    /// KMS base URL.
    pub kms_url: String,
    /// Gateway name, as created with `kms-pam gateway create NAME`.
    pub name: String,
    /// Where the gateway keeps its identity (created 0700; key and token files 0600).
    pub data_dir: PathBuf,
    /// The address CLIs dial (`host:port`); never an unspecified address such as `0.0.0.0`
    /// (`serve` refuses one).
    pub advertise: String,
    /// One-time enrollment token; needed on the first run only.
    pub enroll_token: Option<Secret>,
    /// The relays to dial out to, if any (`--relay`).
    pub relays: Option<DialOptions>,
    /// How KMS is reached: the CA an `https://` KMS is verified with (`--kms-ca`), whether a
    /// plain `http://` KMS on another host is allowed (`--insecure-http`; refused by default).
    pub kms_client: KmsClientOptions,
    /// Audit sink (besides the spool that delivers every event to KMS; it receives the events
    /// unchained), pipeline, metrics endpoint, drain: what every mode shares.
    pub options: GatewayOptions,
}

impl KmsGateway {
    /// A gateway named `name` of the KMS at `kms_url`, keeping its identity in `data_dir` and
    /// advertising `advertise` to CLIs; no audit sink besides the spool, the default
    /// [`Pipeline`](crate::proxy::Pipeline), no metrics endpoint, no enrollment token (set one
    /// for the first run).
    pub fn new(
        kms_url: impl Into<String>,
        name: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        advertise: impl Into<String>,
    ) -> Self {
        Self {
            kms_url: kms_url.into(),
            name: name.into(),
            data_dir: data_dir.into(),
            advertise: advertise.into(),
            enroll_token: None,
            relays: None,
            kms_client: KmsClientOptions::new(),
            options: GatewayOptions::new(Arc::new(crate::audit::NullAuditSink)),
        }
    }

    /// Enrolls with this one-time token if the data dir holds no identity yet.
    pub fn with_enroll_token(mut self, token: Option<Secret>) -> Self {
        self.enroll_token = token;
        self
    }

    /// Dials out to these relays (none: `None` or an empty list), so CLIs can reach the
    /// gateway without an inbound port.
    pub fn with_relays(mut self, relays: Option<DialOptions>) -> Self {
        self.relays = relays.filter(|r| !r.relays.is_empty());
        self
    }

    /// Reaches KMS as `options` say (its CA, plain HTTP to another host allowed or not).
    pub fn with_kms_client_options(mut self, options: KmsClientOptions) -> Self {
        self.kms_client = options;
        self
    }

    /// Runs with `options` (an extra audit sink, pipeline, metrics endpoint, drain).
    pub fn with_options(mut self, options: GatewayOptions) -> Self {
        self.options = options;
        self
    }
}

impl std::fmt::Debug for KmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsGateway")
            .field("kms_url", &self.kms_url)
            .field("name", &self.name)
            .field("data_dir", &self.data_dir)
            .field("advertise", &self.advertise)
            .field("relays", &self.relays)
            .field("kms_client", &self.kms_client)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The identity kept in the data dir.
struct Identity {
    tls: GatewayTls,
    token: Secret,
    audit_key: Arc<SigningKey>,
    sealing_key: Arc<SealingKey>,
}

/// Enrolls if needed, then serves tunnels on `listener` (and through the configured relays)
/// until `shutdown` resolves.
pub async fn serve<F>(
    listener: TcpListener,
    config: KmsGateway,
    shutdown: F,
) -> Result<(), GatewayError>
where
    F: Future<Output = ()>,
{
    serve_on(Some(listener), config, shutdown).await
}

/// [`serve`], with the listener optional: a gateway given relays needs no inbound port.
pub async fn serve_on<F>(
    listener: Option<TcpListener>,
    config: KmsGateway,
    shutdown: F,
) -> Result<(), GatewayError>
where
    F: Future<Output = ()>,
{
    if listener.is_none() && config.relays.is_none() {
        return Err(GatewayError::NoWayIn);
    }
    check_advertised_address(&config.advertise)?;
    let anonymous = KmsClient::with_options(&config.kms_url, None, &config.kms_client)
        .map_err(GatewayError::KmsClient)?;
    let mut identity = load_or_enroll(&anonymous, &config).await?;
    let client = anonymous
        .with_token(identity.token.clone())
        .map_err(GatewayError::KmsClient)?;
    let whoami = client
        .whoami()
        .await
        .map_err(GatewayError::IdentityRefused)?;
    if whoami.kind != PrincipalKind::Gateway || whoami.name != config.name {
        return Err(GatewayError::WrongIdentity {
            data_dir: config.data_dir.clone(),
            kind: whoami.kind,
            holder: whoami.name,
            name: config.name.clone(),
        });
    }
    register_audit_key(&client, &identity, &config).await?;
    register_sealing_key(&client, &identity, &config).await?;
    if config.relays.is_some() {
        relayed::renew_if_due(
            &client,
            &config.data_dir,
            &config.advertise,
            &mut identity.tls,
        )
        .await?;
    }
    let tracking = Tracking::start(&config.data_dir, &client, identity.audit_key.clone()).await?;
    let sessions = KmsSessionManager::start(client.clone());
    let relayed = config
        .relays
        .clone()
        .map(|options| {
            let tls = &identity.tls;
            let sessions = sessions.clone();
            dial_relays(
                &config.name,
                &tls.ca_pem,
                &tls.cert_pem,
                &tls.key,
                sessions,
                options,
            )
        })
        .transpose()
        .map_err(GatewayError::TlsMaterial)?;
    let reach = relayed::Reach::new(
        listener.is_some(),
        relayed.as_ref().map(RelayTunnels::links),
    );
    let renewal = relayed.as_ref().map(|tunnels| {
        let tls = GatewayTls::new(
            identity.tls.ca_pem.clone(),
            identity.tls.cert_pem.clone(),
            identity.tls.key.clone(),
        );
        let (dir, advertise) = (config.data_dir.clone(), config.advertise.clone());
        let renewing =
            relayed::keep_renewed(client.clone(), dir, advertise, tls, tunnels.identity());
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(renewing))
    });
    let heartbeat = tokio::spawn(relayed::heartbeats(
        client.clone(),
        config.advertise.clone(),
        reach,
    ));
    let mut options = config.options;
    options.audit = Arc::new(TeeAuditSink::new(vec![
        tracking.sink.clone(),
        options.audit,
    ]));
    let credentials = KmsCredentialStore::new(
        client.clone(),
        identity.sealing_key.clone(),
        config.name.clone(),
    );
    let gateway = MtlsGateway::new(
        config.name,
        identity.tls,
        sessions,
        Arc::new(credentials),
        options,
    );
    let refresh = Some(tracking.refresh());
    // `serve` flushes the audit sinks (the spool included) once the tunnels are closed.
    let outcome =
        crate::gateway::mtls::serve_with_refresh(listener, relayed, gateway, refresh, shutdown)
            .await;
    heartbeat.abort();
    drop(renewal);
    tracking.stop(client).await;
    outcome
}

/// Session tracking of a KMS-run gateway: the chained spool and its shipper to KMS.
struct Tracking {
    sink: Arc<dyn AuditSink>,
    spool: Spool,
    stop_shipping: CancellationToken,
    shipper: tokio::task::JoinHandle<()>,
}

impl Tracking {
    /// Opens the spool (continuing each open session's chain where the last run left it) and
    /// starts shipping, whatever an earlier run left unshipped first.
    async fn start(
        data_dir: &Path,
        client: &KmsClient,
        audit_key: Arc<SigningKey>,
    ) -> Result<Self, GatewayError> {
        let dir = data_dir.join(SPOOL_DIR);
        let spooled = SpoolSink::open(&dir, SpoolConfig::default())
            .await
            .map_err(GatewayError::Spool)?;
        let spool = spooled.spool();
        let chained = ChainingSink::resume(spooled, spool.chain_heads()).with_signer(audit_key);
        let sink: Arc<dyn AuditSink> = Arc::new(chained);
        let stop_shipping = CancellationToken::new();
        let shipper = SpoolShipper::new(spool.clone(), client.clone());
        let shipper = tokio::spawn(shipper.run(stop_shipping.clone().cancelled_owned()));
        if spool.depth() > 0 {
            tracing::info!(
                depth = spool.depth(),
                "delivering audit events an earlier run spooled"
            );
        }
        Ok(Self {
            sink,
            spool,
            stop_shipping,
            shipper,
        })
    }

    /// Copies the spool depth into the metrics before each scrape.
    fn refresh(&self) -> Refresh {
        let spool = self.spool.clone();
        Arc::new(move |metrics| {
            metrics.set_spool_depth(i64::try_from(spool.depth()).unwrap_or(i64::MAX));
        })
    }

    /// Stops the shipper, then tries for a moment to deliver what is left; what KMS does not
    /// take stays on disk for the next start.
    async fn stop(self, client: KmsClient) {
        self.stop_shipping.cancel();
        if let Err(e) = self.shipper.await {
            tracing::warn!(error = %e, "the audit shipper failed");
        }
        let last = SpoolShipper::new(self.spool.clone(), client);
        let delivered = tokio::time::timeout(FINAL_DELIVERY, async {
            loop {
                match last.ship_batch().await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        let depth = self.spool.depth();
        match delivered {
            Ok(Ok(())) => tracing::info!("audit spool delivered to KMS"),
            Ok(Err(e)) => tracing::warn!(error = %e, depth, "audit events stay spooled"),
            Err(_) => tracing::warn!(depth, "audit events stay spooled (KMS too slow)"),
        }
    }
}

/// Refuses an advertised address CLIs cannot dial: `0.0.0.0` or `::` means "every interface" to
/// a listener, but "this machine" (the CLI's own) to whoever connects, and the gateway's
/// certificate would be issued for it. Public for the `kms-pam-gateway` binary's usage check; not
/// API.
#[doc(hidden)]
pub fn check_advertised_address(advertise: &str) -> Result<(), GatewayError> {
    let host = advertise
        .rsplit_once(':')
        .map_or(advertise, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => Err(GatewayError::UnspecifiedAddress {
            advertise: advertise.to_owned(),
        }),
        _ => Ok(()),
    }
}

async fn load_or_enroll(client: &KmsClient, config: &KmsGateway) -> Result<Identity, GatewayError> {
    let dir = &config.data_dir;
    if dir.join(TOKEN_FILE).exists() {
        return load(dir);
    }
    let Some(enroll_token) = &config.enroll_token else {
        return Err(GatewayError::NotEnrolled {
            data_dir: dir.clone(),
            name: config.name.clone(),
        });
    };
    let host = config
        .advertise
        .rsplit_once(':')
        .map_or(config.advertise.as_str(), |(h, _)| h);
    let (key, csr) = generate_csr(host).map_err(GatewayError::Csr)?;
    create_private_dir(dir)?;
    let audit_key = load_audit_key(dir)?;
    let sealing_key = load_sealing_key(dir)?;
    let request = EnrollGateway {
        name: config.name.clone(),
        enrollment_token: enroll_token.clone(),
        csr,
        address: config.advertise.clone(),
        audit_key: Some(audit_key.public_key()),
        sealing_key: Some(sealing_key.public_key()),
    };
    let enrolled = client
        .gateways()
        .enroll(&request)
        .await
        .map_err(GatewayError::Enrollment)?;
    save(
        dir,
        &enrolled.certificate,
        &key,
        &enrolled.ca_certificate,
        enrolled.gateway_token.expose(),
    )?;
    tracing::info!(dir = %dir.display(), "enrolled with KMS; identity saved");
    load(dir)
}

fn io_error(path: &Path, source: std::io::Error) -> GatewayError {
    GatewayError::DataDir {
        path: path.to_owned(),
        source,
    }
}

fn save(
    dir: &Path,
    cert: &str,
    key: &PrivateKeyPem,
    ca: &str,
    token: &str,
) -> Result<(), GatewayError> {
    create_private_dir(dir)?;
    write_file(&dir.join(CERT_FILE), cert, 0o644)?;
    write_file(&dir.join(CA_FILE), ca, 0o644)?;
    write_file(&dir.join(KEY_FILE), key.expose_secret(), 0o600)?;
    // The token last: its presence marks a complete identity.
    write_file(&dir.join(TOKEN_FILE), token, 0o600)
}

fn load(dir: &Path) -> Result<Identity, GatewayError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))
    };
    Ok(Identity {
        tls: GatewayTls {
            ca_pem: read(CA_FILE)?,
            cert_pem: read(CERT_FILE)?,
            key: PrivateKeyPem::new(read(KEY_FILE)?),
        },
        token: Secret::new(read(TOKEN_FILE)?.trim()),
        audit_key: Arc::new(load_audit_key(dir)?),
        sealing_key: Arc::new(load_sealing_key(dir)?),
    })
}

fn create_private_dir(dir: &Path) -> Result<(), GatewayError> {
    crate::fsutil::create_private_dir(dir).map_err(|e| io_error(dir, e))?;
    crate::fsutil::restrict_dir(dir).map_err(|e| io_error(dir, e))
}

pub(super) fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), GatewayError> {
    crate::fsutil::replace_file(path, text.as_bytes(), mode).map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_address_is_never_advertised() {
        for bad in ["0.0.0.0:8443", "[::]:8443", "[0:0:0:0:0:0:0:0]:443"] {
            let err = check_advertised_address(bad).unwrap_err().to_string();
            assert!(err.contains("--advertise HOST:PORT"), "{bad}: {err}");
        }
        for good in [
            "gw1.internal:8443",
            "10.0.0.5:8443",
            "[fd00::5]:8443",
            "127.0.0.1:1",
        ] {
            assert!(check_advertised_address(good).is_ok(), "{good}");
        }
    }

    #[tokio::test]
    async fn serve_refuses_it_before_contacting_kms() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens at the KMS URL: reaching KMS would fail differently.
        let config = KmsGateway::new(
            "http://127.0.0.1:1",
            "gw-1",
            dir.path().join("data"),
            "0.0.0.0:8443",
        )
        .with_enroll_token(Some(Secret::new("enroll")));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = serve(listener, config, std::future::pending())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("unspecified"), "{err}");
        assert!(
            !dir.path().join("data").exists(),
            "nothing enrolled or saved"
        );
    }
}
