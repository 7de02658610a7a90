//! Findings of an adversarial review of the HTTP-facing surface (2026-12-03): the first two
//! tests failed on the reviewed code; the third, a parity probe of odd requests, passed.

use std::{collections::HashMap, sync::Arc};

use aaa::{
    Action, Authorizer, Context, Evaluation, Guard, Identity, Resource, RouteBinding,
    audit::{EventKind, MemorySink},
    http::RequestFacts,
    tower::AaaLayer,
};
use axum::{Router, extract::Path, routing::get};

use super::send;

/// A policy file mapping `/users/{id}/docs/{id}`: refused at load since the review.
const REPEATED_NAME: &str = r#"
[[rules]]
id = "doc-one"
effect = "allow"
actions = ["docs:read"]
resources = ["Document"]
when = 'resource.id == "1"'

[[routes]]
method = "GET"
route = "/users/{id}/docs/{id}"
action = "docs:read"
resource = "Document"
id = "id"
"#;

/// Binds every route to reading the document named by the parameter `id` (the first one, as
/// `RequestFacts::param` reads it); allows document `1` only. An authorizer of the service's own,
/// which, unlike the policy file, nothing stops from binding a route that repeats a name.
#[derive(Debug)]
struct OnlyDocOne;

impl Authorizer for OnlyDocOne {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        let mut resource = Resource::new("Document");
        if let Some(id) = facts.param("id") {
            resource = resource.with_id(id);
        }
        RouteBinding::Protected {
            action: Action::new("docs:read"),
            resource,
        }
    }
    fn authorize(&self, _: &Identity, _: &Action, resource: &Resource, _: &Context) -> Evaluation {
        if resource.id.as_deref() == Some("1") {
            Evaluation::permit(["doc-one"])
        } else {
            Evaluation::not_permitted()
        }
    }
}

/// A route `/users/{id}/docs/{id}` (written so, or a router of documents `/docs/{id}` mounted
/// under a user `/users/{id}`): axum routes `/users/1/docs/2` with two parameters named `id`.
/// Before the review, the decision read one (the first, `1`) and the handler another (`2`, as
/// `Path<HashMap<..>>` or the second of `Path<(String, String)>`): document 2 was served on a
/// decision about document 1. Now the policy file refuses such a template at load, and the
/// guard refuses such a request (400, one record) whatever authorizer binds it, as the actix
/// adapter already did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_name_repeated_in_an_axum_route_is_not_decided_on_the_wrong_value() {
    let error = aaa::policy::PolicySet::from_toml(REPEATED_NAME, "review.toml").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("repeats the path parameter `id`"),
        "{error}"
    );
    for how in ["one route", "nest", "nest_service"] {
        let audit = Arc::new(MemorySink::new());
        let guard = Guard::builder()
            .authenticator(super::Bearer)
            .policies(OnlyDocOne)
            .audit_arc(audit.clone())
            .build()
            .unwrap();
        let read = get(|Path(p): Path<HashMap<String, String>>| async move {
            format!("document {}", p["id"])
        });
        let layer = AaaLayer::new(guard);
        let app = match how {
            // axum accepts the repeated name in one route too.
            "one route" => Router::new()
                .route("/users/{id}/docs/{id}", read)
                .layer(layer),
            "nest" => Router::new()
                .nest("/users/{id}", Router::new().route("/docs/{id}", read))
                .layer(layer),
            // The layer on the mounted router (outside it, no route would be known).
            _ => Router::new().nest_service(
                "/users/{id}",
                Router::new().route("/docs/{id}", read).layer(layer),
            ),
        };
        let addr = super::serve_axum_app(app).await;
        let r = send(
            addr,
            "GET",
            "/users/1/docs/2",
            &["Authorization: Bearer good-ann"],
        )
        .await;
        assert_eq!(r.status, 400, "{how}: {}", r.body);
        assert!(!r.body.contains("document"), "{how}: {}", r.body);
        // No receipt header unless asked for, on refusals too.
        assert_eq!(r.header(super::RECEIPT_HEADER), None, "{how}");
        let events = audit.events();
        assert_eq!(super::kinds(&events), ["authz Deny"], "{how}");
        let EventKind::Authorization { reason, .. } = &events[0].kind else {
            unreachable!()
        };
        assert_eq!(reason.as_str(), "malformed", "{how}");
        // Equal values change nothing: the route repeats the name.
        let same = send(
            addr,
            "GET",
            "/users/1/docs/1",
            &["Authorization: Bearer good-ann"],
        )
        .await;
        assert_eq!(same.status, 400, "{how}: {}", same.body);
    }
    // Distinct names are decided as before: document 1 is served, document 2 is not.
    let guard = Guard::builder()
        .authenticator(super::Bearer)
        .policies(OnlyDocOne)
        .audit(MemorySink::new())
        .build()
        .unwrap();
    let read =
        get(
            |Path(p): Path<HashMap<String, String>>| async move { format!("document {}", p["id"]) },
        );
    let app = Router::new()
        .nest("/users/{user}", Router::new().route("/docs/{id}", read))
        .layer(AaaLayer::new(guard));
    let addr = super::serve_axum_app(app).await;
    let ann = ["Authorization: Bearer good-ann"];
    let one = send(addr, "GET", "/users/1/docs/1", &ann).await;
    assert_eq!((one.status, one.body.as_str()), (200, "document 1"));
    assert_eq!(send(addr, "GET", "/users/1/docs/2", &ann).await.status, 403);
}

