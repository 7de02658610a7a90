//! Authentication: turning credentials into an [`Identity`].
//!
//! An [`Authenticator`] looks at the [`RequestFacts`] for the one kind of credential it understands.
//! It answers `Ok(Identity::Anonymous)` when that credential is absent, `Ok(Identity::Authenticated)`
//! when it is present and valid, and an [`AuthnError`] when it is present and not valid. The
//! [`Guard`](crate::Guard) runs every configured authenticator and refuses a request that carries
//! more than one credential, with one exception: a service identity forwarded by a trusted proxy
//! ([`ForwardedIdentityAuthenticator`]) beside one other credential is the mesh service that
//! relayed the request, not its caller: the other credential's principal is decided on, and the
//! service is recorded as `request.relayed_by`.
//!
//! ```
//! use aaa_core::{AuthnError, Authenticator, BoxFuture, Identity, Principal, PrincipalKind};
//! use aaa_core::http::RequestFacts;
//!
//! /// Trusts an `x-user` header: for illustration only, never do this.
//! #[derive(Debug)]
//! struct HeaderUser;
//!
//! impl Authenticator for HeaderUser {
//!     fn authenticate<'a>(&'a self, facts: &'a RequestFacts) -> BoxFuture<'a, Result<Identity, AuthnError>> {
//!         let found = facts.headers().get("x-user").map(|v| v.to_str().map(str::to_owned));
//!         Box::pin(async move {
//!             match found {
//!                 None => Ok(Identity::Anonymous),
//!                 Some(Ok(id)) => Ok(Principal::new(id, PrincipalKind::User, "header").into()),
//!                 Some(Err(_)) => Err(AuthnError::Malformed("the x-user header is not text")),
//!             }
//!         })
//!     }
//! }
//! ```
//!
//! # The authenticators
//!
//! | credential | authenticator | where it is read |
//! |---|---|---|
//! | JWT access token from one or more OIDC issuers | [`JwtAuthenticator`] | `Authorization: Bearer`, optionally a cookie ([`bearer_token`]) |
//! | API key `<prefix>_<id>_<secret>` | [`ApiKeyAuthenticator`] | `x-api-key` or `Authorization: ApiKey` |
//! | SPIFFE ID forwarded by a trusted proxy | [`ForwardedIdentityAuthenticator`] | `x-forwarded-client-cert` |
//!
//! A JWT authenticator holds, per issuer, an [`IssuerConfig`] (validation rules and
//! [`ClaimMapping`]) and a [`KeyStore`] (the issuer's keys: fixed, from a [`JwksUrl`], or by
//! [`OidcDiscovery`]; any [`KeySource`] can be plugged in).
//!
//! ```
//! use std::sync::Arc;
//! use aaa_core::{
//!     Authenticator, AuthnError, FixedClock, Identity, IssuerConfig, JwtAuthenticator, KeySet,
//!     KeyStore, Timestamp, VerificationKey, authn::Algorithm, http::RequestFacts,
//! };
//!
//! // A service-local HMAC key (remote JWKS never supply symmetric keys).
//! let secret = b"0123456789abcdef0123456789abcdef";
//! let clock = FixedClock::new(Timestamp::from_unix_seconds(1_800_000_000));
//! let keys = KeySet::from_keys([VerificationKey::hmac(Some("k1"), Algorithm::HS256, secret)?]);
//! let authn = JwtAuthenticator::builder()
//!     .issuer(
//!         IssuerConfig::new("https://idp.example", ["orders-api"]).with_algorithms([Algorithm::HS256]),
//!         KeyStore::fixed(keys, Arc::new(clock.clone())),
//!     )
//!     .clock(Arc::new(clock.clone()))
//!     .build()?;
//!
//! // What the issuer would sign.
//! let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
//! header.kid = Some("k1".into());
//! let claims = serde_json::json!({
//!     "iss": "https://idp.example", "aud": "orders-api", "sub": "alice",
//!     "exp": 1_800_000_600, "scope": "orders:read", "roles": ["clerk"],
//! });
//! let token = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(secret))?;
//!
//! let request = |auth: &str| {
//!     let mut headers = http::HeaderMap::new();
//!     headers.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
//!     RequestFacts::new(http::Method::GET, "/orders").with_headers(headers)
//! };
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let who = authn.authenticate(&request(&format!("Bearer {token}"))).await.unwrap();
//! let alice = who.principal().unwrap();
//! assert_eq!(alice.id, "alice");
//! assert!(alice.has_scope("orders:read") && alice.roles.contains("clerk"));
//!
//! // An hour later the token has expired: 401 invalid_token.
//! clock.advance_seconds(3600);
//! let err = authn.authenticate(&request(&format!("Bearer {token}"))).await.unwrap_err();
//! assert_eq!(err, AuthnError::Invalid("the token has expired"));
//! assert_eq!(err.rejection().status(), 401);
//!
//! // No credentials: anonymous (the Guard answers 401 on protected routes).
//! assert_eq!(authn.authenticate(&RequestFacts::new(http::Method::GET, "/")).await, Ok(Identity::Anonymous));
//! # });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Security considerations
//!
//! - **Errors never carry credential material**: their messages are fixed strings. Map them to
//!   responses with [`AuthnError::rejection`], which follows RFC 6750: malformed requests and two
//!   credentials are 400 `invalid_request`, bad tokens 401 `invalid_token`, keys that cannot be had
//!   503. Tokens and API keys never appear in `Debug` output, errors, `tracing` events or audit
//!   records; principals carry only a [`CredentialRef`](crate::CredentialRef) (a SHA-256 of the
//!   token's signed part, or the API key's public id).
//! - **The algorithm comes from the key**, never from the token alone: a key allows the algorithms
//!   of its type and curve (narrowed by its JWK `alg`), the issuer allows a list (no HMAC by
//!   default), and a token's `alg` must be in both. `none` is refused in any spelling. An RSA
//!   public key can therefore never serve as an HMAC secret.
//! - **Remote key sets never supply symmetric keys**, keys marked `use: enc` (or `key_ops` without
//!   `verify`) are never used, RSA keys shorter than 2048 bits and HMAC secrets shorter than 32
//!   bytes are refused.
//! - **Keys are looked up by (issuer, kid)**: the unverified `iss` only chooses which issuer's keys
//!   and rules apply; a key of issuer B cannot verify a token claiming issuer A.
//! - **Headers that point elsewhere are ignored**: `jku`, `x5u`, `jwk` and `x5c` are never fetched
//!   nor trusted (though a registered parameter of the wrong type, `"jku": 5`, makes the token
//!   malformed). `crit` is refused unless every listed parameter is declared understood.
//! - **One token, one spelling**: tokens are capped in size before decoding (16 KiB by default),
//!   must be three segments of canonical unpadded base64url, and header and payload must not
//!   repeat a member (a duplicate `alg` is refused, whatever its values). An ECDSA signature
//!   keeps a second valid spelling (`s` or `n − s`; issuers do not all pick the low one), so a
//!   token's [`CredentialRef`](crate::CredentialRef) is the SHA-256 of its signed header and
//!   payload, the same for both.
//! - **Time comes from the injected [`Clock`](crate::Clock)**, with a leeway (60 s by default);
//!   `exp` and `aud` are required.
//! - **Key fetching cannot be turned into a denial of service**: unknown key ids cost the issuer
//!   at most one fetch per cooldown, fetches have timeouts and a size cap, redirects and proxies
//!   are not followed, URLs must be `https` (plain `http` only to `localhost` or a loopback
//!   address). An outage degrades to 503 only after the configured maximum staleness.
//! - **Forwarded identities** are believed only from configured proxy addresses; see
//!   [`ForwardedIdentityAuthenticator`] for the deployment caveat.
//! - **Crypto backend**: `jsonwebtoken` with its `aws_lc_rs` provider (about 9× faster than
//!   `rust_crypto` for RS256 and 4× for ES256). Public keys are parsed once per key set, so no
//!   key is re-decoded per request: RSA and ECDSA keys into `aws-lc-rs` `ParsedPublicKey`s, the
//!   same primitives `jsonwebtoken`'s provider calls; Ed25519 keys into `ed25519-dalek`
//!   `VerifyingKey`s, which make RFC 8032's check (`S` below the group order, the recomputed `R`
//!   compared byte for byte, as `aws-lc-rs` does) in about two thirds of the time, and only
//!   after the key itself was checked at load (canonical, in the prime-order subgroup, so never
//!   a weak key). HMAC secrets go through `jsonwebtoken`. Do not also enable `jsonwebtoken`'s
//!   `rust_crypto` feature elsewhere in the build: with both, `jsonwebtoken` cannot pick a
//!   default provider for signing.
//! - **The verified-token cache** (off by default,
//!   [`JwtAuthenticatorBuilder::verified_token_cache`]) keys entries by the SHA-256 of the whole
//!   token, serves them only until the token's `exp` (plus leeway) and only while the very key
//!   that verified the token is still in the issuer's current key set; the staleness rule still
//!   applies on every hit. It trades memory (bounded) for the signature check of repeated tokens.

