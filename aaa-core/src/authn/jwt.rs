//! JWT bearer tokens: [`IssuerConfig`] (one issuer's rules) and [`JwtAuthenticator`].

use std::{collections::HashMap, fmt, str::FromStr, sync::Arc, time::Duration};

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value as Json};

use super::{
    AuthnError, ClaimMapping, JwtConfigError, KeyStore, bearer_token,
    claims::is_mfa,
    jws::{self, StrictObject},
    keys::MAX_KID_BYTES,
    token_cache::{Entry as CacheEntry, TokenCache},
};
use crate::{
    AuthInfo, AuthMethod, BoxFuture, Clock, CredentialRef, Identity, Principal, SystemClock,
    Timestamp, authn::Authenticator, http::RequestFacts,
};
use sha2::{Digest, Sha256};

/// Default cap on a token's length, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The asymmetric algorithms allowed by default.
const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One issuer's validation rules and claim mapping. Fields are public; defaults are secure.
///
/// ```
/// use aaa_core::authn::IssuerConfig;
/// use std::time::Duration;
///
/// let mut idp = IssuerConfig::new("https://idp.example", ["orders-api"]);
/// idp.require_access_token_type = true;
/// idp.max_lifetime = Some(Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerConfig {
    /// The issuer, compared exactly with the token's `iss`.
    pub issuer: String,
    /// Accepted audiences; the token's `aud` must contain one. Must not be empty.
    pub audiences: Vec<String>,
    /// Accepted algorithms; a key must also allow the token's `alg` by its type. Must not be
    /// empty. Defaults to RS256/384/512, PS256/384/512, ES256/384 and EdDSA (no HMAC).
    pub algorithms: Vec<Algorithm>,
    /// Tolerance for clock skew on `exp`, `nbf` and `iat`. Defaults to 60 s.
    pub leeway: Duration,
    /// Longest accepted `exp - iat`; when set, `iat` is required. Defaults to none.
    pub max_lifetime: Option<Duration>,
    /// Require `typ: at+jwt` (RFC 9068), refusing ID tokens and other JWTs. Defaults to `false`
    /// (many issuers do not set it); turn it on when the issuer does.
    pub require_access_token_type: bool,
    /// `crit` header parameters this service understands. Defaults to none: any `crit` is refused.
    pub understood_critical_headers: Vec<String>,
    /// How claims become a principal. Defaults to [`ClaimMapping::default`].
    pub claims: ClaimMapping,
}

