//! Certificates the KMS CA signs after enrollment: a gateway's renewed identity (it renews
//! before expiry, make-before-break: the new certificate is used once it holds it, the old one
//! keeps working until then), and the serving certificate of a relay (docs/api.md, "Relays").
//! KMS keeps no relay state: a relay is whoever holds a key KMS certified for
//! `kms-pam://relay/<name>`, and only an organisation administrator obtains one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::Json;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::gateways::GATEWAY_CERT_VALIDITY;
use crate::kms::api::{
    IssueRelayCertificate, RelayCertificate, RenewGatewayCertificate, RenewedGatewayCertificate,
};
use crate::server::edge::auth::{AdminUser, GatewayCaller};
use crate::server::edge::error::ApiError;
use crate::server::edge::extract::ApiJson;
use crate::server::edge::state::AppState;
use crate::server::edge::validate;

/// Lifetime of a relay's certificate.
pub(crate) const RELAY_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Most DNS names and IP addresses one relay certificate carries.
pub(crate) const MAX_RELAY_NAMES: usize = 16;

/// `POST /v1/gateway/certificate`: a new identity certificate for the calling gateway's key (the
/// CSR's), for the host of its address as KMS holds it (what enrollment certified, moved by
/// heartbeats) and as long as an enrollment's. A revoked gateway's token is refused before this.
pub(crate) async fn renew_gateway(
    State(state): State<AppState>,
    GatewayCaller(gateway): GatewayCaller,
    ApiJson(body): ApiJson<RenewGatewayCertificate>,
) -> Result<Json<RenewedGatewayCertificate>, ApiError> {
    let Some(address) = gateway.address.as_deref() else {
        return Err(ApiError::conflict(format!(
            "gateway {} has no address on record to certify; enroll it again",
            gateway.name
        )));
    };
    let host = validate::address(address)?;
    let certificate = state.ca.sign_gateway_csr(
        &body.csr,
        &gateway.name,
        std::slice::from_ref(&host),
        GATEWAY_CERT_VALIDITY,
    )?;
    let not_after = not_after(&certificate)?;
    tracing::info!(gateway = %gateway.name, host = %host,
        not_after = %crate::time::format_rfc3339(not_after), "gateway certificate renewed");
    Ok(Json(RenewedGatewayCertificate {
        certificate,
        ca_certificate: state.ca.cert_pem().to_owned(),
    }))
}

/// `POST /v1/relays/certificate` (organisation administrators): a relay's serving certificate
/// for the names CLIs and gateways dial it at, naming it `kms-pam://relay/<name>`, valid for
/// [`RELAY_CERT_VALIDITY`].
pub(crate) async fn issue_relay(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(body): ApiJson<IssueRelayCertificate>,
) -> Result<Json<RelayCertificate>, ApiError> {
    validate::name("relay", &body.name)?;
    if body.names.is_empty() {
        return Err(ApiError::invalid(
            "names is empty: give the DNS names or IP addresses CLIs and gateways dial the relay \
             at",
        ));
    }
    if body.names.len() > MAX_RELAY_NAMES {
        return Err(ApiError::invalid(format!(
            "a relay certificate carries at most {MAX_RELAY_NAMES} names; {} given",
            body.names.len()
        )));
    }
    for name in &body.names {
        validate::server_name("relay host name", name)?;
    }
    let certificate =
        state
            .ca
            .sign_relay_csr(&body.csr, &body.name, &body.names, RELAY_CERT_VALIDITY)?;
    let not_after = not_after(&certificate)?;
    tracing::info!(by = %admin.name, relay = %body.name, names = ?body.names,
        not_after = %crate::time::format_rfc3339(not_after), "relay certificate issued");
    Ok(Json(RelayCertificate {
        certificate,
        ca_certificate: state.ca.cert_pem().to_owned(),
        not_after,
    }))
}

/// The expiry written into a certificate the CA just signed.
fn not_after(pem: &str) -> Result<SystemTime, ApiError> {
    let broken = |what: &str| ApiError::internal(&format!("the signed certificate {what}"));
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| broken("is not PEM"))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|_| broken("does not parse"))?;
    let secs = u64::try_from(cert.validity().not_after.timestamp())
        .map_err(|_| broken("expires before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}
