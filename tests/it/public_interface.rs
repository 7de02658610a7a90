//! Uses only the public API of the `aaa` facade, the way a service would.

use std::sync::Arc;

use aaa::{
    Action, Authenticator, AuthnError, Authorizer, BoxFuture, Context, Decision, Evaluation,
    FixedClock, Guard, Identity, Outcome, Principal, PrincipalKind, Resource, RouteBinding,
    Timestamp,
    audit::{EventKind, MemorySink},
    http::{PROBLEM_JSON, RequestFacts},
};

#[derive(Debug)]
struct Header;

impl Authenticator for Header {
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        let id = facts
            .headers()
            .get("x-test-user")
            .map(|v| v.to_str().unwrap().to_owned());
        Box::pin(async move {
            Ok(match id {
                Some(id) => Principal::new(id, PrincipalKind::User, "test").into(),
                None => Identity::Anonymous,
            })
        })
    }
}

#[derive(Debug)]
struct OwnerOnly;

impl Authorizer for OwnerOnly {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        match facts.matched_route() {
            Some("/notes/{owner}") => RouteBinding::Protected {
                action: Action::new("read"),
                resource: Resource::new("Note")
                    .with_attribute("owner", facts.param("owner").unwrap_or_default()),
            },
            _ => RouteBinding::Unmapped,
        }
    }

    fn authorize(&self, who: &Identity, _: &Action, res: &Resource, _: &Context) -> Evaluation {
        let owner = res.attributes.get("owner").and_then(|v| v.as_str());
        match who.principal() {
            Some(p) if Some(p.id.as_str()) == owner => Evaluation::permit(["owner"]),
            _ => Evaluation::not_permitted(),
        }
    }
}

fn facts(user: &str, owner: &str) -> RequestFacts {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-test-user", user.parse().unwrap());
    RequestFacts::new(http::Method::GET, format!("/notes/{owner}"))
        .with_matched_route("/notes/{owner}")
        .with_param("owner", owner)
        .with_headers(headers)
}

#[tokio::test]
async fn a_service_builds_and_uses_a_guard() {
    let audit = Arc::new(MemorySink::new());
    let guard = Guard::builder()
        .authenticator(Header)
        .policies(OwnerOnly)
        .audit_arc(audit.clone())
        .clock(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)))
        .build()
        .unwrap();

    let Outcome::Proceed(ok) = guard.check(&facts("ann", "ann")).await else {
        panic!("the owner may read")
    };
    assert_eq!(ok.evaluation.decision, Decision::Allow);
    guard.complete(&ok, 200).await.unwrap();

    let Outcome::Reject(no) = guard.check(&facts("bob", "ann")).await else {
        panic!("bob may not read ann's notes")
    };
    let response = no.to_response();
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["content-type"], PROBLEM_JSON);

    let events = audit.events();
    assert_eq!(events.len(), 3);
    assert!(matches!(
        events[2].kind,
        EventKind::Authorization {
            decision: Decision::Deny,
            ..
        }
    ));
    assert!(
        events
            .iter()
            .all(|e| e.time == Timestamp::from_unix_seconds(1_700_000_000))
    );
}
