//! API keys: [`ApiKeyAuthenticator`].

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use arc_swap::ArcSwap;
use http::HeaderName;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthnError, credentials};
use crate::{
    AuthInfo, AuthMethod, BoxFuture, Clock, CredentialRef, Identity, Principal, PrincipalKind,
    Timestamp, authn::Authenticator, http::RequestFacts,
};

/// The issuer recorded on principals authenticated by API key.
pub const API_KEY_ISSUER: &str = "api-key";

/// One configured API key: its owner and the hash of its secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeyRecord {
    /// The public key id (the middle part of the key).
    pub id: String,
    /// Lowercase hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// The owner's principal id.
    pub owner: String,
    /// The owner's kind. Defaults to `service`.
    #[serde(default = "default_kind")]
    pub kind: PrincipalKind,
    /// The owner's tenant. Defaults to none.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Roles granted. Defaults to none.
    #[serde(default)]
    pub roles: BTreeSet<String>,
    /// Scopes granted. Defaults to none.
    #[serde(default)]
    pub scopes: BTreeSet<String>,
    /// When the key stops working (RFC 3339). Defaults to never.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// A revoked key is refused. Defaults to `false`.
    #[serde(default)]
    pub revoked: bool,
}

fn default_kind() -> PrincipalKind {
    PrincipalKind::Service
}

impl ApiKeyRecord {
    /// A record for key `id` owned by `owner`, storing the hash of `secret`.
    pub fn new(id: impl Into<String>, owner: impl Into<String>, secret: &str) -> Self {
        ApiKeyRecord {
            id: id.into(),
            secret_sha256: Self::hash_secret(secret),
            owner: owner.into(),
            kind: PrincipalKind::Service,
            tenant: None,
            roles: BTreeSet::new(),
            scopes: BTreeSet::new(),
            expires_at: None,
            revoked: false,
        }
    }

    /// Generates a new key for `owner`: 32 random bytes from the operating system (via
    /// `aws-lc-rs`), base64url-encoded as the secret. Returns the full key
    /// (`<prefix>_<id>_<secret>`, to hand to the client once and never store) and the record to
    /// store (which holds only the hash).
    ///
    /// # Errors
    ///
    /// [`ApiKeyConfigError::Prefix`] or [`ApiKeyConfigError::Id`] for a malformed prefix or id.
    pub fn generate(
        prefix: &str,
        id: &str,
        owner: impl Into<String>,
    ) -> Result<(String, ApiKeyRecord), ApiKeyConfigError> {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        if !valid_prefix(prefix) {
            return Err(ApiKeyConfigError::Prefix);
        }
        if !valid_id(id) {
            return Err(ApiKeyConfigError::Id(id.to_owned()));
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| ApiKeyConfigError::Random)?;
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        let record = ApiKeyRecord::new(id, owner, &secret);
        Ok((format!("{prefix}_{id}_{secret}"), record))
    }

    /// Lowercase hex SHA-256 of a secret, as stored in [`secret_sha256`](Self::secret_sha256).
    pub fn hash_secret(secret: &str) -> String {
        crate::identity::hex(&Sha256::digest(secret.as_bytes()))
    }

