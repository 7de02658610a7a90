//! axum extractors and the reading of axum's routing facts.

use std::{net::SocketAddr, ops::Deref, sync::Arc};

use aaa_core::{Action, Admitted, Evaluation, Identity, Principal, Resource, http::RequestFacts};
use axum::extract::{
    ConnectInfo, FromRequestParts, MatchedPath, OptionalFromRequestParts, RawPathParams,
};
use http::request::Parts;

use crate::rejection::Rejection;

/// Adds what axum knows: the matched route, its decoded parameters, the peer address.
pub(crate) fn axum_facts(parts: &mut Parts, mut facts: RequestFacts) -> RequestFacts {
    if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        facts = facts.with_peer(*peer);
    }
    let Some(path) = parts.extensions.get::<MatchedPath>().cloned() else {
        return facts;
    };
    facts = facts.with_matched_route(path.as_str());
    match raw_path_params(parts) {
        Some(Ok(params)) => {
            for (name, value) in &params {
                facts = facts.with_param(name, value);
            }
        }
        Some(Err(axum::extract::rejection::RawPathParamsRejection::InvalidUtf8InPathParam(_))) => {
            // Refused by the guard, after authentication, and recorded.
            facts = facts.with_malformed("a path parameter is not valid UTF-8 once decoded");
        }
        // No parameters recorded for this route.
        Some(Err(_)) => {}
        // Never with axum 0.8, whose extractor only reads the request's extensions. Were a later
        // axum to wait there, the request is refused (and recorded) rather than decided without
        // its parameters.
        None => facts = facts.with_malformed("axum's path parameters could not be read"),
    }
    facts
}

/// axum's decoded path parameters. Its extractor is `async` but only reads the request's
/// extensions, so one poll gives the answer (`None` if it ever does not).
fn raw_path_params(
    parts: &mut Parts,
) -> Option<Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>> {
    let extract = std::pin::pin!(<RawPathParams as FromRequestParts<()>>::from_request_parts(
        parts,
        &()
    ));
    match extract.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(params) => Some(params),
        std::task::Poll::Pending => None,
    }
}

fn admitted(parts: &Parts) -> Result<&Admitted, Rejection> {
    parts
        .extensions
        .get::<Admitted>()
        .ok_or_else(|| aaa_core::http::Rejection::not_installed().into())
}

/// The authenticated principal. Rejects anonymous callers with 401, and answers 500 when the
/// [`AaaLayer`](crate::AaaLayer) is not installed on the route.
///
/// Use `Option<Authenticated>` on routes that also serve anonymous callers.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Principal>);

impl Deref for Authenticated {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // An anonymous caller's 401, if it is the answer, is recorded with the completion.
        Ok(Authenticated(admitted(parts)?.principal()?))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(admitted(parts)?.principal().ok().map(Authenticated))
    }
}

/// Handler-level authorization: decide on a resource the handler has loaded, with the same policy
/// as the layer, audited like the layer's decisions.
///
/// ```
/// use aaa_core::Resource;
/// use aaa_tower::{Authorizer, Rejection};
/// use axum::extract::Path;
///
/// async fn delete(authz: Authorizer, Path(id): Path<String>) -> Result<String, Rejection> {
///     let doc = Resource::new("Document").with_id(&id).with_attribute("owner", "ann");
///     authz.check("docs:delete", &doc).await?;
///     Ok(format!("deleted {id}"))
/// }
/// let _route: axum::routing::MethodRouter = axum::routing::delete(delete);
/// ```
#[derive(Debug, Clone)]
pub struct Authorizer(Admitted);

impl Authorizer {
    /// Allows or refuses `action` on `resource` for the request's caller.
    ///
    /// # Errors
    ///
    /// The [`Rejection`] to answer with (401 anonymous, 403 denied, 503 audit unavailable).
    pub async fn check(
        &self,
        action: impl Into<Action>,
        resource: &Resource,
    ) -> Result<Evaluation, Rejection> {
        self.0.check(action, resource).await.map_err(Rejection)
    }

    /// The caller.
    pub fn identity(&self) -> &Identity {
        self.0.identity()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authorizer {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        admitted(parts).cloned().map(Authorizer)
    }
}
