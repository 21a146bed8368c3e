//! The service-account token as KMS hands it to a gateway: sealed to that gateway's own key with
//! HPKE (RFC 9180, base mode; DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305), the
//! session id and gateway name bound as associated data. Only the gateway holding the private
//! key opens it, for that session: a TLS-terminating proxy or a captured answer holds nothing
//! usable (docs/security.md).
//!
//! The gateway makes its [`SealingKey`] at enrollment (`DATA_DIR/sealing.key`, mode 0600; not
//! its audit signing key) and registers the [`SealingPublicKey`] with KMS; KMS calls
//! [`seal_token`]; the gateway [`SealingKey::open`]s the [`SealedToken`].

use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::Secret;

type Kem = X25519HkdfSha256;

/// The one HPKE suite of [`SealedToken::suite`].
pub const SEALING_SUITE: &str = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/ChaCha20-Poly1305";

/// HPKE `info`: what the key is used for, so a sealed token is never read as anything else.
const INFO: &[u8] = b"kms-pam gateway credential v1";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a token could not be sealed or opened, or a sealing key not loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    /// The key file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The key file is readable by group or others.
    #[error("{} is readable by others (mode {mode:o}); make it 0600", path.display())]
    SharedKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold a sealing key.
    #[error("{} is not a sealing key (the base64 of 32 bytes)", path.display())]
    InvalidKeyFile {
        /// The key file.
        path: PathBuf,
    },
    /// A public key is not the base64 of 32 bytes.
    #[error("a sealing public key is the base64 of 32 bytes")]
    InvalidPublicKey,
    /// A sealed token is of another suite than [`SEALING_SUITE`].
    #[error("the credential is sealed with suite {suite:?}, this gateway knows {SEALING_SUITE:?}")]
    UnknownSuite {
        /// The suite it names.
        suite: String,
    },
    /// Sealing failed.
    #[error("sealing the credential failed")]
    Seal,
    /// The sealed token does not open with this key for this session and gateway (another
    /// gateway's key, another session, or altered).
    #[error(
        "the credential does not open with this gateway's sealing key for this session (sealed \
         to another key or session, or altered)"
    )]
    Open,
}

/// A gateway's X25519 public sealing key. On the wire the base64 of its 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SealingPublicKey([u8; 32]);

impl SealingPublicKey {
    /// Reads the base64 of a 32-byte X25519 public key.
    pub fn from_base64(text: &str) -> Result<Self, SealingError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| SealingError::InvalidPublicKey)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SealingError::InvalidPublicKey)?;
        Ok(Self(bytes))
    }

    /// The base64 of its 32 bytes.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    fn hpke(&self) -> Result<<Kem as hpke::Kem>::PublicKey, SealingError> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.0)
            .map_err(|_| SealingError::InvalidPublicKey)
    }
}

impl fmt::Debug for SealingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingPublicKey({})", self.to_base64())
    }
}

impl Serialize for SealingPublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for SealingPublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// A service-account token sealed to one gateway's key for one session: the HPKE encapsulated
/// key and ciphertext, base64 (docs/api.md, the credential).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedToken {
    /// The HPKE suite ([`SEALING_SUITE`]).
    pub suite: String,
    /// The encapsulated key (`enc`), base64.
    pub enc: String,
    /// The sealed token with its tag, base64.
    pub ciphertext: String,
}