/// bob may read `/docs/1` (route level) but not delete it (the handler's check: only the owner,
/// ann): the answer is the handler's 403, refused by the handler-level denial recorded second.
/// Before the review, the receipt the 403 carried named the route-level *allow*: a client keeping
/// it as proof of how its request was decided was shown an allow. So was an anonymous caller
/// turned away with 401 by the `Authenticated` extractor on a public route. The receipt now
/// names the denial; an answer the route-level decision stands behind keeps naming it. The
/// guard's own refusals (a denial, an authentication failure), which carried no receipt, now
/// carry the receipt of their record too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_of_a_refused_request_does_not_name_an_allow() {
    for s in super::servers().await {
        let cases: [(&str, &str, &[&str], u16, &str); 6] = [
            (
                "DELETE",
                "/docs/1",
                &["Authorization: Bearer good-bob"],
                403,
                "authz Deny",
            ),
            ("GET", "/whoami", &[], 401, "authz Deny"),
            (
                "GET",
                "/docs/1",
                &["Authorization: Bearer good-bob"],
                200,
                "authz Allow",
            ),
            // Refused by the guard.
            ("GET", "/docs/1", &[], 401, "authz Deny"),
            (
                "GET",
                "/admin",
                &["Authorization: Bearer good-bob"],
                403,
                "authz Deny",
            ),
            (
                "GET",
                "/docs/1",
                &["Authorization: Bearer bad"],
                401,
                "authn Failure",
            ),
        ];
        for (method, path, headers, status, named) in cases {
            let before = s.audit.events().len();
            let r = send(s.addr, method, path, headers).await;
            assert_eq!(r.status, status, "{} {method} {path}: {}", s.name, r.body);
            let events = s.audit.events();
            let receipt = r
                .header(super::RECEIPT_HEADER)
                .unwrap_or_else(|| panic!("{} {method} {path}: no receipt", s.name));
            let seq: usize = receipt
                .split("seq=")
                .nth(1)
                .and_then(|s| s.split(';').next())
                .and_then(|s| s.trim().parse().ok())
                .unwrap();
            assert!(seq >= before, "{} {method} {path}: {receipt}", s.name);
            // The last decision of the request, the one its answer stands on.
            let last = events[before..]
                .iter()
                .rposition(|e| {
                    matches!(
                        e.kind,
                        EventKind::Authorization { .. } | EventKind::Authentication { .. }
                    )
                })
                .unwrap();
            assert_eq!(seq, before + last, "{} {method} {path}: {receipt}", s.name);
            let kind = match &events[seq].kind {
                EventKind::Authentication { outcome, .. } => format!("authn {outcome:?}"),
                _ => super::kinds(&events[seq..=seq]).remove(0),
            };
            assert_eq!(kind, named, "{} {method} {path}", s.name);
        }
    }
}

/// Odd requests to the same app on every adapter: the same status and the same records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_are_answered_and_recorded_alike() {
    let ann = "Authorization: Bearer good-ann";
    let long = format!("/docs/{}", "a".repeat(6000));
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("GET", "/docs/1".into(), vec![ann, ann]),
        ("GET", "/docs/1".into(), vec!["Authorization:"]),
        ("GET", "/docs/1".into(), vec!["Authorization: Basic YTpi"]),
        ("GET", "http://test/docs/1".into(), vec![ann]),
        ("OPTIONS", "*".into(), vec![ann]),
        ("OPTIONS", "/docs/1".into(), vec![ann]),
        // (HEAD: axum serves the GET handler, actix answers 405: the routers differ.)
        ("HEAD", "/docs/1".into(), vec![]),
        ("PATCH", "/docs/1".into(), vec![ann]),
        ("get", "/docs/1".into(), vec![ann]),
        ("GET", "/docs/%".into(), vec![ann]),
        ("GET", "/docs/%zz".into(), vec![ann]),
        ("GET", "/docs/a%00b".into(), vec![ann]),
        ("GET", "/docs/a%0d%0ab".into(), vec![ann]),
        ("GET", "/docs/".into(), vec![ann]),
        ("GET", "/docs/1/".into(), vec![ann]),
        ("GET", "/docs/1?x=%ff".into(), vec![ann]),
        ("GET", "/docs/%2561".into(), vec![ann]),
        ("GET", "/docs/a+b".into(), vec![ann]),
        ("GET", "/docs/a%2Bb".into(), vec![ann]),
        ("GET", "/docs/a%2fb".into(), vec![ann]),
        ("GET", "/docs/%e2%80%ae".into(), vec![ann]),
        ("GET", long.clone(), vec![ann]),
        ("GET", "/health".into(), vec!["Authorization: Bearer bad"]),
        (
            "GET",
            "/health".into(),
            vec!["Authorization: bearer  good-ann"],
        ),
        ("GET", "/whoami".into(), vec!["Authorization: Basic YTpi"]),
        ("DELETE", "/docs/1".into(), vec![]),
    ];
    let servers = super::servers().await;
    let mut differ = Vec::new();
    for (method, target, headers) in &cases {
        let mut seen = Vec::new();
        for s in &servers {
            let before = s.audit.events().len();
            let r = send(s.addr, method, target, headers).await;
            let events = s.audit.events();
            let kinds = super::kinds(&events[before..]);
            let ids: Vec<_> = events[before..]
                .iter()
                .filter_map(|e| e.target.as_ref()?.resource_id.clone())
                .collect();
            let body_start: String = r.body.chars().take(60).collect();
            seen.push((s.name, r.status, kinds, ids, body_start));
        }
        let first = &seen[0];
        if seen
            .iter()
            .any(|s| (s.1, &s.2, &s.3) != (first.1, &first.2, &first.3))
        {
            differ.push(format!(
                "{method} {}: {seen:?}",
                &target[..target.len().min(40)]
            ));
        }
    }
    for d in &differ {
        eprintln!("{d}");
    }
    assert!(differ.is_empty(), "{} cases differ", differ.len());
}
