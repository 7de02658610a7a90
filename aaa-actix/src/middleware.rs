use std::{
    cell::RefCell,
    collections::HashMap,
    future::{Future, Ready, ready},
    pin::Pin,
    rc::Rc,
};

use aaa_core::{
    Admitted, Guard, Identity, Outcome,
    http::{RECEIPT_HEADER, RequestFacts},
};
use actix_web::{
    Error, HttpMessage, HttpRequest,
    body::{EitherBody, MessageBody},
    dev::{
        Path, ResourceDef, Service, ServiceRequest, ServiceResponse, Transform, Url, forward_ready,
    },
    http::header::{HeaderName, HeaderValue},
};

use crate::extract::Rejection;

/// The middleware factory: `App::new().wrap(Aaa::new(guard))`.
#[derive(Debug, Clone)]
#[must_use]
pub struct Aaa {
    guard: Guard,
    receipt_header: bool,
}

impl Aaa {
    /// Middleware checking requests with `guard`.
    pub fn new(guard: Guard) -> Self {
        Aaa {
            guard,
            receipt_header: false,
        }
    }

    /// Adds an [`aaa-audit-receipt`](aaa_core::http::RECEIPT_HEADER) response header naming the
    /// log, sequence number and leaf hash of the record the answer stands on: the guard's refusal
    /// (an authentication failure, a denial), or the route-level allow, or the last decision
    /// recorded after it (a handler-level check's, such as the denial a 403 answers). Sent when
    /// the sink gives receipts (the file writer does for events the request waits for:
    /// decisions, by default). Defaults to off.
    pub fn audit_receipt_header(mut self, on: bool) -> Self {
        self.receipt_header = on;
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for Aaa
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = AaaMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AaaMiddleware {
            service: Rc::new(service),
            guard: self.guard.clone(),
            receipt_header: self.receipt_header,
            patterns: Patterns::default(),
        }))
    }
}

/// The per-worker middleware service created by [`Aaa`].
#[doc(hidden)]
#[derive(Debug)]
pub struct AaaMiddleware<S> {
    service: Rc<S>,
    guard: Guard,
    receipt_header: bool,
    patterns: Patterns,
}

impl<S, B> Service<ServiceRequest> for AaaMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let guard = self.guard.clone();
        let receipt_header = self.receipt_header;
        let patterns = self.patterns.clone();
        Box::pin(async move {
            let facts = match facts_of(&req, &patterns) {
                Ok(facts) => facts,
                Err(rejection) => return Ok(reject(req, rejection)),
            };
            let admitted = match guard.check(&facts).await {
                Outcome::Reject(rejection) => {
                    let receipt = receipt_header.then(|| rejection.receipt().cloned());
                    let mut response = reject(req, rejection);
                    add_receipt(response.headers_mut(), receipt.flatten());
                    return Ok(response);
                }
                Outcome::Proceed(admission) => Admitted::new(guard, admission),
            };
            // What it was decided on, for the check once actix has routed (moved, not copied;
            // the copy of the headers, credentials included, is not kept).
            let decided_on = Rc::new(DecidedOn(facts.with_headers(http::HeaderMap::new())));
            {
                let mut extensions = req.extensions_mut();
                extensions.insert(Rc::clone(&decided_on));
                extensions.insert(admitted.identity().clone());
                if let Identity::Authenticated(principal) = admitted.identity() {
                    extensions.insert(std::sync::Arc::clone(principal));
                }
                extensions.insert(admitted.admission().evaluation.clone());
                extensions.insert(admitted.clone());
            }
            // Recorded even if this future is dropped before the handler answers (499).
            let completion = admitted.completion();
            let response = match service.call(req).await {
                Ok(response) => response,
                Err(error) => {
                    // aaa's own rejection, passed on by an inner middleware
                    // (`req.extract::<Authenticated>()` and `?`).
                    completion.answered_with(error.as_error::<Rejection>().map(|r| &r.0));
                    let (status, error) = answer_of(error);
                    completion
                        .finish(status.as_u16())
                        .await
                        .map_err(Rejection)?;
                    return Err(error);
                }
            };
            // Installed on the app, the guard decided before actix routed, on the route actix's
            // resource map gives for the path. actix's guards (host, header, method) may have
            // sent the request elsewhere: never answer for a route that was not decided on. The
            // handler has run by now; see the crate's documentation. (Checked however installed:
            // on a scope, a request for the scope's own path looks routed to the middleware, but
            // actix has not yet chosen among the scope's resources.)
            let decided = admitted.admission().route();
            let served = match served(response.request(), decided, &decided_on) {
                Served::Decided => None,
                Served::Other(route) => Some(route),
                // A default service's refusal (no resource took the request) passes.
                Served::NoResource if matches!(response.status().as_u16(), 404 | 405) => None,
                Served::NoResource => Some("a default service".to_owned()),
            };
            let mut response = match served {
                Some(served) => {
                    tracing::error!(
                        target: "aaa::actix",
                        decided = decided.unwrap_or_default(),
                        served = %served,
                        "actix served the request by another route than the one aaa decided on; \
                         install Aaa on each resource (Resource::wrap) when routes overlap under \
                         guards"
                    );
                    let rejection = aaa_core::http::Rejection::misrouted();
                    let status = rejection.status().as_u16();
                    completion.finish(status).await.map_err(Rejection)?;
                    let (request, _) = response.into_parts();
                    let body = Rejection(rejection).response();
                    return Ok(ServiceResponse::new(request, body).map_into_right_body());
                }
                None => response,
            };
            // aaa's own rejection, if the answer is one (an extractor's, not turned into `None` by
            // `Option<Authenticated>`).
            completion.answered_with(response.response().extensions().get());
            match completion.finish(response.status().as_u16()).await {
                Ok(()) => {
                    // Read once the answer is known: a handler-level refusal (or an extractor's
                    // 401, recorded by `finish`) replaces the route-level decision's receipt.
                    if receipt_header {
                        add_receipt(
                            response.headers_mut(),
                            admitted.admission().answer_receipt(),
                        );
                    }
                    Ok(response.map_into_left_body())
                }
                Err(rejection) => {
                    let (request, _) = response.into_parts();
                    let body = Rejection(rejection).response();
                    Ok(ServiceResponse::new(request, body).map_into_right_body())
                }
            }
        })
    }
}

