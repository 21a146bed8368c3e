//! A KMS-run gateway's reach: heartbeats that say how CLIs reach it (its listener, the relays
//! holding its tunnel), and the identity certificate renewed before it is used to dial relays.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{write_file, CERT_FILE, KEY_FILE};
use crate::gateway::mtls::GatewayTls;
use crate::gateway::GatewayError;
use crate::kms::api::GatewayReach;
use crate::kms::client::KmsClient;
use crate::relay::{RelayIdentitySwap, RelayLinks};
use crate::tls::{generate_csr, PrivateKeyPem};

/// How often the gateway tells KMS it is alive (KMS shows it online for 30 s after a beat).
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Renew the identity certificate when less than this is left of it.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often a running gateway checks whether its certificate is due.
const RENEW_CHECK: Duration = Duration::from_secs(12 * 3600);
/// When a renewal failed, the next try.
const RENEW_RETRY: Duration = Duration::from_secs(3600);

/// How CLIs reach this gateway now.
pub(super) struct Reach {
    direct: bool,
    links: Option<RelayLinks>,
}

impl Reach {
    pub(super) fn new(direct: bool, links: Option<RelayLinks>) -> Self {
        Self { direct, links }
    }

    fn now(&self) -> GatewayReach {
        match &self.links {
            Some(links) => links.reach(self.direct),
            None => GatewayReach::default(),
        }
    }
}

/// Beats every [`HEARTBEAT`], at once when a relay tunnel comes or goes, so KMS hands CLIs
/// the relays that hold the gateway now.
pub(super) async fn heartbeats(client: KmsClient, address: String, reach: Reach) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let mut last = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = poll.tick() => {
                if last.as_ref() == Some(&reach.now()) {
                    continue;
                }
            }
        }
        let now = reach.now();
        match client.gateway().heartbeat(&address, &now).await {
            Ok(()) => last = Some(now),
            Err(e) => tracing::warn!(error = %e, "heartbeat to KMS failed"),
        }
    }
}

/// Renews the identity certificate (a new key, make-before-break: the files are replaced only
/// once KMS signed) when it cannot authenticate the gateway to a relay (issued before gateways
/// dialled relays) or expires within [`RENEW_BEFORE`].
pub(super) async fn renew_if_due(
    client: &KmsClient,
    dir: &Path,
    advertise: &str,
    tls: &mut GatewayTls,
) -> Result<(), GatewayError> {
    if !renewal_due(&tls.cert_pem, SystemTime::now()) {
        return Ok(());
    }
    let (cert_pem, key) = renew(client, dir, advertise).await?;
    tls.cert_pem = cert_pem;
    tls.key = key;
    Ok(())
}

/// A new key and certificate from KMS, saved in the data dir once KMS signed.
async fn renew(
    client: &KmsClient,
    dir: &Path,
    advertise: &str,
) -> Result<(String, PrivateKeyPem), GatewayError> {
    let host = advertise.rsplit_once(':').map_or(advertise, |(h, _)| h);
    let (key, csr) = generate_csr(host).map_err(GatewayError::Csr)?;
    let renewed = client
        .gateway()
        .renew_certificate(&csr)
        .await
        .map_err(GatewayError::Renewal)?;
    write_file(&dir.join(KEY_FILE), key.expose_secret(), 0o600)?;
    write_file(&dir.join(CERT_FILE), &renewed.certificate, 0o644)?;
    tracing::info!("gateway certificate renewed");
    Ok((renewed.certificate, key))
}

/// While the gateway runs: checks twice a day whether its certificate is due, renews it and puts
/// it into service on its relay tunnels at once, make-before-break ([`RelayIdentitySwap`]); a
/// failed renewal is retried within the hour. (Its direct listener, if any, uses the renewed
/// certificate from the next start; the old one is valid for 30 days more.)
pub(super) async fn keep_renewed(
    client: KmsClient,
    dir: PathBuf,
    advertise: String,
    mut tls: GatewayTls,
    swap: RelayIdentitySwap,
) {
    let mut wait = RENEW_CHECK;
    loop {
        tokio::time::sleep(wait).await;
        wait = RENEW_CHECK;
        if !renewal_due(&tls.cert_pem, SystemTime::now()) {
            continue;
        }
        let renewed = renew(&client, &dir, &advertise)
            .await
            .and_then(|(cert, key)| {
                swap.replace(&tls.ca_pem, &cert, &key)
                    .map_err(GatewayError::TlsMaterial)?;
                Ok((cert, key))
            });
        match renewed {
            Ok((cert, key)) => {
                tls.cert_pem = cert;
                tls.key = key;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the gateway certificate; retrying");
                wait = RENEW_RETRY;
            }
        }
    }
}

/// Whether the certificate lacks client authentication or ends within [`RENEW_BEFORE`] of
/// `now`. An unreadable certificate is due (KMS issues a good one).
fn renewal_due(cert_pem: &str, now: SystemTime) -> bool {
    let Ok(certs) = crate::tls::parse_certs(cert_pem) else {
        return true;
    };
    let Some(Ok((_, cert))) = certs
        .first()
        .map(|der| x509_parser::parse_x509_certificate(der))
    else {
        return true;
    };
    let client_auth = matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth);
    let ends = u64::try_from(cert.validity().not_after.timestamp())
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    !client_auth || ends < now + RENEW_BEFORE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::CertificateAuthority;

    #[test]
    fn renewal_is_due_without_client_auth_or_near_the_end() {
        let ca = CertificateAuthority::generate("ca", Duration::from_secs(400 * 86400)).unwrap();
        let (_, csr) = generate_csr("gw").unwrap();
        let names = ["gw.example".to_owned()];
        let year = Duration::from_secs(365 * 86400);
        let fresh = ca.sign_gateway_csr(&csr, "gw", &names, year).unwrap();
        let now = SystemTime::now();
        assert!(!renewal_due(&fresh, now));
        assert!(renewal_due(&fresh, now + year - Duration::from_secs(86400)));
        // Issued before gateways dialled relays: server authentication only.
        let old = ca.issue_server_cert(&names, year).unwrap().cert_pem;
        assert!(renewal_due(&old, now));
        assert!(renewal_due("not a certificate", now));
    }
}