    /// Adds roles.
    #[must_use]
    pub fn with_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// Adds scopes.
    #[must_use]
    pub fn with_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn with_expiry(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("secret_sha256", &"[redacted]")
            .field("owner", &self.owner)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// API key configuration, as loaded from a service's configuration file.
///
/// ```
/// let config: aaa_core::authn::ApiKeyConfig = serde_json::from_str(r#"{
///     "prefix": "aaa",
///     "keys": [{
///         "id": "k1",
///         "secret_sha256": "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b",
///         "owner": "billing-job",
///         "roles": ["billing"],
///         "expires_at": "2030-01-01T00:00:00Z"
///     }]
/// }"#)?;
/// assert_eq!(config.header, "x-api-key");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeyConfig {
    /// The prefix every key starts with (letters and digits).
    pub prefix: String,
    /// The header carrying the key; `authorization` means `Authorization: ApiKey <key>`.
    /// Defaults to `x-api-key`.
    #[serde(default = "default_header")]
    pub header: String,
    /// The keys.
    #[serde(default)]
    pub keys: Vec<ApiKeyRecord>,
}

fn default_header() -> String {
    "x-api-key".to_owned()
}

impl ApiKeyConfig {
    /// A configuration for keys starting with `prefix`, read from `x-api-key`.
    pub fn new(prefix: impl Into<String>, keys: impl IntoIterator<Item = ApiKeyRecord>) -> Self {
        ApiKeyConfig {
            prefix: prefix.into(),
            header: default_header(),
            keys: keys.into_iter().collect(),
        }
    }
}

/// The API key configuration is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyConfigError {
    /// The prefix is empty or not letters and digits.
    #[error("the api key prefix must be letters and digits")]
    Prefix,
    /// The header name is not a valid header name.
    #[error("`{0}` is not a header name")]
    Header(String),
    /// A key id is malformed or appears twice.
    #[error("api key id `{0}` is malformed or appears twice")]
    Id(String),
    /// The operating system's random generator failed.
    #[error("no random bytes are available to generate a key")]
    Random,
    /// A stored hash is not 64 lowercase hex digits.
    #[error("the hash of api key `{0}` is not 64 lowercase hex digits")]
    Hash(String),
}

struct Stored {
    record: ApiKeyRecord,
    hash: [u8; 32],
}