/// Puts `receipt`, if any, in the answer's [`RECEIPT_HEADER`].
fn add_receipt(
    headers: &mut actix_web::http::header::HeaderMap,
    receipt: Option<aaa_core::audit::AuditReceipt>,
) {
    if let Some(value) = receipt.and_then(|r| r.header_value())
        && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
    {
        headers.insert(HeaderName::from_static(RECEIPT_HEADER), value);
    }
}

fn reject<B>(
    req: ServiceRequest,
    rejection: aaa_core::http::Rejection,
) -> ServiceResponse<EitherBody<B>> {
    req.into_response(Rejection(rejection).response())
        .map_into_right_body()
}

/// What served a request, against the route decided on.
pub(crate) enum Served {
    /// The route decided on.
    Decided,
    /// Another route.
    Other(String),
    /// No resource: a default service (reached because every route's guards refused).
    NoResource,
}

/// The status of the response actix will make of an inner `error`, and the error to pass on.
///
/// actix turns the error into the client's response later; its status is recorded, and the
/// error passed on as it is where it can be (outer middleware may read its type or its
/// response). `status_code()` only reads, and is right for actix's own errors (an
/// `InternalError::from_response` gives its stored response's). A type that sets its status in
/// `error_response()` alone keeps the default 500 there, so a 500 is asked for its response; an
/// `InternalError` of a type of the application holding a response of its own hands it over only
/// once then, so that response is passed on in an `InternalError` of the same message (its
/// status, headers and body reach the client as without `Aaa`; only its type is lost, which
/// cannot be named here).
fn answer_of(error: Error) -> (actix_web::http::StatusCode, Error) {
    use actix_web::error::InternalError;
    let status = error.as_response_error().status_code();
    // actix's own errors of a message give their stored response's status without being asked.
    let of_a_message = error.as_error::<InternalError<&'static str>>().is_some()
        || error.as_error::<InternalError<String>>().is_some();
    if status != actix_web::http::StatusCode::INTERNAL_SERVER_ERROR || of_a_message {
        return (status, error);
    }
    let response = error.error_response();
    let status = response.status();
    // Re-wrapped only when that call took a response the error hands over once (asked again, it
    // gives a bare 500): every other error goes on as it is, so that a middleware outside `Aaa`
    // that recognizes it by its type (to hide its details, say) still does.
    if !bare_500(&response) && bare_500(&error.error_response()) {
        return (
            status,
            InternalError::from_response(error.to_string(), response).into(),
        );
    }
    (status, error)
}

/// Whether `response` is the empty 500 an `InternalError` gives once its response was taken.
fn bare_500(response: &actix_web::HttpResponse) -> bool {
    use actix_web::body::{BodySize, MessageBody as _};
    response.status() == actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
        && response.headers().is_empty()
        && matches!(response.body().size(), BodySize::None | BodySize::Sized(0))
}

/// The facts a request was decided on (its path and parameters), kept for the check after
/// routing.
#[derive(Debug)]
pub(crate) struct DecidedOn(RequestFacts);