impl IssuerConfig {
    /// Rules for `issuer` accepting tokens for `audiences`, with the documented defaults.
    pub fn new<I, S>(issuer: impl Into<String>, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        IssuerConfig {
            issuer: issuer.into(),
            audiences: audiences.into_iter().map(Into::into).collect(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(60),
            max_lifetime: None,
            require_access_token_type: false,
            understood_critical_headers: Vec::new(),
            claims: ClaimMapping::default(),
        }
    }

    /// Sets the accepted algorithms.
    #[must_use]
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Sets the claim mapping.
    #[must_use]
    pub fn with_claims(mut self, claims: ClaimMapping) -> Self {
        self.claims = claims;
        self
    }

    fn check(&self) -> Result<(), JwtConfigError> {
        let fail = |reason| JwtConfigError::Issuer {
            issuer: self.issuer.clone(),
            reason,
        };
        if self.issuer.is_empty() {
            return Err(fail("the issuer is empty"));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(fail("at least one non-empty audience is required"));
        }
        if self.algorithms.is_empty() {
            return Err(fail("at least one algorithm is required"));
        }
        Ok(())
    }
}

struct IssuerEntry {
    config: IssuerConfig,
    keys: KeyStore,
}

/// Authenticates JWT bearer tokens from one or more issuers.
///
/// Built with [`JwtAuthenticator::builder`]; see [`IssuerConfig`] for each issuer's rules and
/// [`bearer_token`](super::bearer_token) for where tokens are looked for.
///
/// # Validation, in order
///
/// 1. The token is at most [`JwtAuthenticatorBuilder::max_token_bytes`] long (checked before any
///    decoding).
/// 2. It is a compact JWS: three segments of canonical unpadded base64url; a JWE (five segments)
///    and the JSON serialization are refused. Header and payload are JSON objects without
///    duplicate members.
/// 3. The unverified `iss` picks the issuer (exact string match). Everything after uses that
///    issuer's keys and rules only.
/// 4. Header: `alg` is a supported signing algorithm (`none` in any spelling is refused); `crit`
///    lists only parameters the issuer declares understood; `enc`/`zip` are refused; `kid` is a
///    string of at most 256 bytes; `typ`, when the issuer requires it, is `at+jwt`. `jku`, `x5u`,
///    `jwk`, `x5c` are ignored: never fetched, never trusted; but these and the other registered
///    parameters (`x5t`, `x5t#S256`, `cty`, and ACME's `url`, `nonce`) must have the type their
///    specification gives (a token with `"jku": 5` is refused).
/// 5. `alg` must be in the issuer's `algorithms`; the key is looked up by `kid` in the issuer's
///    [`KeyStore`]; the key must allow `alg` by its own type and curve. The signature is verified
///    with `jsonwebtoken` (so ECDSA signatures are the fixed-size `r || s` form of RFC 7518; DER is
///    refused, and so are zero values).
/// 6. Claims: `aud` required (a string or a non-empty array of strings) and one entry must equal a
///    configured audience; `exp` required; `exp`, `nbf`, `iat` must be numbers and are checked
///    against the injected [`Clock`] with the leeway; the lifetime `exp - iat` may be capped;
///    `sub`, `jti` must be strings.
/// 7. The claims are mapped to a [`Principal`] ([`ClaimMapping`]).
pub struct JwtAuthenticator {
    issuers: HashMap<String, IssuerEntry>,
    clock: Arc<dyn Clock>,
    max_token_bytes: usize,
    cookie: Option<String>,
    cache: Option<TokenCache>,
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut issuers: Vec<&String> = self.issuers.keys().collect();
        issuers.sort();
        f.debug_struct("JwtAuthenticator")
            .field("issuers", &issuers)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("cookie", &self.cookie)
            .field("cached_tokens", &self.cached_tokens())
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtAuthenticator`].
#[must_use]
pub struct JwtAuthenticatorBuilder {
    issuers: Vec<(IssuerConfig, KeyStore)>,
    clock: Arc<dyn Clock>,
    max_token_bytes: usize,
    cookie: Option<String>,
    cache_capacity: usize,
}

impl fmt::Debug for JwtAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticatorBuilder")
            .field("issuers", &self.issuers.len())
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticatorBuilder {
    /// Adds an issuer with its key store.
    pub fn issuer(mut self, config: IssuerConfig, keys: KeyStore) -> Self {
        self.issuers.push((config, keys));
        self
    }

    /// Sets the clock for `exp`/`nbf`/`iat`. Defaults to [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the cap on a token's length, checked before decoding. Defaults to 16 KiB.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Also reads tokens from the cookie `name`. Defaults to none.
    ///
    /// A browser sends cookies with requests other sites make it send: a route reading its
    /// token from a cookie needs protection against cross-site request forgery (a `SameSite`
    /// cookie, and a check of `Origin` or `Sec-Fetch-Site` on state-changing routes), which aaa
    /// does not add.
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// Caches up to `capacity` verified tokens, so a repeated token skips the signature check.
    /// Entries are keyed by the token's SHA-256, expire with the token, and are dropped when the
    /// key that verified them leaves the issuer's key set (any refresh drops them). Defaults to
    /// no cache.
    pub fn verified_token_cache(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Builds the authenticator.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError`] when no issuer is configured, an issuer appears twice, or an issuer's
    /// configuration has no audience or no algorithm.
    pub fn build(self) -> Result<JwtAuthenticator, JwtConfigError> {
        if self.issuers.is_empty() {
            return Err(JwtConfigError::NoIssuer);
        }
        let mut issuers = HashMap::new();
        for (config, keys) in self.issuers {
            config.check()?;
            if let Some(keys_of) = keys.source_issuer()
                && keys_of != config.issuer
            {
                return Err(JwtConfigError::KeysOfAnotherIssuer {
                    issuer: config.issuer.clone(),
                    keys_of: keys_of.to_owned(),
                });
            }
            let name = config.issuer.clone();
            if issuers
                .insert(name.clone(), IssuerEntry { config, keys })
                .is_some()
            {
                return Err(JwtConfigError::DuplicateIssuer(name));
            }
        }
        Ok(JwtAuthenticator {
            issuers,
            clock: self.clock,
            max_token_bytes: self.max_token_bytes,
            cookie: self.cookie,
            cache: (self.cache_capacity > 0).then(|| TokenCache::new(self.cache_capacity)),
        })
    }
}