/// Authenticates API keys.
///
/// # Format and transport
///
/// A key reads `<prefix>_<id>_<secret>`: the configured prefix (letters and digits, e.g. `aaa` or
/// `sk`), a public key id (letters, digits and `-`, at most 64), and a secret (letters, digits,
/// `-` and `_`, 16 to 256 characters; generate at least 32 random bytes, base64url-encoded).
///
/// It is sent in the header named by [`ApiKeyConfig::header`] (default `x-api-key`), or, when that
/// is `authorization`, as `Authorization: ApiKey <key>` (scheme case-insensitive, one space). Two
/// such headers are refused with [`AuthnError::MultipleCredentials`].
///
/// # Storage
///
/// Only the SHA-256 of the secret is configured ([`ApiKeyRecord::secret_sha256`], lowercase hex;
/// [`ApiKeyRecord::hash_secret`] computes it). A plain fast hash is enough here, unlike for
/// passwords: the secret is machine-generated with at least 128 bits of entropy, so no guessing
/// attack on a leaked hash can succeed, and a slow hash would only cost time on every request.
/// The presented secret's hash is compared with the stored one in constant time
/// ([`subtle::ConstantTimeEq`]); an unknown id is compared against a dummy hash so the timing does
/// not tell ids apart.
///
/// A key never appears in `Debug`, errors, logs or audit events: the principal carries only
/// [`CredentialRef::KeyId`] (the public id).
pub struct ApiKeyAuthenticator {
    prefix: String,
    header: HeaderName,
    scheme_in_authorization: bool,
    keys: ArcSwap<HashMap<String, Arc<Stored>>>,
    /// The hashes of the revoked secrets. Its lock also makes each change of `keys` whole:
    /// two revocations at once both count, and a reload keeps revoked secrets revoked.
    revoked: Mutex<HashSet<[u8; 32]>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuthenticator")
            .field("prefix", &self.prefix)
            .field("header", &self.header)
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn valid_secret(secret: &str) -> bool {
    (16..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

fn load(keys: Vec<ApiKeyRecord>) -> Result<HashMap<String, Arc<Stored>>, ApiKeyConfigError> {
    let mut map = HashMap::new();
    for record in keys {
        if !valid_id(&record.id) || map.contains_key(&record.id) {
            return Err(ApiKeyConfigError::Id(record.id));
        }
        let Some(hash) = parse_hash(&record.secret_sha256) else {
            return Err(ApiKeyConfigError::Hash(record.id));
        };
        map.insert(record.id.clone(), Arc::new(Stored { record, hash }));
    }
    Ok(map)
}

/// `keys`, with every key whose secret is in `revoked` marked revoked.
fn with_revoked(
    keys: &HashMap<String, Arc<Stored>>,
    revoked: &HashSet<[u8; 32]>,
) -> HashMap<String, Arc<Stored>> {
    keys.iter()
        .map(|(id, stored)| {
            let stored = if revoked.contains(&stored.hash) && !stored.record.revoked {
                let mut record = stored.record.clone();
                record.revoked = true;
                Arc::new(Stored {
                    record,
                    hash: stored.hash,
                })
            } else {
                Arc::clone(stored)
            };
            (id.clone(), stored)
        })
        .collect()
}

impl ApiKeyAuthenticator {
    /// An authenticator for the configured keys.
    ///
    /// # Errors
    ///
    /// [`ApiKeyConfigError`] for a bad prefix or header name, a malformed or repeated id, or a
    /// hash that is not 64 lowercase hex digits.
    pub fn new(config: ApiKeyConfig, clock: Arc<dyn Clock>) -> Result<Self, ApiKeyConfigError> {
        if !valid_prefix(&config.prefix) {
            return Err(ApiKeyConfigError::Prefix);
        }
        let header = HeaderName::from_bytes(config.header.as_bytes())
            .map_err(|_| ApiKeyConfigError::Header(config.header.clone()))?;
        let scheme_in_authorization = header == http::header::AUTHORIZATION;
        Ok(ApiKeyAuthenticator {
            prefix: config.prefix,
            header,
            scheme_in_authorization,
            keys: ArcSwap::from_pointee(load(config.keys)?),
            revoked: Mutex::new(HashSet::new()),
            clock,
        })
    }

    /// Revokes key `id` at once, for every request from now on. Returns whether it existed.
    ///
    /// The revoked secret stays revoked, under any id, when the keys are replaced
    /// ([`replace_keys`]), even if the new configuration still lists it; a new secret under the
    /// same id is accepted.
    ///
    /// [`replace_keys`]: Self::replace_keys
    pub fn revoke(&self, id: &str) -> bool {
        let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.keys.load_full();
        let Some(stored) = current.get(id) else {
            return false;
        };
        revoked.insert(stored.hash);
        self.keys.store(Arc::new(with_revoked(&current, &revoked)));
        true
    }

    /// Replaces the keys (a configuration reload). Secrets revoked with [`revoke`](Self::revoke)
    /// stay revoked.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); the current keys are kept.
    pub fn replace_keys(&self, keys: Vec<ApiKeyRecord>) -> Result<(), ApiKeyConfigError> {
        let revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        let keys = load(keys)?;
        self.keys.store(Arc::new(with_revoked(&keys, &revoked)));
        Ok(())
    }

    /// The presented key, if any.
    fn presented<'a>(&self, facts: &'a RequestFacts) -> Result<Option<&'a str>, AuthnError> {
        if self.scheme_in_authorization {
            let Some(value) = credentials::single_authorization(facts)? else {
                return Ok(None);
            };
            let Some((scheme, rest)) = credentials::split_scheme(value) else {
                return Err(AuthnError::Malformed(
                    "the authorization header is not visible ascii",
                ));
            };
            if !scheme.eq_ignore_ascii_case("apikey") {
                return Ok(None);
            }
            return match rest {
                Some(key) if !key.is_empty() && !key.contains(' ') => Ok(Some(key)),
                _ => Err(AuthnError::Malformed("the api key has invalid syntax")),
            };
        }
        let mut all = facts.headers().get_all(&self.header).iter();
        let Some(value) = all.next() else {
            return Ok(None);
        };
        if all.next().is_some() {
            return Err(AuthnError::MultipleCredentials);
        }
        value
            .to_str()
            .map(Some)
            .map_err(|_| AuthnError::Malformed("the api key is not visible ascii"))
    }

    /// Checks a key and returns its owner.
    ///
    /// # Errors
    ///
    /// [`AuthnError::Malformed`] when the key does not have the `<prefix>_<id>_<secret>` form,
    /// [`AuthnError::Invalid`] when it is unknown, wrong, expired or revoked.
    pub fn verify(&self, key: &str) -> Result<Principal, AuthnError> {
        let mut parts = key.splitn(3, '_');
        let (Some(prefix), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthnError::Malformed("the api key is not prefix_id_secret"));
        };
        if !valid_id(id) || !valid_secret(secret) {
            return Err(AuthnError::Malformed("the api key is not prefix_id_secret"));
        }
        if prefix != self.prefix {
            return Err(AuthnError::Invalid("unknown api key"));
        }
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let keys = self.keys.load();
        let stored = keys.get(id);
        let expected = stored.map_or([0u8; 32], |s| s.hash);
        let equal: bool = presented.ct_eq(&expected).into();
        let Some(stored) = stored.filter(|_| equal) else {
            return Err(AuthnError::Invalid("unknown api key"));
        };
        let record = &stored.record;
        if record.revoked {
            return Err(AuthnError::Invalid("the api key is revoked"));
        }
        let now = self.clock.now();
        if record.expires_at.is_some_and(|at| now >= at) {
            return Err(AuthnError::Invalid("the api key has expired"));
        }
        let mut auth = AuthInfo::new(
            AuthMethod::ApiKey,
            now,
            CredentialRef::KeyId(record.id.clone()),
        );
        auth.expires_at = record.expires_at;
        let mut principal = Principal::new(record.owner.clone(), record.kind, API_KEY_ISSUER)
            .with_roles(record.roles.iter().cloned())
            .with_scopes(record.scopes.iter().cloned())
            .with_auth(auth);
        principal.tenant = record.tenant.clone();
        Ok(principal)
    }
}

