//! A string secret that never shows itself.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string (a service-account token, an API token, a local bearer token).
///
/// `Debug` and `Display` print `[redacted]`, so a secret cannot leak through logs or error messages by
/// accident; the memory is zeroed on drop. Read it deliberately with [`Secret::expose`].
///
/// It is also a wire type: `Serialize` writes the real value as a JSON string and `Deserialize`
/// reads one, so the KMS API bodies that carry a token (an enrollment token, a new user's API
/// token, an account's service-account token) hold it as a `Secret` end to end. Serializing is
/// therefore a deliberate exposure, like [`Secret::expose`]: only into a request or answer body
/// meant to carry it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret value. Call sites of this method are where a secret is allowed to go.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares with `other` in time independent of where the first difference is.
    pub fn constant_time_eq(&self, other: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        if mine.len() != other.len() {
            return false;
        }
        mine.iter()
            .zip(other)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// A fresh random secret of `bytes` random bytes, URL-safe base64 encoded.
    pub fn random(bytes: usize) -> Result<Self, RandomUnavailable> {
        use base64::Engine as _;
        let mut buf = Zeroizing::new(vec![0u8; bytes]);
        fill_random(&mut buf)?;
        Ok(Self::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*buf),
        ))
    }
}

/// The operating system's random number generator failed; no secret or key can be made (a
/// predictable one must never be).
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomUnavailable;

/// Fills `buf` from the operating system's CSPRNG (through ring, the one crypto stack we use).
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), RandomUnavailable> {
    use rustls::crypto::ring::default_provider;
    default_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| RandomUnavailable)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The owned string moves into the zeroizing wrapper without a copy.
        String::deserialize(deserializer).map(Self::new)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("eyJhbGciOi.super-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "eyJhbGciOi.super-secret");
    }

    #[test]
    fn serde_carries_the_real_value_as_a_string() {
        let s = Secret::new("kmsu_abc");
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""kmsu_abc""#);
        let back: Secret = serde_json::from_str(r#""kmsu_abc""#).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<Secret>("42").is_err());
    }

    #[test]
    fn constant_time_eq_matches_only_equal_values() {
        let s = Secret::new("abc");
        assert!(s.constant_time_eq(b"abc"));
        assert!(!s.constant_time_eq(b"abd"));
        assert!(!s.constant_time_eq(b"ab"));
        assert!(!s.constant_time_eq(b""));
    }

    #[test]
    fn random_secrets_differ_and_are_long_enough() {
        let a = Secret::random(32).unwrap();
        let b = Secret::random(32).unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 43);
    }
}