/// What served `req` (once actix has routed it), against the `decided` route and what it was
/// decided on.
pub(crate) fn served(req: &HttpRequest, decided: Option<&str>, on: &DecidedOn) -> Served {
    // A resource takes the whole path; a default service leaves part of it unmatched.
    if !req.match_info().unprocessed().is_empty() {
        return Served::NoResource;
    }
    // A middleware inside this one may have rewritten the path (`NormalizePath`), and a default
    // service reached through a scope takes the whole path while actix names the route it
    // guessed from the path (`match_pattern` falls back to the resource map when no resource
    // matched): the path and the parameters the handler gets must be the ones decided on.
    let same_params = {
        let mut served = req.match_info().iter();
        on.0.params().iter().all(|(name, value)| {
            served.next().is_some_and(|(n, raw)| {
                n == name && percent_encoding::percent_decode_str(raw).decode_utf8_lossy() == *value
            })
        }) && served.next().is_none()
    };
    if req.path() != on.0.path() || !same_params {
        return Served::Other(format!("{} with other parameters", req.path()));
    }
    match req.match_pattern() {
        Some(route) if Some(route.as_str()) != decided => Served::Other(route),
        _ => Served::Decided,
    }
}

/// The compiled patterns of the app's routes, per worker: compiling one costs more than the
/// rest of the translation, and an app has a fixed, small set of them.
#[derive(Debug, Clone, Default)]
struct Patterns(Rc<RefCell<HashMap<String, Option<Rc<ResourceDef>>>>>);

impl Patterns {
    /// The compiled `pattern`, which must have passed [`parameter_names`] (actix's compiler
    /// panics on a repeated parameter name or too many of them); `None` should actix's compiler
    /// panic all the same (a joined pattern too large for its regex, say): never a panic on a
    /// request's path.
    fn get(&self, pattern: &str) -> Option<Rc<ResourceDef>> {
        if let Some(def) = self.0.borrow().get(pattern) {
            return def.clone();
        }
        // A failure is kept too: it is not compiled (nor its panic printed) again.
        let def = std::panic::catch_unwind(|| ResourceDef::new(pattern))
            .ok()
            .map(Rc::new);
        self.0.borrow_mut().insert(pattern.to_owned(), def.clone());
        def
    }
}

/// Most dynamic segments actix compiles in one pattern (`actix_router::MAX_DYNAMIC_SEGMENTS`).
const MAX_DYNAMIC_SEGMENTS: usize = 16;

/// The names of `pattern`'s parameters (`{name}`, `{name:regex}`, `{name}*`), in order; `None`
/// when actix could not compile it as one pattern: a name repeated (scopes may each use
/// `{id}`), also as a named group of a parameter's regex, more than [`MAX_DYNAMIC_SEGMENTS`] of
/// them, or unbalanced braces.
fn parameter_names(pattern: &str) -> Option<Vec<&str>> {
    let mut names: Vec<&str> = Vec::new();
    // Named groups inside the parameters' regexes: actix compiles them into the same regex.
    let mut groups: Vec<&str> = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..)?;
        // The name ends at `:` or `}`; a regex may hold balanced braces of its own.
        let end = after.find([':', '}'])?;
        let name = after.get(..end)?;
        let mut depth = 1usize;
        let mut close = None;
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        if names.contains(&name) {
            return None;
        }
        names.push(name);
        let close = close?;
        if let Some(regex) = after.get(end..close) {
            groups.extend(group_names(regex));
        }
        rest = after.get(close + 1..)?;
    }
    let mut all: Vec<&str> = names.iter().chain(&groups).copied().collect();
    all.sort_unstable();
    let repeated = all.windows(2).any(|w| w.first() == w.last());
    (names.len() <= MAX_DYNAMIC_SEGMENTS && !repeated).then_some(names)
}

/// The names of a regex's named groups (`(?P<name>…)`, `(?<name>…)`).
fn group_names(regex: &str) -> impl Iterator<Item = &str> {
    regex
        .match_indices("(?")
        .filter_map(|(at, _)| regex.get(at + 2..))
        .filter_map(|rest| rest.strip_prefix("P<").or_else(|| rest.strip_prefix('<')))
        .filter_map(|rest| rest.find('>').and_then(|end| rest.get(..end)))
}