/// The checked parts of a JOSE header.
struct Header<'a> {
    alg: Algorithm,
    kid: Option<&'a str>,
}

impl JwtAuthenticator {
    /// A builder with the documented defaults and no issuer.
    pub fn builder() -> JwtAuthenticatorBuilder {
        JwtAuthenticatorBuilder {
            issuers: Vec::new(),
            clock: Arc::new(SystemClock),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            cookie: None,
            cache_capacity: 0,
        }
    }

    /// The key store of `issuer`, for health checks and background refresh.
    pub fn key_store(&self, issuer: &str) -> Option<&KeyStore> {
        self.issuers.get(issuer).map(|e| &e.keys)
    }

    /// Validates `token` and maps it to a principal.
    ///
    /// # Errors
    ///
    /// [`AuthnError::Invalid`] for any invalid token, [`AuthnError::Unavailable`] when the issuer's
    /// keys cannot be had or are too stale.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthnError> {
        self.verify_shared(token)
            .await
            .map(|p| Arc::try_unwrap(p).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// Every issuer with its key store, sorted by issuer: for a health endpoint, or to spawn
    /// [`KeyStore::run_refresh`] for each.
    pub fn key_stores(&self) -> Vec<(&str, &KeyStore)> {
        let mut all: Vec<(&str, &KeyStore)> = self
            .issuers
            .iter()
            .map(|(name, e)| (name.as_str(), &e.keys))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// How many verified tokens the cache holds (0 without a cache).
    pub fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// [`verify`](Self::verify), sharing the principal with the verified-token cache.
    async fn verify_shared(&self, token: &str) -> Result<Arc<Principal>, AuthnError> {
        if token.len() > self.max_token_bytes {
            return Err(AuthnError::Invalid("the token is too long"));
        }
        let now = self.clock.now();
        // The cache's key, the whole token's hash: computed only where there is a cache.
        let cached = self
            .cache
            .as_ref()
            .map(|cache| (cache, <[u8; 32]>::from(Sha256::digest(token.as_bytes()))));
        if let Some((cache, hash)) = &cached
            && let Some(hit) = cache.get(hash, now)
            && let Some(entry) = self.issuers.get(&*hit.issuer)
        {
            match entry.keys.key_for(hit.kid.as_deref(), hit.alg).await {
                Ok(key) if Arc::ptr_eq(&key, &hit.key) => return Ok(hit.principal),
                Err(e @ AuthnError::Unavailable(_)) => return Err(e),
                // The key left the key set or was replaced: verify afresh.
                _ => cache.remove(hash),
            }
        }
        let compact = jws::parse_compact(token)?;
        let claims = jws::parse_object(&compact.payload, "the token payload is not a JSON object")?;
        let StrictObject(claims) = claims;
        let iss = match claims.get("iss") {
            Some(Json::String(s)) => s.as_str(),
            Some(_) => return Err(AuthnError::Invalid("the iss claim is not a string")),
            None => return Err(AuthnError::Invalid("the token has no issuer")),
        };
        let Some(entry) = self.issuers.get(iss) else {
            return Err(AuthnError::Invalid("the token's issuer is not trusted"));
        };
        let config = &entry.config;
        let header = check_header(&compact.header.0, config)?;
        if !config.algorithms.contains(&header.alg) {
            return Err(AuthnError::Invalid("the token's algorithm is not accepted"));
        }
        let key = entry.keys.key_for(header.kid, header.alg).await?;
        if !key.verify(
            header.alg,
            compact.signing_input.as_bytes(),
            &compact.signature,
            compact.signature_b64,
        ) {
            return Err(AuthnError::Invalid("the token's signature is not valid"));
        }
        let times = check_claims(&claims, config, now)?;
        let mapped = config.claims.map(&claims)?;
        let mut auth = AuthInfo::new(
            AuthMethod::Jwt,
            // When the user authenticated: a refreshed token has a new `iat`, not a new sign-in.
            times.auth_time.or(times.iat).unwrap_or(now),
            // Of the signed header and payload, not of the whole token: an ECDSA signature has a
            // second valid spelling (s and n − s), and a replayed token must not pass for
            // another credential in the audit log.
            CredentialRef::token(compact.signing_input.as_bytes()),
        );
        auth.expires_at = Some(times.exp);
        auth.mfa = is_mfa(&mapped.amr);
        auth.amr = mapped.amr;
        let mut principal = Principal::new(mapped.id, mapped.kind, iss)
            .with_roles(mapped.roles)
            .with_scopes(mapped.scopes)
            .with_auth(auth);
        principal.tenant = mapped.tenant;
        principal.attributes = mapped.attributes;
        let principal = Arc::new(principal);
        if let Some((cache, hash)) = cached {
            let leeway = i64::try_from(config.leeway.as_micros()).unwrap_or(i64::MAX);
            cache.insert(
                hash,
                CacheEntry {
                    principal: principal.clone(),
                    issuer: Arc::from(config.issuer.as_str()),
                    kid: header.kid.map(Arc::from),
                    alg: header.alg,
                    key,
                    valid_until: times.exp.add_micros(leeway),
                },
                now,
            );
        }
        Ok(principal)
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        Box::pin(async move {
            let Some(token) = bearer_token(facts, self.cookie.as_deref())? else {
                return Ok(Identity::Anonymous);
            };
            match self.verify_shared(token.as_str()).await {
                Ok(p) => Ok(Identity::Authenticated(p)),
                Err(e) => {
                    tracing::debug!(target: "aaa::authn::jwt", reason = e.reason_code(), error = %e, "bearer token refused");
                    Err(e)
                }
            }
        })
    }

    /// `Bearer`.
    fn challenge_scheme(&self) -> Option<&str> {
        Some("Bearer")
    }
}

fn check_header<'a>(
    header: &'a Map<String, Json>,
    config: &IssuerConfig,
) -> Result<Header<'a>, AuthnError> {
    let alg = match header.get("alg") {
        Some(Json::String(s)) if s.eq_ignore_ascii_case("none") => {
            return Err(AuthnError::Invalid("unsigned tokens are not accepted"));
        }
        Some(Json::String(s)) => Algorithm::from_str(s)
            .map_err(|_| AuthnError::Invalid("the token's algorithm is not supported"))?,
        Some(_) => return Err(AuthnError::Invalid("the alg header is not a string")),
        None => return Err(AuthnError::Invalid("the token has no alg header")),
    };
    if header.contains_key("enc") || header.contains_key("zip") {
        return Err(AuthnError::Invalid("encrypted tokens are not accepted"));
    }
    if let Some(crit) = header.get("crit") {
        let understood = crit.as_array().is_some_and(|names| {
            !names.is_empty()
                && names.iter().all(|n| {
                    n.as_str().is_some_and(|n| {
                        header.contains_key(n)
                            && config.understood_critical_headers.iter().any(|u| u == n)
                    })
                })
        });
        if !understood {
            return Err(AuthnError::Invalid(
                "the token has critical headers not understood",
            ));
        }
    }
    if header.get("b64").is_some_and(|b| b != &Json::Bool(true)) {
        return Err(AuthnError::Invalid("unencoded payloads are not accepted"));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Json::String(s)) if s.len() <= MAX_KID_BYTES => Some(s.as_str()),
        Some(Json::String(_)) => return Err(AuthnError::Invalid("the key id is too long")),
        Some(_) => return Err(AuthnError::Invalid("the kid header is not a string")),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Json::String(s)) => Some(s.as_str()),
        Some(_) => return Err(AuthnError::Invalid("the typ header is not a string")),
    };
    // Registered parameters aaa never uses (never fetched, never trusted) must still be what
    // their specifications say: a token with `"jku": 5` is malformed, whatever reads it next.
    let well_typed = |name: &str, value: &Json| match name {
        "jku" | "x5u" | "x5t" | "x5t#S256" | "cty" | "url" | "nonce" => value.is_string(),
        "jwk" => value.is_object(),
        "x5c" => value
            .as_array()
            .is_some_and(|certs| certs.iter().all(Json::is_string)),
        _ => true,
    };
    if !header.iter().all(|(name, value)| well_typed(name, value)) {
        return Err(AuthnError::Invalid(
            "a registered header parameter has the wrong type",
        ));
    }
    if config.require_access_token_type {
        let is_at = typ.is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t == "at+jwt" || t == "application/at+jwt"
        });
        if !is_at {
            return Err(AuthnError::Invalid(
                "the token is not an access token (typ at+jwt)",
            ));
        }
    }
    Ok(Header { alg, kid })
}

