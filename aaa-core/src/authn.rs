//! Authentication: turning credentials into an [`Identity`].
//!
//! An [`Authenticator`] looks at the [`RequestFacts`] for the one kind of credential it understands.
//! It answers `Ok(Identity::Anonymous)` when that credential is absent, `Ok(Identity::Authenticated)`
//! when it is present and valid, and an [`AuthnError`] when it is present and not valid. The
//! [`Guard`](crate::Guard) runs every configured authenticator and refuses a request that carries
//! more than one credential.
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
//! # Security considerations
//!
//! Errors never carry credential material: their messages are fixed strings. Map them to responses
//! with [`AuthnError::rejection`], which follows RFC 6750.

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
}
