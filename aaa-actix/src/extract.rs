use std::{
    fmt,
    future::{Ready, ready},
    ops::Deref,
    rc::Rc,
    sync::Arc,
};

use aaa_core::{Action, Admitted, Evaluation, Identity, Principal, Resource};
use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    dev::Payload,
    http::{StatusCode, header::HeaderName},
};

/// A refusal, as an actix-web error: wraps the core [`Rejection`](aaa_core::http::Rejection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub aaa_core::http::Rejection);

impl Rejection {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The RFC 9457 problem body.
    pub fn body_text(&self) -> String {
        self.0.body_text()
    }

    /// The response, with the typed rejection in its extensions.
    pub fn response(&self) -> HttpResponse {
        tracing::trace!(target: "aaa::rejection", status = self.0.status().as_u16(), kind = self.0.kind().code(), "rejected");
        let mut builder = HttpResponse::build(self.status());
        for (name, value) in &self.0.headers() {
            if let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes()) {
                builder.insert_header((name, value.as_bytes()));
            }
        }
        let mut response = builder.body(self.body_text());
        response.extensions_mut().insert(self.0.clone());
        response
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Rejection {}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.response()
    }
}

impl From<aaa_core::http::Rejection> for Rejection {
    fn from(r: aaa_core::http::Rejection) -> Self {
        Rejection(r)
    }
}

fn admitted(req: &HttpRequest) -> Result<Admitted, Rejection> {
    let admitted = req
        .extensions()
        .get::<Admitted>()
        .cloned()
        .ok_or_else(|| Rejection(aaa_core::http::Rejection::not_installed()))?;
    // By now actix has routed: refuse to serve a route other than the one decided on (see the
    // crate's documentation), before the handler runs.
    let decided_on = req
        .extensions()
        .get::<Rc<crate::middleware::DecidedOn>>()
        .cloned()
        .ok_or_else(|| Rejection(aaa_core::http::Rejection::not_installed()))?;
    match crate::middleware::served(req, admitted.admission().route(), &decided_on) {
        crate::middleware::Served::Decided => Ok(admitted),
        _ => Err(Rejection(aaa_core::http::Rejection::misrouted())),
    }
}

/// The authenticated principal. Rejects anonymous callers with 401, and answers 500 when the
/// [`Aaa`](crate::Aaa) middleware is not installed.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Principal>);

impl Deref for Authenticated {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequest for Authenticated {
    type Error = Rejection;
    type Future = Ready<Result<Self, Rejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // An anonymous caller's 401, if it is the answer (actix's `Option<Authenticated>` turns
        // the refusal into `None`), is recorded with the completion.
        ready(admitted(req).and_then(|a| Ok(Authenticated(a.principal()?))))
    }
}

/// Handler-level authorization on a loaded resource, with the same policy as the middleware and
/// audited like its decisions.
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

impl FromRequest for Authorizer {
    type Error = Rejection;
    type Future = Ready<Result<Self, Rejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(admitted(req).map(Authorizer))
    }
}