struct Times {
    exp: Timestamp,
    iat: Option<Timestamp>,
    /// When the user authenticated (OpenID Connect `auth_time`), if the token says.
    auth_time: Option<Timestamp>,
}

/// A NumericDate claim: a JSON number of seconds (fractions allowed), as microseconds.
fn numeric_date(
    claims: &Map<String, Json>,
    name: &str,
    wrong: &'static str,
) -> Result<Option<Timestamp>, AuthnError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Json::Number(n)) => {
            let micros = if let Some(i) = n.as_i64() {
                i.checked_mul(1_000_000)
            } else {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.0e12)
                    .map(|f| (f * 1_000_000.0) as i64)
            };
            micros
                .map(|m| Some(Timestamp::from_unix_micros(m)))
                .ok_or(AuthnError::Invalid(wrong))
        }
        Some(_) => Err(AuthnError::Invalid(wrong)),
    }
}

fn check_claims(
    claims: &Map<String, Json>,
    config: &IssuerConfig,
    now: Timestamp,
) -> Result<Times, AuthnError> {
    let leeway = i64::try_from(config.leeway.as_micros()).unwrap_or(i64::MAX);
    let now_us = now.unix_micros();
    let exp = numeric_date(claims, "exp", "the exp claim is not a number")?
        .ok_or(AuthnError::Invalid("the token has no expiry"))?;
    let nbf = numeric_date(claims, "nbf", "the nbf claim is not a number")?;
    let iat = numeric_date(claims, "iat", "the iat claim is not a number")?;
    if now_us >= exp.unix_micros().saturating_add(leeway) {
        return Err(AuthnError::Invalid("the token has expired"));
    }
    if nbf.is_some_and(|nbf| nbf.unix_micros() > now_us.saturating_add(leeway)) {
        return Err(AuthnError::Invalid("the token is not valid yet"));
    }
    if iat.is_some_and(|iat| iat.unix_micros() > now_us.saturating_add(leeway)) {
        return Err(AuthnError::Invalid("the token was issued in the future"));
    }
    let auth_time = numeric_date(claims, "auth_time", "the auth_time claim is not a number")?;
    if auth_time.is_some_and(|at| at.unix_micros() > now_us.saturating_add(leeway)) {
        return Err(AuthnError::Invalid(
            "the token's user authenticated in the future",
        ));
    }
    if let Some(max) = config.max_lifetime {
        let Some(iat) = iat else {
            return Err(AuthnError::Invalid("the token has no iat claim"));
        };
        let lifetime = exp.unix_micros().saturating_sub(iat.unix_micros());
        if lifetime > i64::try_from(max.as_micros()).unwrap_or(i64::MAX) {
            return Err(AuthnError::Invalid("the token's lifetime is too long"));
        }
    }
    let audience_ok = match claims.get("aud") {
        Some(Json::String(a)) => config.audiences.iter().any(|c| c == a),
        Some(Json::Array(items)) => {
            if items.is_empty() || items.iter().any(|i| !i.is_string()) {
                return Err(AuthnError::Invalid(
                    "the aud claim is not a list of strings",
                ));
            }
            items
                .iter()
                .filter_map(Json::as_str)
                .any(|a| config.audiences.iter().any(|c| c == a))
        }
        Some(_) => return Err(AuthnError::Invalid("the aud claim is not a string or list")),
        None => return Err(AuthnError::Invalid("the token has no audience")),
    };
    if !audience_ok {
        return Err(AuthnError::Invalid(
            "the token is not meant for this audience",
        ));
    }
    for name in ["sub", "jti"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            return Err(AuthnError::Invalid("a registered claim has the wrong type"));
        }
    }
    Ok(Times {
        exp,
        iat,
        auth_time,
    })
}