/// Translates the request into [`RequestFacts`].
fn facts_of(
    req: &ServiceRequest,
    patterns: &Patterns,
) -> Result<RequestFacts, aaa_core::http::Rejection> {
    let method = http::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| aaa_core::http::Rejection::bad_request("the request method is not valid"))?;
    let mut headers = http::HeaderMap::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let mut facts = RequestFacts::new(method, req.uri().path()).with_headers(headers);
    if let Some(peer) = req.peer_addr() {
        facts = facts.with_peer(peer);
    }
    if let Some(authority) = req.uri().authority() {
        facts = facts.with_host(authority.as_str());
    }
    // Installed on a resource (`Resource::wrap`), the middleware runs after actix routed: the
    // whole path is matched, and the pattern and parameters are the ones the handler gets.
    let routed = req.match_info().unprocessed().is_empty();
    let guessed;
    let (pattern, path) = if routed {
        let Some(pattern) = req.match_pattern() else {
            return Ok(facts);
        };
        // actix names a resource by its first pattern: a resource of several patterns matched
        // by another one has parameters its name does not declare. Never decide without them.
        let declared = parameter_names(&pattern);
        let matched: Vec<&str> = req.match_info().iter().map(|(name, _)| name).collect();
        if declared.as_deref() != Some(matched.as_slice()) {
            return Ok(facts.with_matched_route(pattern).with_malformed(
                "the route's parameters cannot be read: a resource of several patterns, or a \
                 parameter name repeated across scopes, cannot be decided on",
            ));
        }
        (pattern, req.match_info())
    } else {
        // Installed on the app, it runs before actix routes: find the route as actix's router
        // does, on the path with unreserved escapes decoded. The guards actix may also route by
        // are not visible here; the middleware checks the route actix served against this one.
        let url = Url::new(req.uri().clone());
        let Some(pattern) = req.resource_map().match_pattern(url.path()) else {
            return Ok(facts);
        };
        let mut path = Path::new(url);
        // The map names a resource by its first pattern. When this path does not match it, the
        // path was matched by another pattern of the resource (whose parameters cannot be read
        // here) or by a service mounted on a prefix (`actix_files::Files`), which cannot be
        // told apart before routing. Never decide on a guess: refused (and recorded) by the
        // guard. So is a pattern joined from scopes that repeat a parameter name, which actix
        // routes but cannot compile as one. Installed on each resource, the middleware reads
        // actix's own match instead.
        let compiled = parameter_names(&pattern).and_then(|_| patterns.get(&pattern));
        if !compiled.is_some_and(|def| def.capture_match_info(&mut path)) {
            return Ok(facts.with_matched_route(pattern).with_malformed(
                "the route cannot be decided before actix routes it: wrap a resource of several \
                 patterns, a prefix service or scopes repeating a parameter name with \
                 Resource::wrap",
            ));
        }
        guessed = path;
        (pattern, &guessed)
    };
    // actix decodes lossily (invalid UTF-8 becomes U+FFFD); the guard refuses instead (after
    // authentication, and recorded), as with axum.
    if percent_encoding::percent_decode_str(req.uri().path())
        .decode_utf8()
        .is_err()
    {
        return Ok(facts
            .with_matched_route(pattern)
            .with_malformed("a path parameter is not valid UTF-8 once decoded"));
    }
    for (name, raw) in path.iter() {
        // Decode the escapes the router left (`%`, `/`, `+`), as `web::Path` does.
        let value = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        facts = facts.with_param(name, value);
    }
    Ok(facts.with_matched_route(pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_are_read_as_actix_compiles_them() {
        assert_eq!(parameter_names("/health"), Some(vec![]));
        assert_eq!(
            parameter_names(r"/docs/{id}/v/{n:\d{3}}/{tail}*"),
            Some(vec!["id", "n", "tail"])
        );
        // Scopes each naming `{id}`: actix routes them, but cannot compile the joined pattern.
        assert_eq!(parameter_names("/users/{id}/docs/{id}"), None);
        let many: String = (0..17).map(|i| format!("/{{p{i}}}")).collect();
        assert_eq!(parameter_names(&many), None);
        assert_eq!(
            parameter_names(&many[..many.len() - 6]).map(|n| n.len()),
            Some(16)
        );
        assert_eq!(parameter_names("/docs/{id"), None);
        // A named group of a regex repeating a name: actix's compiler would panic on the joined
        // pattern (scopes compile their parts apart).
        for repeated in [
            r"/a/{id}/{n:(?P<id>\d+)}",
            r"/a/{n:(?<n>\d+)}",
            r"/a/{n:(?P<x>\d+)}/{m:(?P<x>\d+)}",
        ] {
            assert_eq!(parameter_names(repeated), None, "{repeated}");
            assert!(
                std::panic::catch_unwind(|| ResourceDef::new(repeated)).is_err(),
                "{repeated} compiles"
            );
        }
        assert_eq!(parameter_names(r"/a/{n:(?P<x>\d+)}"), Some(vec!["n"]));
        // Every name accepted here compiles.
        for pattern in [
            "/health",
            r"/docs/{id}/v/{n:\d{3}}/{tail}*",
            &many[..many.len() - 6],
            r"/a/{n:(?P<x>\d+)}",
        ] {
            assert!(parameter_names(pattern).is_some());
            let _ = ResourceDef::new(pattern);
        }
    }
}
