//! Secrets at rest (security invariant 2, docs/security.md): API tokens are kept only as SHA-256 hashes; service-account
//! tokens and the CA key are sealed with AES-256-GCM under a root key that lives in its own file
//! beside the database, never inside it.
//!
//! A sealed value is `version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)`.
//! Every value is sealed with associated data naming the row it belongs to, so a ciphertext
//! copied into another row does not open.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use super::error::StoreError;
use crate::secret::{fill_random, RandomUnavailable, Secret};

/// Length of the root key file: an AES-256 key.
pub(crate) const ROOT_KEY_LEN: usize = 32;
const SEALED_VERSION: u8 = 1;

/// The SHA-256 hash (lowercase hex) of an API token: the only form in which tokens are stored.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenHash(String);

impl TokenHash {
    /// Hashes a presented or freshly issued token.
    pub(crate) fn of(token: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        Self(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The hash as lowercase hex.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not the token, but there is no reason to spread it through logs either.
        write!(f, "TokenHash({}…)", &self.0[..self.0.len().min(8)])
    }
}

/// Makes a new API token `<prefix><43 chars of URL-safe base64>` (32 random bytes) and its hash.
pub(crate) fn issue_token(prefix: &str) -> Result<(Secret, TokenHash), StoreError> {
    let random = Secret::random(32).map_err(random_error)?;
    let token = Secret::new(format!("{prefix}{}", random.expose()));
    let hash = TokenHash::of(token.expose());
    Ok((token, hash))
}

fn random_error(e: RandomUnavailable) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The AES-256-GCM key that seals secrets at rest.
pub(crate) struct RootKey {
    key: LessSafeKey,
}

impl RootKey {
    /// Builds a key from raw bytes (tests, and the file loader).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| {
            StoreError::Corrupt(format!("root key must be exactly {ROOT_KEY_LEN} bytes"))
        })?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// A fresh random key (not written anywhere).
    #[cfg(test)]
    pub(crate) fn generate() -> Result<Self, StoreError> {
        let mut bytes = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        fill_random(&mut bytes[..]).map_err(random_error)?;
        Self::from_bytes(&bytes[..])
    }

    /// Loads the key file, or returns `None` when it does not exist. Refuses a file that group
    /// or others may read, or that is not exactly [`ROOT_KEY_LEN`] bytes.
    pub(crate) fn load(path: &Path) -> Result<Option<Self>, StoreError> {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path, &e)),
        };
        if let Some(mode) = crate::fsutil::key_file_shared_mode(&meta) {
            return Err(StoreError::Invalid(format!(
                "root key {} has mode {mode:o}; it must be readable by its owner only \
                 (chmod 600), or be root's and readable by its group only (a mounted secret)",
                path.display()
            )));
        }
        let bytes = Zeroizing::new(fs::read(path).map_err(|e| io_error(path, &e))?);
        if bytes.len() != ROOT_KEY_LEN {
            return Err(StoreError::Corrupt(format!(
                "root key {} must hold exactly {ROOT_KEY_LEN} bytes",
                path.display()
            )));
        }
        Self::from_bytes(&bytes).map(Some)
    }

    /// Creates a new key file (mode 0600, never overwriting an existing one) and returns the key.
    pub(crate) fn create(path: &Path) -> Result<Self, StoreError> {
        let mut bytes = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        fill_random(&mut bytes[..]).map_err(random_error)?;
        let mut file = crate::fsutil::create_new_private(path).map_err(|e| io_error(path, &e))?;
        file.write_all(&bytes[..])
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(path, &e))?;
        Self::from_bytes(&bytes[..])
    }

    /// Seals `plaintext` with a fresh random nonce, bound to `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce).map_err(random_error)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| StoreError::Corrupt("sealing failed".to_owned()))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(SEALED_VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens a value sealed by [`Self::seal`] with the same `aad`. Fails (`Corrupt`) when the
    /// value was altered, sealed under another key, or belongs to another row.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let corrupt = || StoreError::Corrupt("a sealed value does not decrypt".to_owned());
        let (version, rest) = sealed.split_first().ok_or_else(corrupt)?;
        if *version != SEALED_VERSION || rest.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| corrupt())?
            .len();
        in_out.truncate(plain_len);
        Ok(in_out)
    }

    /// Seals a secret string.
    pub(crate) fn seal_secret(&self, aad: &[u8], secret: &Secret) -> Result<Vec<u8>, StoreError> {
        self.seal(aad, secret.expose().as_bytes())
    }

    /// Opens a sealed secret string.
    pub(crate) fn open_secret(&self, aad: &[u8], sealed: &[u8]) -> Result<Secret, StoreError> {
        let bytes = self.open(aad, sealed)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| StoreError::Corrupt("a sealed secret is not UTF-8".to_owned()))?;
        Ok(Secret::new(text))
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey([redacted])")
    }
}

