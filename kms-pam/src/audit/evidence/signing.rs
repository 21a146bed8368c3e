//! Ed25519 keys that make a session's record hold against whoever can write KMS's database.
//!
//! Two parties sign: the **gateway** that saw the events signs each one (over its chain link,
//! [`event_message`]) with a key generated in its data dir that never leaves it; **KMS**
//! countersigns the session's head ([`head_message`]: metadata, last `seq` and `hash`) with a key
//! kept in a file beside its root key, never in the database. A [`PublicKey`] is shown as a
//! fingerprint, `SHA256:` and the unpadded base64 of the SHA-256 of its 32 bytes (as OpenSSH
//! shows keys), so a person can compare it with what the gateway or KMS printed.
//!
//! Key files hold the PKCS#8 (v2) document ring writes, mode 0600; a file others may read is
//! refused.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// What the gateway signs for an event: this prefix, then the event's `hash` (hex).
const EVENT_DOMAIN: &[u8] = b"kms-pam event v1\0";
/// What KMS signs for a session's head: this prefix, then the head's canonical JSON.
const HEAD_DOMAIN: &[u8] = b"kms-pam head v1\0";
/// What KMS signs to endorse a gateway's audit key: this prefix, the gateway's id, a NUL, then
/// the key's base64.
const KEY_DOMAIN: &[u8] = b"kms-pam gateway key v1\0";
/// Endorsements made by a running KMS (enrollment, a key registered once): told apart from
/// those the upgrade made of keys stored before endorsements (`v1`), which alone vouch for
/// the sessions created before KMS bound each session to its gateway's key.
#[cfg(feature = "server")]
const KEY_DOMAIN_V2: &[u8] = b"kms-pam gateway key v2\0";
/// KMS's binding of a session to the gateway key its events must be signed with.
#[cfg(feature = "server")]
const SESSION_KEY_DOMAIN: &[u8] = b"kms-pam session key v1\0";

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// The key file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The key is not an Ed25519 PKCS#8 document (ring's reason; it is not a
    /// `std::error::Error`, so it is no `source`).
    #[error("not an Ed25519 PKCS#8 key: {0}")]
    NotPkcs8(ring::error::KeyRejected),
    /// The key file is not an Ed25519 PKCS#8 document.
    #[error("signing key {}: not an Ed25519 PKCS#8 key: {reason}", path.display())]
    InvalidKeyFile {
        /// The file.
        path: PathBuf,
        /// ring's reason.
        reason: ring::error::KeyRejected,
    },
    /// The key file may be read by its group or others.
    #[error(
        "signing key {} has mode {mode:o}; it must be readable by its owner only (chmod 600)",
        path.display()
    )]
    SharedKeyFile {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A public key's text is not base64.
    #[error("public key is not base64: {0}")]
    PublicKeyNotBase64(#[source] base64::DecodeError),
    /// A public key's text does not decode to 32 bytes.
    #[error("an Ed25519 public key is 32 bytes")]
    PublicKeyLength,
    /// No randomness to make a key with.
    #[error("the operating system's random number generator failed")]
    Random,
}

/// An Ed25519 signing key. `Debug` shows its public fingerprint only.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A fresh random key (not written anywhere).
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), SigningError> {
        let rng = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| SigningError::Random)?;
        let pkcs8 = Zeroizing::new(document.as_ref().to_vec());
        Ok((Self::from_pkcs8(&pkcs8)?, pkcs8))
    }

    /// A key made from a fixed seed, for tests that need the same key twice.
    #[cfg(test)]
    #[cfg_attr(not(feature = "server"), allow(dead_code))] // its tests are the server's
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("any 32 bytes are a seed");
        Self { pair }
    }

    /// A key from its PKCS#8 document.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SigningError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(SigningError::NotPkcs8)?;
        Ok(Self { pair })
    }

    /// Loads the key file, or `None` when there is none. Refuses a file group or others may
    /// read.
    pub fn load(path: &Path) -> Result<Option<Self>, SigningError> {
        let io_error = |source| SigningError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(e)),
        };
        check_private(path, &meta)?;
        let der = Zeroizing::new(fs::read(path).map_err(io_error)?);
        Self::from_pkcs8(&der).map(Some).map_err(|e| match e {
            SigningError::NotPkcs8(reason) => SigningError::InvalidKeyFile {
                path: path.to_owned(),
                reason,
            },
            other => other,
        })
    }

    /// Makes a new key and writes it to `path` (mode 0600, never over an existing file).
    pub fn create(path: &Path) -> Result<Self, SigningError> {
        let (key, pkcs8) = Self::generate()?;
        write_new_private(path, &pkcs8).map_err(|source| SigningError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(key)
    }

    /// The key in `path`, created there first if there is none. The flag says it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SigningError> {
        match Self::load(path)? {
            Some(key) => Ok((key, false)),
            None => Self::create(path).map(|key| (key, true)),
        }
    }

    /// Its public half.
    pub fn public_key(&self) -> PublicKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(bytes)
    }

    /// The signature of `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.pair.sign(message).as_ref())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_key().fingerprint())
            .finish()
    }
}

