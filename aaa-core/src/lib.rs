//! The framework-neutral core of `aaa`: **authentication, authorization and audit** for Rust
//! services, in process.
//!
//! Adapters (`aaa-tower`, `aaa-actix`) turn a framework request into [`http::RequestFacts`] and
//! call [`Guard::check`]. The guard runs the pipeline:
//!
//! 1. **authenticate**: every [`Authenticator`] looks for its credential; the result is an
//!    [`Identity`] (a [`Principal`] or explicitly anonymous), or a 400/401/503 [`http::Rejection`];
//! 2. **map the route** the router matched to an [`Action`] on a [`Resource`] ([`RouteBinding`]);
//! 3. **authorize** with the [`Authorizer`] (the policy), which returns an [`Evaluation`];
//! 4. **audit** the decision through the [`audit::AuditSink`], failing closed if it cannot.
//!
//! ```
//! use aaa_core::{
//!     Action, Authorizer, BoxFuture, Context, Evaluation, Guard, Identity, Outcome, Principal,
//!     PrincipalKind, Resource, RouteBinding, Authenticator, AuthnError,
//!     audit::MemorySink, http::RequestFacts,
//! };
//! use std::sync::Arc;
//!
//! #[derive(Debug)]
//! struct Policy;
//! impl Authorizer for Policy {
//!     fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
//!         match facts.matched_route() {
//!             Some("/docs/{id}") => RouteBinding::Protected {
//!                 action: Action::new("read"),
//!                 resource: Resource::new("Document").with_id(facts.param("id").unwrap_or_default()),
//!             },
//!             _ => RouteBinding::Unmapped,
//!         }
//!     }
//!     fn authorize(&self, who: &Identity, _: &Action, _: &Resource, _: &Context) -> Evaluation {
//!         match who.principal() {
//!             Some(p) if p.roles.contains("reader") => Evaluation::permit(["readers-read"]),
//!             _ => Evaluation::not_permitted(),
//!         }
//!     }
//! }
//!
//! /// A stand-in for the JWT authenticator: `x-demo-user: alice` is alice, a reader.
//! #[derive(Debug)]
//! struct Demo;
//! impl Authenticator for Demo {
//!     fn authenticate<'a>(&'a self, facts: &'a RequestFacts) -> BoxFuture<'a, Result<Identity, AuthnError>> {
//!         let who = facts.headers().get("x-demo-user").and_then(|v| v.to_str().ok()).map(str::to_owned);
//!         Box::pin(async move {
//!             Ok(match who {
//!                 Some(id) => Principal::new(id, PrincipalKind::User, "demo").with_roles(["reader"]).into(),
//!                 None => Identity::Anonymous,
//!             })
//!         })
//!     }
//! }
//!
//! let audit = Arc::new(MemorySink::new());
//! let guard = Guard::builder().authenticator(Demo).policies(Policy).audit_arc(audit.clone()).build()?;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-demo-user", "alice".parse().unwrap());
//! let facts = RequestFacts::new(http::Method::GET, "/docs/1")
//!     .with_matched_route("/docs/{id}")
//!     .with_param("id", "1")
//!     .with_headers(headers);
//! let Outcome::Proceed(admission) = guard.check(&facts).await else { panic!("alice may read") };
//! assert_eq!(admission.evaluation.rules, ["readers-read".into()]);
//!
//! let anonymous = RequestFacts::new(http::Method::GET, "/docs/1").with_matched_route("/docs/{id}");
//! let Outcome::Reject(rejection) = guard.check(&anonymous).await else { panic!("must log in") };
//! assert_eq!(rejection.status(), 401);
//! # });
//! assert_eq!(audit.events().len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors and panics
//!
//! Nothing in this crate panics on input: clippy's `unwrap_used`, `expect_used`, `panic` and
//! `indexing_slicing` are denied outside tests.

#![deny(missing_docs)]

pub mod audit;
pub mod authn;
pub mod authz;
mod decision;
mod ed25519;
mod guard;
pub mod http;
mod identity;
pub mod policy;
mod request;
mod time;
mod value;

use std::{future::Future, pin::Pin};

pub use authn::{
    ApiKeyAuthenticator, ApiKeyConfig, ApiKeyRecord, ClaimMapping, ForwardedIdentityAuthenticator,
    ForwardedIdentityConfig, IssuerConfig, JwksUrl, JwtAuthenticator, KeySet, KeySource, KeyStore,
    OidcDiscovery, VerificationKey,
};
pub use authn::{Authenticator, AuthnError};
pub use authz::{Authorizer, LoadError, ResourceLoader, RouteBinding};
pub use decision::{Decision, Evaluation, EvaluationError, NearestMiss, Reason};
pub use guard::{
    Admission, Admitted, Completion, ConfigError, Guard, GuardBuilder, HasPolicy, NeedsPolicy,
    Outcome,
};
pub use identity::{AuthInfo, AuthMethod, CredentialRef, Identity, Principal, PrincipalKind};
pub use policy::{Policy, PolicyError, PolicyHandle, PolicySet};
pub use request::{Action, Context, Resource};
pub use time::{Clock, FixedClock, SystemClock, Timestamp, TimestampError};
pub use value::{Attributes, Decimal, Value, ValueError};

pub use audit::{
    AuditEvent, AuditWriter, AuditWriterConfig, Durability, Verifier, VerifierKey, VerifyReport,
};

/// A boxed future that is `Send`, as returned by the async traits of this crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A future ready with `f()`. Made with a closure that captures nothing, it is zero-sized, and
/// boxing it allocates nothing: for the common outcomes of the request path (no credential of
/// this kind, an event queued), which would otherwise cost an allocation per request.
pub(crate) struct ReadyWith<F>(pub(crate) F);

impl<F: Fn() -> T + Unpin, T> Future for ReadyWith<F> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        std::task::Poll::Ready((self.0)())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_outcome_is_zero_sized_and_boxes_without_allocating() {
        let ready = ReadyWith(|| Ok::<_, ()>(7));
        assert_eq!(std::mem::size_of_val(&ready), 0);
        let mut boxed: BoxFuture<'_, Result<i32, ()>> = Box::pin(ready);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert_eq!(boxed.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(7)));
    }
}