/// Associated data binding an account token to its row.
pub(crate) fn account_token_aad(resource_id: &str, account_id: &str) -> Vec<u8> {
    format!("kms-pam/account-token/v1\0{resource_id}\0{account_id}").into_bytes()
}

/// Associated data binding the CA private key to its setting.
pub(crate) const CA_KEY_AAD: &[u8] = b"kms-pam/ca-key/v1";

fn io_error(path: &Path, e: &io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        let hash = TokenHash::of("abc");
        assert_eq!(
            hash.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!format!("{hash:?}").contains("414140de"));
    }

    #[test]
    fn issued_tokens_carry_prefix_and_match_their_hash() {
        let (token, hash) = issue_token("kmsu_").unwrap();
        assert!(token.expose().starts_with("kmsu_"));
        assert_eq!(token.expose().len(), 5 + 43);
        assert_eq!(TokenHash::of(token.expose()), hash);
        assert_ne!(issue_token("kmsu_").unwrap().1, hash);
    }

    #[test]
    fn seal_round_trips_and_binds_aad() {
        let key = RootKey::generate().unwrap();
        let aad = account_token_aad("r1", "a1");
        let sealed = key.seal_secret(&aad, &Secret::new("sa-token")).unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"sa-token"));
        assert_eq!(key.open_secret(&aad, &sealed).unwrap().expose(), "sa-token");
        let moved = key.open_secret(&account_token_aad("r1", "a2"), &sealed);
        assert!(matches!(moved, Err(StoreError::Corrupt(_))));
        let other_key = RootKey::generate().unwrap();
        assert!(other_key.open(&aad, &sealed).is_err());
    }

    #[test]
    fn nonces_differ_and_tampering_is_detected() {
        let key = RootKey::generate().unwrap();
        let a = key.seal(b"x", b"same").unwrap();
        let b = key.seal(b"x", b"same").unwrap();
        assert_ne!(a, b);
        let mut tampered = a.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open(b"x", &tampered).is_err());
        assert!(key.open(b"x", &a[..5]).is_err());
        assert!(key.open(b"x", &[]).is_err());
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        assert!(RootKey::load(&path).unwrap().is_none());
        let created = RootKey::create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = created.seal(b"aad", b"value").unwrap();
        let loaded = RootKey::load(&path).unwrap().unwrap();
        assert_eq!(&loaded.open(b"aad", &sealed).unwrap()[..], b"value");
        assert!(RootKey::create(&path).is_err(), "never overwrites a key");
    }

    #[test]
    fn readable_or_short_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        RootKey::create(&path).unwrap();
        // Readable by others, or writable by the group: refused whoever owns it (a group-only
        // reader is allowed for root's files: fsutil's key-file tests).
        for mode in [0o644, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = RootKey::load(&path).unwrap_err();
            assert!(err.to_string().contains("chmod 600"), "{mode:o}: {err}");
        }
        fs::write(&path, b"short").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(RootKey::load(&path), Err(StoreError::Corrupt(_))));
    }
}