/// An Ed25519 public key. On the wire and in text it is the base64 of its 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Reads the base64 of a raw 32-byte Ed25519 public key.
    pub fn from_base64(text: &str) -> Result<Self, SigningError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(SigningError::PublicKeyNotBase64)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SigningError::PublicKeyLength)?;
        Ok(Self(bytes))
    }

    /// The base64 of its 32 bytes.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// `SHA256:` and the unpadded base64 of the SHA-256 of its bytes.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.0);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref())
        )
    }

    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, &signature)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// What the gateway signs for an event whose chain `hash` is `hash`.
pub fn event_message(hash: &str) -> Vec<u8> {
    [EVENT_DOMAIN, hash.as_bytes()].concat()
}

/// What KMS signs for a head whose canonical JSON is `canonical`.
pub fn head_message(canonical: &[u8]) -> Vec<u8> {
    [HEAD_DOMAIN, canonical].concat()
}

/// What KMS signs to endorse `key` as the audit key of the gateway with id `gateway_id`: the
/// endorsement is what makes a key in KMS's database trusted, since whoever writes the
/// database could put any key there.
pub fn key_endorsement_message(gateway_id: &str, key: &PublicKey) -> Vec<u8> {
    [
        KEY_DOMAIN,
        gateway_id.as_bytes(),
        b"\0",
        key.to_base64().as_bytes(),
    ]
    .concat()
}

/// What a running KMS signs to endorse `key` as the audit key of the gateway `gateway_id`, at
/// enrollment or when a gateway registers its first key (`v2`; [`key_endorsement_message`] is
/// the upgrade's).
#[cfg(feature = "server")]
pub(crate) fn key_endorsement_message_v2(gateway_id: &str, key: &PublicKey) -> Vec<u8> {
    [
        KEY_DOMAIN_V2,
        gateway_id.as_bytes(),
        b"\0",
        key.to_base64().as_bytes(),
    ]
    .concat()
}

/// What KMS signs when it creates session `session_id` on a gateway whose endorsed key is
/// `key`: the session's events must be signed with that key, whatever the database says later.
#[cfg(feature = "server")]
pub(crate) fn session_key_message(session_id: &str, key: &PublicKey) -> Vec<u8> {
    [
        SESSION_KEY_DOMAIN,
        session_id.as_bytes(),
        b"\0",
        key.to_base64().as_bytes(),
    ]
    .concat()
}

fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), SigningError> {
    match crate::fsutil::key_file_shared_mode(meta) {
        Some(mode) => Err(SigningError::SharedKeyFile {
            path: path.to_owned(),
            mode,
        }),
        None => Ok(()),
    }
}

fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = crate::fsutil::create_new_private(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_key_and_message() {
        let (key, _) = SigningKey::generate().unwrap();
        let (other, _) = SigningKey::generate().unwrap();
        let signature = key.sign(b"hello");
        assert!(key.public_key().verify(b"hello", &signature));
        assert!(!key.public_key().verify(b"hello!", &signature));
        assert!(!other.public_key().verify(b"hello", &signature));
        assert!(!key.public_key().verify(b"hello", "not base64"));
    }

    #[test]
    fn public_keys_round_trip_and_show_a_fingerprint() {
        let (key, _) = SigningKey::generate().unwrap();
        let public = key.public_key();
        assert_eq!(PublicKey::from_base64(&public.to_base64()).unwrap(), public);
        let json = serde_json::to_string(&public).unwrap();
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), public);
        assert!(public.fingerprint().starts_with("SHA256:"));
        assert_eq!(public.fingerprint().len(), "SHA256:".len() + 43);
        assert!(format!("{key:?}").contains(&public.fingerprint()));
        assert!(PublicKey::from_base64("AAAA").is_err());
    }

    #[test]
    fn key_files_are_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let (created, fresh) = SigningKey::load_or_create(&path).unwrap();
        assert!(fresh);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (loaded, fresh) = SigningKey::load_or_create(&path).unwrap();
        assert!(!fresh);
        assert_eq!(loaded.public_key(), created.public_key());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
