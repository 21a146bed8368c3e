//! A KMS world for the benchmarks that need the control plane: one enrolled gateway, one
//! resource with one account.

use kms_pam::audit::evidence::signing::SigningKey;
use kms_pam::kms::api::{CreateAccount, CreateResource, EnrollGateway, ResourceKind};
use kms_pam::kms::client::KmsClient;
use kms_pam::tls::generate_csr;
use kms_pam::Secret;

/// Gateway `gw` (enrolled), resource `prod` with account `admin`; the gateway's client.
pub async fn seed_world(
    admin: &KmsClient,
    url: &str,
    audit_key: &SigningKey,
) -> anyhow::Result<KmsClient> {
    let created = admin.gateways().create("gw").await?;
    let (_key, csr) = generate_csr("gw")?;
    let enrolled = admin
        .gateways()
        .enroll(&EnrollGateway {
            name: "gw".into(),
            enrollment_token: created.enrollment_token,
            csr,
            address: "127.0.0.1:9".into(),
            audit_key: Some(audit_key.public_key()),
            sealing_key: None,
        })
        .await?;
    admin
        .resources()
        .create(&CreateResource {
            kind: ResourceKind::Kubernetes,
            name: "prod".into(),
            url: "https://10.0.0.1:6443".into(),
            gateway: "gw".into(),
            ssl_verify: true,
            ca_cert: None,
            recording: Default::default(),
        })
        .await?;
    admin
        .accounts()
        .create(
            "prod",
            &CreateAccount {
                name: "admin".into(),
                token: Secret::new("eyJhbGciOiJSUzI1NiJ9.YmVuY2g.sig"),
                description: None,
                max_duration_secs: None,
            },
        )
        .await?;
    Ok(KmsClient::new(url, Some(enrolled.gateway_token))?)
}
