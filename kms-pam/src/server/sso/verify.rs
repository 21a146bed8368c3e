//! An ID token checked before anything is believed: its signature by one of the provider's
//! published keys (asymmetric algorithms only), its issuer, its audience (and `azp` when there
//! are several), its expiry and not-before with a minute of leeway, and the sign-in's `nonce`.
//! The claims KMS then reads: subject, email, name, and the configured groups claim.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;

/// The algorithms a provider may sign with: no `HS*` (the client secret is not a signing key
/// here), never `none`.
const ALLOWED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// What must hold of a token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    /// The issuer, exactly.
    pub(crate) issuer: &'a str,
    /// KMS's client id at the provider.
    pub(crate) client_id: &'a str,
    /// The sign-in's nonce (none for refreshes and device grants).
    pub(crate) nonce: Option<&'a str>,
    /// Where the groups are (a claim name, or a dotted path such as `realm_access.roles`).
    pub(crate) groups_claim: &'a str,
}

/// What a verified token says of the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdClaims {
    /// `sub`.
    pub(crate) subject: String,
    /// `email`.
    pub(crate) email: Option<String>,
    /// Whether the provider verified the email (`email_verified`; absent counts as verified).
    pub(crate) email_verified: bool,
    /// `name`.
    pub(crate) name: Option<String>,
    /// `preferred_username`.
    pub(crate) preferred_username: Option<String>,
    /// The groups claim's strings.
    pub(crate) groups: Vec<String>,
}

/// Why a token was refused, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub(crate) String);

/// Whether the token's key is missing from `keys` (the caller fetches them again and retries).
pub(crate) fn names_unknown_key(token: &str, keys: &JwkSet) -> bool {
    match decode_header(token) {
        Ok(header) => match header.kid {
            Some(kid) => keys.find(&kid).is_none(),
            None => keys.keys.is_empty(),
        },
        Err(_) => false,
    }
}

/// Verifies `token` against `keys` and `expected`.
pub(crate) fn id_token(
    token: &str,
    keys: &JwkSet,
    expected: Expected<'_>,
) -> Result<IdClaims, Refused> {
    let refused = |why: &str| Refused(format!("the provider's ID token was refused: {why}"));
    let header = decode_header(token).map_err(|_| refused("it is not a signed JWT"))?;
    if !ALLOWED.contains(&header.alg) {
        return Err(refused(&format!(
            "it is signed with {:?}, which KMS does not accept from a provider",
            header.alg
        )));
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| refused("it names a signing key the provider does not publish"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| refused("the provider's key is unusable"))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&[expected.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|e| {
            refused(match e.kind() {
                ErrorKind::InvalidSignature => "its signature does not verify",
                ErrorKind::ExpiredSignature => "it has expired",
                ErrorKind::ImmatureSignature => "it is not valid yet",
                ErrorKind::InvalidIssuer => "it was issued by another issuer",
                ErrorKind::InvalidAudience => "it was issued to another client (audience)",
                ErrorKind::MissingRequiredClaim(_) => "it lacks a required claim",
                ErrorKind::InvalidAlgorithm => "its algorithm does not match the key",
                _ => "it is malformed",
            })
        })?
        .claims;
    // OIDC Core 3.1.3.7: with several audiences, `azp` must be this client.
    if let Some(Value::Array(audiences)) = claims.get("aud") {
        let azp = claims.get("azp").and_then(Value::as_str);
        if audiences.len() > 1 && azp != Some(expected.client_id) {
            return Err(refused("it was issued to another client (azp)"));
        }
    }
    if let Some(nonce) = expected.nonce {
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(refused("its nonce does not match this sign-in"));
        }
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let subject = text("sub")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refused("it has no subject"))?;
    Ok(IdClaims {
        subject,
        email: text("email"),
        email_verified: claims
            .get("email_verified")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        name: text("name"),
        preferred_username: text("preferred_username"),
        groups: groups(&claims, expected.groups_claim),
    })
}

/// The strings at `path` (a claim, or a dotted path into nested objects): an array of strings
/// or one string; anything else is no group.
fn groups(claims: &Map<String, Value>, path: &str) -> Vec<String> {
    let mut parts = path.split('.');
    let mut value = parts.next().and_then(|first| claims.get(first));
    for part in parts {
        value = value.and_then(|v| v.get(part));
    }
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