mod api_key;
mod claims;
mod credentials;
mod error;
mod forwarded;
mod jwks;
mod jws;
mod jwt;
mod key_source;
mod keys;
mod token_cache;
#[cfg(test)]
mod vectors;

pub use api_key::{
    API_KEY_ISSUER, ApiKeyAuthenticator, ApiKeyConfig, ApiKeyConfigError, ApiKeyRecord,
};
pub use claims::{ClaimMapping, KindRule};
pub use credentials::{BearerToken, TokenLocation, bearer_token};
pub use error::{AuthnError, JwtConfigError, KeyError, KeySourceError};
pub use forwarded::{ForwardedIdentityAuthenticator, ForwardedIdentityConfig};
pub use jsonwebtoken::Algorithm;
pub use jwks::{CachePolicy, KeyStore, KeyStoreHealth};
pub use jwt::{DEFAULT_MAX_TOKEN_BYTES, IssuerConfig, JwtAuthenticator, JwtAuthenticatorBuilder};
pub use key_source::{HttpOptions, JwksUrl, KeyFetch, KeySource, OidcDiscovery};
pub use keys::{KeySet, VerificationKey};

use crate::{BoxFuture, Identity, http::RequestFacts};

/// Verifies one kind of credential.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Authenticates the request: `Anonymous` if this authenticator's credential is absent.
    ///
    /// # Errors
    ///
    /// [`AuthnError`] when the credential is present but malformed, invalid, or cannot be checked.
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>>;

    /// The request headers that carry this authenticator's credential, whatever their name, so
    /// that the tower adapter marks them sensitive ([`http::HeaderValue::set_sensitive`]:
    /// `Debug` hides them) in the headers it hands to the layers inside it and the handler. None
    /// by default; `Authorization`, `Cookie` and headers whose name holds a credential word are
    /// marked anyway ([`RequestFacts::with_headers`]).
    ///
    /// Layers outside the aaa layer see the headers before it marks them: to keep a trace layer
    /// there from logging them, put `tower_http`'s `SetSensitiveRequestHeadersLayer` with these
    /// names (and `Authorization`, `Cookie`) outermost. The actix adapter marks nothing: actix-web
    /// gives a middleware the request's headers to change only when nothing else holds the
    /// request, and panics otherwise.
    fn credential_headers(&self) -> &[http::HeaderName] {
        &[]
    }

    /// The `Authorization` scheme this authenticator reads (`Bearer`, `ApiKey`), if any: the
    /// guard's 401 challenges name `Bearer` when one of its authenticators reads it, else the
    /// first scheme named (RFC 9110 §11.6.1: a challenge the resource accepts). `None` by
    /// default.
    fn challenge_scheme(&self) -> Option<&str> {
        None
    }

    /// Whether the request carries this authenticator's credential where it is ignored by design
    /// (a forwarded identity from a peer that is not a trusted proxy), as a stable code. Asked
    /// only when [`authenticate`](Self::authenticate) found no identity. The guard names it in
    /// every audit record of the request
    /// ([`RequestInfo::ignored_credential`](crate::audit::RequestInfo::ignored_credential)), which
    /// goes on without the credential. `None` by default.
    fn ignored(&self, facts: &RequestFacts) -> Option<&'static str> {
        let _ = facts;
        None
    }
}