impl fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedToken")
            .field("suite", &self.suite)
            .field("ciphertext_bytes", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The associated data binding a sealed token to its session and gateway (length-prefixed, so
/// no two pairs make the same bytes).
fn aad(session_id: &str, gateway: &str) -> Vec<u8> {
    format!(
        "session {}:{session_id}\ngateway {}:{gateway}",
        session_id.len(),
        gateway.len()
    )
    .into_bytes()
}

/// Seals `token` to `recipient` (the gateway's public sealing key) for session `session_id` at
/// gateway `gateway` (its name).
pub fn seal_token(
    recipient: &SealingPublicKey,
    token: &Secret,
    session_id: &str,
    gateway: &str,
) -> Result<SealedToken, SealingError> {
    let public = recipient.hpke()?;
    let (enc, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &public,
        INFO,
        token.expose().as_bytes(),
        &aad(session_id, gateway),
    )
    .map_err(|_| SealingError::Seal)?;
    Ok(SealedToken {
        suite: SEALING_SUITE.to_owned(),
        enc: B64.encode(enc.to_bytes()),
        ciphertext: B64.encode(ciphertext),
    })
}

/// A gateway's private sealing key (X25519). Never leaves the gateway's data dir.
pub struct SealingKey {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: SealingPublicKey,
}

impl SealingKey {
    /// A new random key.
    pub fn generate() -> Self {
        let (private, public) = Kem::gen_keypair();
        Self::from_parts(private, &public)
    }

    /// A key made from a fixed seed, for tests that need the same key twice.
    #[cfg(test)]
    #[cfg_attr(not(feature = "server"), allow(dead_code))] // its tests are the server's
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_private_bytes(seed).expect("any 32 bytes are an X25519 key")
    }

    fn from_parts(
        private: <Kem as hpke::Kem>::PrivateKey,
        public: &<Kem as hpke::Kem>::PublicKey,
    ) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        Self {
            private,
            public: SealingPublicKey(bytes),
        }
    }

    fn from_private_bytes(bytes: &[u8]) -> Option<Self> {
        let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes).ok()?;
        let public = Kem::sk_to_pk(&private);
        Some(Self::from_parts(private, &public))
    }

    /// The key in `path` (base64 of the 32 private bytes, mode 0600), created there first if
    /// there is none; the flag says it was created. Refuses a file group or others may read.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SealingError> {
        let io_error = |source| SealingError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(meta) => {
                if let Some(mode) = crate::fsutil::key_file_shared_mode(&meta) {
                    return Err(SealingError::SharedKeyFile {
                        path: path.to_owned(),
                        mode,
                    });
                }
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_error)?);
                let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|_| {
                    SealingError::InvalidKeyFile {
                        path: path.to_owned(),
                    }
                })?);
                let key = Self::from_private_bytes(&bytes).ok_or_else(|| {
                    SealingError::InvalidKeyFile {
                        path: path.to_owned(),
                    }
                })?;
                Ok((key, false))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = Self::generate();
                let text = Zeroizing::new(B64.encode(key.private.to_bytes()));
                let mut file = crate::fsutil::create_new_private(path).map_err(io_error)?;
                file.write_all(text.as_bytes()).map_err(io_error)?;
                file.sync_all().map_err(io_error)?;
                Ok((key, true))
            }
            Err(e) => Err(io_error(e)),
        }
    }

    /// Its public half, which KMS seals to.
    pub fn public_key(&self) -> SealingPublicKey {
        self.public.clone()
    }

    /// Opens a token KMS sealed to this key for session `session_id` at gateway `gateway`.
    pub fn open(
        &self,
        sealed: &SealedToken,
        session_id: &str,
        gateway: &str,
    ) -> Result<Secret, SealingError> {
        if sealed.suite != SEALING_SUITE {
            return Err(SealingError::UnknownSuite {
                suite: sealed.suite.clone(),
            });
        }
        let enc = B64.decode(&sealed.enc).map_err(|_| SealingError::Open)?;
        let enc =
            <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).map_err(|_| SealingError::Open)?;
        let ciphertext = B64
            .decode(&sealed.ciphertext)
            .map_err(|_| SealingError::Open)?;
        let plain = Zeroizing::new(
            hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
                &OpModeR::Base,
                &self.private,
                &enc,
                INFO,
                &ciphertext,
                &aad(session_id, gateway),
            )
            .map_err(|_| SealingError::Open)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| SealingError::Open)?;
        Ok(Secret::new(text))
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.sealed-test-token";

    /// A captured credential answer holds no token, and opens only with the gateway's own key,
    /// for the session and gateway it was sealed for.
    #[test]
    fn a_sealed_token_opens_only_with_its_key_session_and_gateway() {
        let gateway = SealingKey::generate();
        let other = SealingKey::generate();
        let sealed = seal_token(&gateway.public_key(), &Secret::new(TOKEN), "s-1", "gw1").unwrap();
        let json = serde_json::to_string(&sealed).unwrap();
        assert!(!json.contains(TOKEN), "{json}");
        assert!(!json.contains("sealed-test-token"), "{json}");
        assert_eq!(gateway.open(&sealed, "s-1", "gw1").unwrap().expose(), TOKEN);
        for (key, session, name) in [
            (&other, "s-1", "gw1"),
            (&gateway, "s-2", "gw1"),
            (&gateway, "s-1", "gw2"),
        ] {
            let err = key.open(&sealed, session, name).unwrap_err();
            assert!(matches!(err, SealingError::Open), "{err:?}");
        }
        let mut altered = sealed.clone();
        altered.ciphertext = B64.encode(b"not what KMS sealed, quite long enough");
        assert!(matches!(
            gateway.open(&altered, "s-1", "gw1"),
            Err(SealingError::Open)
        ));
        altered = sealed.clone();
        altered.suite = "something else".into();
        assert!(matches!(
            gateway.open(&altered, "s-1", "gw1"),
            Err(SealingError::UnknownSuite { .. })
        ));
        assert!(!format!("{sealed:?}").contains(&sealed.ciphertext));
    }

    #[test]
    fn the_key_file_is_private_and_reloads_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealing.key");
        let (made, created) = SealingKey::load_or_create(&path).unwrap();
        assert!(created);
        let (loaded, created) = SealingKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(made.public_key(), loaded.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = SealingKey::load_or_create(&path).unwrap_err();
            assert!(err.to_string().contains("0600"), "{err}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&path, "garbage").unwrap();
        let err = SealingKey::load_or_create(&path).unwrap_err();
        assert!(
            matches!(err, SealingError::InvalidKeyFile { .. }),
            "{err:?}"
        );
        let public = made.public_key();
        assert_eq!(
            SealingPublicKey::from_base64(&public.to_base64()).unwrap(),
            public
        );
        assert!(SealingPublicKey::from_base64("AAAA").is_err());
    }
}
