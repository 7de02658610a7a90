//! Findings of the review of the guard and its credentials: each test failed on the reviewed code.

use std::sync::Arc;

use aaa::{
    Action, Authorizer, Context, Evaluation, Guard, Identity, KeySet, KeyStore, Outcome, Resource,
    RouteBinding,
    audit::{EventKind, MemorySink},
    authn::Algorithm,
    http::{RejectionKind, RequestFacts},
};
use serde_json::json;

use crate::authn::{claims, clock, issuer, jwk_key, token};

/// `/things/{id}` needs an authenticated caller; `/health` is public.
#[derive(Debug)]
struct Things;

impl Authorizer for Things {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        match facts.matched_route() {
            Some("/health") => RouteBinding::Public,
            _ => RouteBinding::Protected {
                action: Action::new("read"),
                resource: Resource::new("Thing"),
            },
        }
    }
    fn authorize(&self, who: &Identity, _: &Action, _: &Resource, _: &Context) -> Evaluation {
        if who.is_authenticated() {
            Evaluation::permit(["authenticated"])
        } else {
            Evaluation::not_permitted()
        }
    }
}

/// A guard reading JWTs from `Authorization` and the cookie `access_token`, recording into a
/// memory sink.
fn guard() -> (Guard, Arc<MemorySink>) {
    let c = clock();
    let jwt = aaa::JwtAuthenticator::builder()
        .issuer(
            issuer(),
            KeyStore::fixed(KeySet::from_keys([jwk_key("p256")]), Arc::new(c.clone())),
        )
        .clock(Arc::new(c.clone()))
        .cookie("access_token")
        .build()
        .unwrap();
    let audit = Arc::new(MemorySink::new());
    let guard = Guard::builder()
        .authenticator(jwt)
        .policies(Things)
        .audit_arc(audit.clone())
        .clock(c)
        .build()
        .unwrap();
    (guard, audit)
}

/// A request for `route` with `headers` given as raw bytes.
fn request(route: &str, headers: &[(&str, &[u8])]) -> RequestFacts {
    let mut h = http::HeaderMap::new();
    for (name, value) in headers {
        h.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    RequestFacts::new(http::Method::GET, route)
        .with_matched_route(route)
        .with_headers(h)
        .with_peer("192.0.2.7:5000".parse().unwrap())
}

fn token_of(sub: &str) -> String {
    let mut c = claims();
    c["sub"] = json!(sub);
    token("p256", "ec-256", Algorithm::ES256, &c)
}

/// A bearer token and a token cookie are two credentials (400), even when the `Cookie` header
/// also holds a cookie whose value is not ASCII, as browsers send UTF-8 cookie values as is. The
/// reviewed code skipped such a `Cookie` header whole: the request was served as the header's
/// caller, and an application reading the cookie saw another one.
#[tokio::test]
async fn a_non_ascii_cookie_does_not_hide_a_second_token() {
    let (g, audit) = guard();
    let bearer = format!("Bearer {}", token_of("alice"));
    let cookie = format!(
        "access_token={}; theme=d\u{e9}j\u{e0}-vu",
        token_of("mallory")
    );
    let facts = request(
        "/things/{id}",
        &[
            ("authorization", bearer.as_bytes()),
            ("cookie", cookie.as_bytes()),
        ],
    );
    match g.check(&facts).await {
        Outcome::Reject(r) => assert_eq!(r.kind(), RejectionKind::InvalidRequest),
        Outcome::Proceed(a) => panic!("admitted as {:?}", a.identity.principal().map(|p| &p.id)),
    }
    let events = audit.events();
    assert_eq!(events.len(), 1);
    assert!(matches!(
        events[0].kind,
        EventKind::Authentication { ref reason, .. } if reason.as_deref() == Some("multiple_credentials")
    ));
}

/// The token cookie is found in a `Cookie` header that also holds a non-ASCII cookie: the reviewed
/// code refused the caller as anonymous (401) on a protected route.
#[tokio::test]
async fn a_non_ascii_cookie_does_not_hide_the_token_cookie() {
    let (g, _) = guard();
    let cookie = format!("theme=\u{e9}t\u{e9}; access_token={}", token_of("alice"));
    let facts = request("/things/{id}", &[("cookie", cookie.as_bytes())]);
    match g.check(&facts).await {
        Outcome::Proceed(a) => {
            assert_eq!(a.identity.principal().map(|p| p.id.as_str()), Some("alice"));
        }
        Outcome::Reject(r) => panic!("refused: {r:?}"),
    }
}

/// `access_token =x` is the cookie `access_token` to RFC 6265 §5.2 and to the `cookie` crate that
/// actix-web and axum-extra use: beside a bearer token it is a second credential.
#[tokio::test]
async fn a_cookie_name_spelled_with_whitespace_is_still_a_second_token() {
    let (g, _) = guard();
    let bearer = format!("Bearer {}", token_of("alice"));
    for cookie in [
        format!("access_token ={}", token_of("mallory")),
        format!("theme=dark;\taccess_token={}", token_of("mallory")),
    ] {
        let facts = request(
            "/health",
            &[
                ("authorization", bearer.as_bytes()),
                ("cookie", cookie.as_bytes()),
            ],
        );
        match g.check(&facts).await {
            Outcome::Reject(r) => assert_eq!(r.kind(), RejectionKind::InvalidRequest, "{cookie}"),
            Outcome::Proceed(_) => panic!("admitted with {cookie:?}"),
        }
    }
}
