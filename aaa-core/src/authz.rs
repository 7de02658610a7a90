//! Authorization: deciding whether an [`Identity`] may perform an [`Action`] on a [`Resource`].
//!
//! An [`Authorizer`] does two things: it maps the route the router matched to what the request
//! asks for ([`RouteBinding`]), and it decides ([`Evaluation`]). Both are synchronous and
//! in-memory; policy engines implement this trait.
//!
//! ```
//! use aaa_core::{Action, Authorizer, Context, Evaluation, Identity, Resource, RouteBinding, Timestamp};
//! use aaa_core::http::RequestFacts;
//!
//! /// Everyone authenticated may read; nothing else.
//! #[derive(Debug)]
//! struct ReadOnly;
//!
//! impl Authorizer for ReadOnly {
//!     fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
//!         match facts.matched_route() {
//!             Some("/health") => RouteBinding::Public,
//!             Some("/docs/{id}") => RouteBinding::Protected {
//!                 action: Action::new("read"),
//!                 resource: Resource::new("Document").with_id(facts.param("id").unwrap_or_default()),
//!             },
//!             _ => RouteBinding::Unmapped,
//!         }
//!     }
//!     fn authorize(&self, who: &Identity, action: &Action, _: &Resource, _: &Context) -> Evaluation {
//!         if who.is_authenticated() && action.as_str() == "read" {
//!             Evaluation::permit(["read-only"])
//!         } else {
//!             Evaluation::not_permitted()
//!         }
//!     }
//! }
//!
//! let facts = RequestFacts::new(http::Method::GET, "/docs/7").with_matched_route("/docs/{id}").with_param("id", "7");
//! assert!(matches!(ReadOnly.bind_route(&facts), RouteBinding::Protected { .. }));
//! let ctx = Context::new(Timestamp::UNIX_EPOCH);
//! assert!(!ReadOnly.authorize(&Identity::Anonymous, &Action::new("read"), &Resource::new("Document"), &ctx).is_allowed());
//! ```
//!
//! # Security considerations
//!
//! Deny is the default: an unmapped route and an anonymous caller on a protected route are
//! denied, and a rule that fails to evaluate never grants (an allow rule that errors does not
//! apply; a deny rule that errors denies).

use std::sync::Arc;

use crate::{Action, BoxFuture, Context, Evaluation, Identity, Resource, http::RequestFacts};

/// What a matched route asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteBinding {
    /// Anyone may call it; no authentication is required (credentials, if presented, are still
    /// verified).
    Public,
    /// Authorization of `action` on `resource` is required.
    Protected {
        /// The action the route performs.
        action: Action,
        /// The resource it acts upon (type, and the id from a path parameter).
        resource: Resource,
    },
    /// The policy does not mention this route: it is denied.
    Unmapped,
}

/// Maps routes to actions and decides requests.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// Maps the route the router matched (`facts.matched_route()`, with its parameters) to what
    /// it asks for. Never matches raw paths.
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding;

    /// Decides whether `identity` may perform `action` on `resource` in `context`.
    fn authorize(
        &self,
        identity: &Identity,
        action: &Action,
        resource: &Resource,
        context: &Context,
    ) -> Evaluation;

    /// The authorizer as it is now, for one request: [`Guard::check`](crate::Guard::check) maps
    /// the route and decides with what this returns, so that a policy replaced in between (a hot
    /// reload while the resource is loaded) cannot split one request across two policies (the
    /// route mapping of one, the rules of the other).
    ///
    /// Defaults to `None`: the authorizer does not change between calls, and is asked itself. An
    /// authorizer whose policy can be replaced returns the policy in force
    /// ([`PolicyHandle`](crate::policy::PolicyHandle) does).
    fn snapshot(&self) -> Option<Arc<dyn Authorizer>> {
        None
    }
}

/// Fills in the attributes of the resource a route names (owner, tenant, classification, ...)
/// before the policy decides, so route-level decisions can use them (a policy information point).
///
/// The [`Guard`](crate::Guard) calls it for protected routes whose resource has an id. Returning
/// `Ok(None)` (no such resource) leaves the resource without attributes: conditions on them fail,
/// which never grants. Of a resource returned, only the attributes are used (they replace the
/// route's): the type and id decided on and recorded are always the route's.
pub trait ResourceLoader: Send + Sync + std::fmt::Debug {
    /// Loads the attributes of `resource` (its type and id are set).
    ///
    /// # Errors
    ///
    /// [`LoadError`] when the store cannot be read; the request is then refused with 503.
    fn load<'a>(
        &'a self,
        resource: &'a Resource,
    ) -> BoxFuture<'a, Result<Option<Resource>, LoadError>>;
}

/// A [`ResourceLoader`] could not read its store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource attributes are unavailable: {0}")]
pub struct LoadError(pub &'static str);
