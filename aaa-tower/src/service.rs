use std::{
    sync::Arc,
    task::{Context, Poll},
};

use aaa_core::{Admitted, Guard, Identity, Outcome, http::RequestFacts};
use http::{Request, Response, request::Parts};
use tower::Service;

use crate::{ResponseFuture, future::Checked};

/// The route template a router matched and its decoded parameters.
///
/// With the `axum` feature the layer reads them from axum itself; with another router, insert this
/// into the request extensions before the layer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRoute {
    /// The template, such as `/docs/{id}`.
    pub template: String,
    /// The decoded parameters, in order.
    pub params: Vec<(String, String)>,
}

/// The service produced by [`AaaLayer`](crate::AaaLayer).
#[derive(Debug, Clone)]
pub struct AaaService<S> {
    pub(crate) inner: S,
    pub(crate) guard: Guard,
    pub(crate) receipt_header: bool,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AaaService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Use the service that was polled ready, leave a fresh clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let receipt_header = self.receipt_header;
        // The request's facts are read here, before the check's future is made, and the guard's
        // check is boxed apart: each future stays under 1 KiB, within the allocator's per-thread
        // cache (together, with the request's parts and facts, they passed 3 KiB).
        let (mut parts, body) = request.into_parts();
        let facts = facts_of(&mut parts, guard.credential_headers());
        let check = Box::pin(async move {
            let admitted = match Box::pin(guard.check(&facts)).await {
                Outcome::Reject(rejection) => {
                    let receipt = receipt_header
                        .then(|| rejection.receipt()?.header_value())
                        .flatten();
                    return Checked::Answer(rejection, receipt);
                }
                Outcome::Proceed(admission) => Admitted::new(guard, admission),
            };
            parts.headers = facts.into_headers();
            parts.extensions.insert(admitted.identity().clone());
            if let Identity::Authenticated(principal) = admitted.identity() {
                parts.extensions.insert(Arc::clone(principal));
            }
            parts
                .extensions
                .insert(admitted.admission().evaluation.clone());
            // The receipt is read once the answer is known: a handler-level refusal replaces
            // the route-level decision's.
            let receipt = receipt_header.then(|| admitted.clone());
            // Recorded even if the response future is dropped before the handler answers.
            let completion = admitted.completion();
            parts.extensions.insert(admitted);
            Checked::Forward {
                request: Request::from_parts(parts, body),
                completion,
                receipt,
            }
        });
        ResponseFuture::new(check, inner)
    }
}

/// Translates the request head into [`RequestFacts`]. The headers move into the facts (the
/// caller puts them back after the check), where credential headers are marked sensitive:
/// those the facts know, and the authenticators' own `credential_headers`.
fn facts_of(parts: &mut Parts, credential_headers: &[http::HeaderName]) -> RequestFacts {
    let mut facts = RequestFacts::new(parts.method.clone(), parts.uri.path())
        .with_headers(std::mem::take(&mut parts.headers))
        .with_sensitive_headers(credential_headers);
    if let Some(authority) = parts.uri.authority() {
        facts = facts.with_host(authority.as_str());
    }
    if let Some(route) = parts.extensions.get::<MatchedRoute>() {
        facts = facts.with_matched_route(route.template.as_str());
        for (name, value) in &route.params {
            facts = facts.with_param(name.as_str(), value.as_str());
        }
    }
    #[cfg(feature = "axum")]
    {
        facts = crate::extract::axum_facts(parts, facts);
    }
    if facts.matched_route().is_none() {
        // Every unknown URL lands here too (a scanner would flood the log): warn once, then trace.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::trace!(target: "aaa::tower", "no matched route: refused with 404");
        } else {
            tracing::warn!(
                target: "aaa::tower",
                "no matched route is known for this request: it is refused with 404 (so is every \
                 request no route matches). If this happens for routes that exist, install \
                 AaaLayer with Router::layer or Router::route_layer (axum feature), or insert a \
                 MatchedRoute"
            );
        }
    }
    facts
}
