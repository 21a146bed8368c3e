//! A private certificate authority for a KMS served over HTTPS in tests: its CA certificate and
//! server certificates for `127.0.0.1` and `localhost`, PEM, written where `kms-pam server
//! --tls-cert/--tls-key` and clients' `--kms-ca` read them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// A throwaway CA.
pub struct PrivateCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// Where [`PrivateCa::write_kms_files`] put the files.
#[derive(Debug, Clone)]
pub struct KmsTlsFiles {
    /// The CA certificate (clients' `--kms-ca`).
    pub ca: PathBuf,
    /// The server certificate (`--tls-cert`).
    pub cert: PathBuf,
    /// Its key (`--tls-key`).
    pub key: PathBuf,
}

impl PrivateCa {
    /// A fresh CA.
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "kms-pam test private CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `127.0.0.1` and `localhost` valid for a year, and its key (PEM).
    pub fn server_pair(&self) -> (String, String) {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.not_before = (SystemTime::now() - Duration::from_secs(3600)).into();
        params.not_after = (SystemTime::now() + Duration::from_secs(365 * 86_400)).into();
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA certificate and a fresh server pair into `dir` (`kms-ca.pem`, `kms.crt`,
    /// `kms.key`).
    pub fn write_kms_files(&self, dir: &Path) -> KmsTlsFiles {
        let (cert, key) = self.server_pair();
        let files = KmsTlsFiles {
            ca: dir.join("kms-ca.pem"),
            cert: dir.join("kms.crt"),
            key: dir.join("kms.key"),
        };
        std::fs::write(&files.ca, &self.pem).expect("CA file");
        std::fs::write(&files.cert, cert).expect("certificate file");
        std::fs::write(&files.key, key).expect("key file");
        files
    }
}

impl Default for PrivateCa {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PrivateCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateCa").finish_non_exhaustive()
    }
}