impl Authenticator for ApiKeyAuthenticator {
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        let result = match self.presented(facts) {
            Ok(None) => return Box::pin(crate::ReadyWith(|| Ok(Identity::Anonymous))),
            Ok(Some(key)) => self.verify(key).map(Identity::from),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::debug!(target: "aaa::authn::api_key", reason = e.reason_code(), error = %e, "api key refused");
        }
        Box::pin(std::future::ready(result))
    }

    /// The configured header, unless it is `Authorization`.
    fn credential_headers(&self) -> &[HeaderName] {
        if self.scheme_in_authorization {
            &[]
        } else {
            std::slice::from_ref(&self.header)
        }
    }

    /// `ApiKey` when the key is read from `Authorization`.
    fn challenge_scheme(&self) -> Option<&str> {
        self.scheme_in_authorization.then_some("ApiKey")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FixedClock;
    use http::{HeaderMap, HeaderValue, Method};

    const SECRET: &str = "Zm9vYmFyYmF6cXV4cXV1eA-_xyz";

    fn auth(header: &str) -> (ApiKeyAuthenticator, FixedClock) {
        let clock = FixedClock::new(Timestamp::from_unix_seconds(1_800_000_000));
        let mut config = ApiKeyConfig::new(
            "aaa",
            [
                ApiKeyRecord::new("k1", "billing-job", SECRET)
                    .with_roles(["billing"])
                    .with_scopes(["invoices:write"]),
                ApiKeyRecord::new("k2", "old-job", SECRET)
                    .with_expiry(Timestamp::from_unix_seconds(1_800_000_100)),
            ],
        );
        config.header = header.to_owned();
        (
            ApiKeyAuthenticator::new(config, Arc::new(clock.clone())).unwrap(),
            clock,
        )
    }

    #[test]
    fn names_its_header_unless_it_is_authorization() {
        assert_eq!(auth("x-client").0.credential_headers(), ["x-client"]);
        assert_eq!(auth("x-api-key").0.credential_headers(), ["x-api-key"]);
        assert!(auth("authorization").0.credential_headers().is_empty());
    }

    fn facts(name: &str, values: &[&str]) -> RequestFacts {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        RequestFacts::new(Method::GET, "/").with_headers(h)
    }

    #[test]
    fn valid_key_authenticates_its_owner() {
        let (a, _) = auth("x-api-key");
        let p = a.verify(&format!("aaa_k1_{SECRET}")).unwrap();
        assert_eq!(p.id, "billing-job");
        assert_eq!(p.kind, PrincipalKind::Service);
        assert!(p.roles.contains("billing"));
        assert!(p.has_scope("invoices:write"));
        assert_eq!(p.auth.credential, CredentialRef::KeyId("k1".into()));
        assert!(!format!("{p:?}").contains(SECRET));
    }

    #[test]
    fn wrong_unknown_expired_revoked_are_refused() {
        let (a, clock) = auth("x-api-key");
        let wrong = format!("aaa_k1_{}", SECRET.replace('Z', "Y"));
        assert_eq!(
            a.verify(&wrong),
            Err(AuthnError::Invalid("unknown api key"))
        );
        assert!(a.verify(&format!("aaa_k9_{SECRET}")).is_err());
        assert!(a.verify(&format!("zzz_k1_{SECRET}")).is_err());
        assert!(matches!(a.verify("aaa_k1"), Err(AuthnError::Malformed(_))));
        assert!(matches!(
            a.verify("aaa_k1_short"),
            Err(AuthnError::Malformed(_))
        ));
        assert!(a.verify(&format!("aaa_k2_{SECRET}")).is_ok());
        clock.advance_seconds(100);
        assert_eq!(
            a.verify(&format!("aaa_k2_{SECRET}")),
            Err(AuthnError::Invalid("the api key has expired"))
        );
        assert!(a.revoke("k1"));
        assert_eq!(
            a.verify(&format!("aaa_k1_{SECRET}")),
            Err(AuthnError::Invalid("the api key is revoked"))
        );
    }

    #[tokio::test]
    async fn header_transport() {
        let (a, _) = auth("x-api-key");
        let key = format!("aaa_k1_{SECRET}");
        let id = a.authenticate(&facts("x-api-key", &[&key])).await.unwrap();
        assert!(id.is_authenticated());
        assert_eq!(
            a.authenticate(&facts("x-api-key", &[&key, &key])).await,
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(
            a.authenticate(&facts("x-other", &[&key])).await,
            Ok(Identity::Anonymous)
        );
        let err = a
            .authenticate(&facts(
                "x-api-key",
                &[&format!("aaa_k1_{}", "x".repeat(20))],
            ))
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("xxxx"));
    }

    #[tokio::test]
    async fn authorization_scheme_transport() {
        let (a, _) = auth("authorization");
        let key = format!("aaa_k1_{SECRET}");
        let ok = facts("authorization", &[&format!("apikey {key}")]);
        assert!(a.authenticate(&ok).await.unwrap().is_authenticated());
        let bearer = facts("authorization", &["Bearer abc"]);
        assert_eq!(a.authenticate(&bearer).await, Ok(Identity::Anonymous));
        let bad = facts("authorization", &[&format!("ApiKey  {key}")]);
        assert!(matches!(
            a.authenticate(&bad).await,
            Err(AuthnError::Malformed(_))
        ));
    }

    #[test]
    fn generated_keys_work_and_differ() {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(Timestamp::UNIX_EPOCH));
        let (key1, rec1) = ApiKeyRecord::generate("aaa", "k1", "job").unwrap();
        let (key2, rec2) = ApiKeyRecord::generate("aaa", "k2", "job").unwrap();
        let secret = |k: &str| k.splitn(3, '_').nth(2).unwrap().to_owned();
        assert_eq!(secret(&key1).len(), 43);
        assert_ne!(secret(&key1), secret(&key2));
        assert!(!format!("{rec1:?}").contains(&secret(&key1)));
        let a = ApiKeyAuthenticator::new(ApiKeyConfig::new("aaa", [rec1, rec2]), clock).unwrap();
        assert_eq!(a.verify(&key1).unwrap().id, "job");
        assert!(a.verify(&key2).is_ok());
        assert!(ApiKeyRecord::generate("a_b", "k1", "job").is_err());
        assert!(ApiKeyRecord::generate("aaa", "k_1", "job").is_err());
    }

    #[test]
    fn config_is_checked_and_debug_is_redacted() {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(Timestamp::UNIX_EPOCH));
        let bad_hash = ApiKeyConfig::new(
            "aaa",
            [ApiKeyRecord {
                secret_sha256: "XYZ".into(),
                ..ApiKeyRecord::new("k1", "o", SECRET)
            }],
        );
        assert!(ApiKeyAuthenticator::new(bad_hash, clock.clone()).is_err());
        let dup = ApiKeyConfig::new(
            "aaa",
            [
                ApiKeyRecord::new("k1", "o", SECRET),
                ApiKeyRecord::new("k1", "p", SECRET),
            ],
        );
        assert!(ApiKeyAuthenticator::new(dup, clock.clone()).is_err());
        assert!(ApiKeyAuthenticator::new(ApiKeyConfig::new("a_b", []), clock).is_err());
        let r = ApiKeyRecord::new("k1", "o", SECRET);
        assert!(!format!("{r:?}").contains(&r.secret_sha256));
    }
}
