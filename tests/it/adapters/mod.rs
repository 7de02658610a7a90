//! Both adapters over real HTTP on 127.0.0.1, with a raw HTTP/1.1 client so paths reach the
//! server byte for byte. Every scenario runs against every adapter and must give the same answers.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use aaa::tower::RECEIPT_HEADER;
use aaa::{
    Action, Authenticator, AuthnError, Authorizer as Policy, BoxFuture, Context, Evaluation, Guard,
    Identity, Principal, PrincipalKind, Resource, RouteBinding,
    audit::{EventKind, MemorySink},
    http::RequestFacts,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `Authorization: Bearer good-<id>[-admin]`.
#[derive(Debug)]
pub(super) struct Bearer;

impl Authenticator for Bearer {
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        let mut values = facts.headers().get_all("authorization").iter();
        let result = match (values.next(), values.next()) {
            (None, _) => Ok(Identity::Anonymous),
            (Some(_), Some(_)) => Err(AuthnError::MultipleCredentials),
            (Some(v), None) => match v.to_str().ok().and_then(|v| v.strip_prefix("Bearer good-")) {
                Some(id) => {
                    let p = Principal::new(id.trim_end_matches("-admin"), PrincipalKind::User, "t");
                    let p = if id.ends_with("-admin") {
                        p.with_roles(["admin"])
                    } else {
                        p
                    };
                    Ok(p.into())
                }
                None => Err(AuthnError::Invalid("the access token is not valid")),
            },
        };
        Box::pin(std::future::ready(result))
    }
}

/// `/health` public; `/docs/{id}` readable by anyone authenticated, deletable only by its owner
/// (checked in the handler); `/admin` for admins; `/unmapped` not in the policy.
#[derive(Debug)]
struct Rules;

impl Policy for Rules {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        let protected = |action: &str, resource: Resource| RouteBinding::Protected {
            action: Action::new(action),
            resource,
        };
        match facts.matched_route() {
            // `/{file:.*}`: public files (only the actix routing tests register it).
            Some("/health" | "/whoami" | "/{file:.*}") => RouteBinding::Public,
            Some("/docs/{id}") => protected(
                "read",
                Resource::new("Document").with_id(facts.param("id").unwrap_or_default()),
            ),
            Some("/admin") => protected("admin", Resource::new("Admin")),
            _ => RouteBinding::Unmapped,
        }
    }

    fn authorize(
        &self,
        who: &Identity,
        action: &Action,
        res: &Resource,
        _: &Context,
    ) -> Evaluation {
        let Some(p) = who.principal() else {
            return Evaluation::not_permitted();
        };
        match action.as_str() {
            "read" => Evaluation::permit(["read"]),
            "admin" if p.roles.contains("admin") => Evaluation::permit(["admins"]),
            "delete" if res.attributes.get("owner").and_then(|v| v.as_str()) == Some(&p.id) => {
                Evaluation::permit(["owner-deletes"])
            }
            _ => Evaluation::not_permitted(),
        }
    }
}

/// Serves `app` on `listener` (with the peer's address known to the layer).
pub(super) fn serve_axum(listener: tokio::net::TcpListener, app: axum::Router) {
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
}

/// Serves `app` on 127.0.0.1:0; its address.
pub(super) async fn serve_axum_app(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_axum(listener, app);
    addr
}

/// The records' kinds, shortly: `authz Allow`, `authz Deny`, `done 401`, `other`.
pub(super) fn kinds(events: &[aaa::audit::AuditEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e.kind {
            EventKind::RequestCompleted { status, .. } => format!("done {status}"),
            EventKind::Authorization { decision, .. } => format!("authz {decision:?}"),
            _ => "other".to_owned(),
        })
        .collect()
}

/// Starts `$app` (an expression using `$aaa`, the middleware made from `$guard`) on
/// 127.0.0.1:0 with one worker; gives its address.
macro_rules! serve_actix {
    ($guard:expr, $aaa:ident => $app:expr) => {{
        let aaa = aaa::actix::Aaa::new($guard);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = actix_web::HttpServer::new(move || {
            #[allow(unused_variables, reason = "an app may do without the middleware")]
            let $aaa = aaa.clone();
            $app
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        addr
    }};
}

mod actix_app;
mod actix_edges;
mod actix_misroutes;
mod actix_routing;
mod anonymous_and_errors;
mod axum_app;
mod axum_edges;
mod http_review;
mod refusals_and_errors;

/// What `/health` adds to its answer when asked with `X-Echo`: the headers the handler sees after
/// the layer (the tower adapter lends them to the guard and puts them back).
pub(crate) fn echo<'a>(get: impl Fn(&str) -> Option<&'a str>) -> String {
    match get("x-echo") {
        Some(echo) => format!(
            " echo={echo} authorization={}",
            get("authorization").unwrap_or("-")
        ),
        None => String::new(),
    }
}

/// The statuses of the completion records in `audit`, in order.
pub(crate) fn completions(audit: &MemorySink) -> Vec<u16> {
    audit
        .events()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::RequestCompleted { status, .. } => Some(status),
            _ => None,
        })
        .collect()
}

/// A running app under test.
pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) audit: Arc<MemorySink>,
    pub(crate) admin_hits: Arc<AtomicUsize>,
    /// Whether `/outside` is served without the middleware.
    pub(crate) has_outside: bool,
}

pub(crate) fn guard(audit: Arc<impl aaa::audit::AuditSink + 'static>) -> Guard {
    Guard::builder()
        .authenticator(Bearer)
        .policies(Rules)
        .audit_arc(audit)
        .build()
        .unwrap()
}

/// The same app on every adapter: axum, actix with `App::wrap`, actix with `Scope::wrap`.
pub(crate) async fn servers() -> Vec<Server> {
    vec![
        axum_app::start().await,
        actix_app::start(true).await,
        actix_app::start(false).await,
    ]
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `method target` with extra header lines, exactly as written.
pub(crate) async fn send(addr: SocketAddr, method: &str, target: &str, headers: &[&str]) -> Reply {
    send_from(None, addr, method, target, headers).await
}

/// [`send`], from the loopback address `peer` (any of 127.0.0.0/8) when given.
pub(crate) async fn send_from(
    peer: Option<std::net::IpAddr>,
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[&str],
) -> Reply {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    exchange(peer, addr, req.as_bytes()).await
}

/// Sends the whole `request`, byte for byte, over a new connection from the loopback address
/// `peer` (when given) and reads the answer until the server closes the connection.
pub(crate) async fn exchange(
    peer: Option<std::net::IpAddr>,
    addr: SocketAddr,
    request: &[u8],
) -> Reply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(peer) = peer {
        socket.bind(SocketAddr::new(peer, 0)).unwrap();
    }
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    // A server may close before reading all of a request it refused (a reset once its answer is
    // sent): what it sent counts.
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_confusion_never_reaches_the_admin_handler() {
    for s in servers().await {
        path_confusion_never_reaches_the_admin_handler_on(&s).await;
    }
}

async fn path_confusion_never_reaches_the_admin_handler_on(s: &Server) {
    eprintln!("adapter: {}", s.name);
    let user = ["Authorization: Bearer good-ann"];
    for target in [
        "/admin/../docs/1",
        "//admin",
        "/ADMIN",
        "/admin/",
        "/admin%2F..",
        "/%61dmin",
        "/admin;x",
        "/docs/1/../../admin",
        "/docs/%2e%2e/admin",
        "/docs/%2e%2e%2fadmin",
        "/docs/%c0%ae%c0%ae",
        "/docs/%ff",
        "/./admin",
    ] {
        let r = send(s.addr, "GET", target, &user).await;
        // Either refused, or served as what the router matched (a document whose id is the
        // decoded text): never the admin handler.
        assert!(
            !r.body.contains("admin area"),
            "{target}: {} {}",
            r.status,
            r.body
        );
        if r.status == 200 {
            assert!(r.body.starts_with("ann reads "), "{target}: {}", r.body);
        }
    }
    assert_eq!(s.admin_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractors() {
    for s in servers().await {
        extractors_on(&s).await;
    }
}

async fn extractors_on(s: &Server) {
    eprintln!("adapter: {}", s.name);
    let ann = ["Authorization: Bearer good-ann"];
    let r = send(s.addr, "GET", "/health", &ann).await;
    assert_eq!(r.body, "ok ann", "Option<Authenticated> with a principal");
    assert!(
        r.header(RECEIPT_HEADER)
            .unwrap()
            .starts_with("log=\"memory\"; seq=")
    );
    // The handler sees the request's headers, the credentials included.
    let r = send(s.addr, "GET", "/health", &[ann[0], "X-Echo: hi"]).await;
    assert_eq!(
        r.body, "ok ann echo=hi authorization=Bearer good-ann",
        "headers reach the handler"
    );
    // A public route whose handler requires a caller: an anonymous caller's 401 is recorded as
    // a denial, like every refusal.
    let r = send(s.addr, "GET", "/whoami", &ann).await;
    assert_eq!(r.body, "ann");
    let before = s.audit.events().len();
    let r = send(s.addr, "GET", "/whoami", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let kinds: Vec<String> = s.audit.events()[before..]
        .iter()
        .map(|e| match &e.kind {
            EventKind::Authorization { decision, .. } => format!("{decision:?}"),
            EventKind::RequestCompleted { status, .. } => status.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["Allow", "Deny", "401"]);
    // Outside the layer, the extractor says the layer is missing.
    if s.has_outside {
        let r = send(s.addr, "GET", "/outside", &[]).await;
        assert_eq!(r.status, 500);
        assert!(r.body.contains("not installed"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_the_peer_and_the_route() {
    for s in servers().await {
        eprintln!("adapter: {}", s.name);
        send(
            s.addr,
            "GET",
            "/docs/1",
            &["Authorization: Bearer good-ann"],
        )
        .await;
        let events = s.audit.events();
        let request = events[0].request.as_ref().unwrap();
        assert_eq!(request.peer_ip.unwrap().to_string(), "127.0.0.1");
        assert_eq!(request.method.as_deref(), Some("GET"));
        let target = events[0].target.as_ref().unwrap();
        assert_eq!(target.route.as_deref(), Some("/docs/{id}"));
        assert_eq!(target.resource_id.as_deref(), Some("1"));
        let EventKind::RequestCompleted { status, .. } = events[1].kind else {
            panic!("{:?}", events[1])
        };
        assert_eq!(status, 200);
    }
}

/// A request abandoned while its handler runs (the client went away, the server dropped the
/// request) still gets its completion record, with status 499.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_request_is_recorded_as_499() {
    use tower_crate::{Layer as _, Service as _, ServiceExt as _};
    let audit = Arc::new(MemorySink::new());
    let (entered, handler_runs) = tokio::sync::oneshot::channel::<()>();
    let entered = Arc::new(std::sync::Mutex::new(Some(entered)));
    let inner = tower_crate::service_fn(move |_: http::Request<String>| {
        if let Some(entered) = entered.lock().unwrap().take() {
            let _ = entered.send(());
        }
        std::future::pending::<Result<http::Response<String>, std::convert::Infallible>>()
    });
    let mut service = aaa::tower::AaaLayer::new(guard(audit.clone())).layer(inner);
    let mut request = http::Request::get("/health").body(String::new()).unwrap();
    request.extensions_mut().insert(aaa::tower::MatchedRoute {
        template: "/health".to_owned(),
        params: Vec::new(),
    });
    let answer = service.ready().await.unwrap().call(request);
    let task = tokio::spawn(answer);
    handler_runs.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let kinds: Vec<_> = audit
        .events()
        .iter()
        .map(|e| match e.kind {
            EventKind::RequestCompleted { status, .. } => format!("done {status}"),
            _ => "decision".to_owned(),
        })
        .collect();
    assert_eq!(kinds, ["decision", "done 499"]);
}

/// The layer leaves an authenticated caller's principal in the request extensions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_principal_is_in_the_extensions() {
    use tower_crate::{Layer as _, Service as _, ServiceExt as _};
    let inner = tower_crate::service_fn(|request: http::Request<String>| async move {
        let who = request
            .extensions()
            .get::<Arc<Principal>>()
            .map_or_else(|| "nobody".to_owned(), |p| p.id.clone());
        Ok::<_, std::convert::Infallible>(http::Response::new(who))
    });
    let mut service = aaa::tower::AaaLayer::new(guard(Arc::new(MemorySink::new()))).layer(inner);
    for (auth, want) in [(Some("Bearer good-ann"), "ann"), (None, "nobody")] {
        let mut request = http::Request::get("/health");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let mut request = request.body(String::new()).unwrap();
        request.extensions_mut().insert(aaa::tower::MatchedRoute {
            template: "/health".to_owned(),
            params: Vec::new(),
        });
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.into_body(), want);
    }
}

/// The two adapters' rejections are errors alike, so services can `?` them into their own.
#[test]
fn rejections_are_errors_on_both_adapters() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<aaa::tower::Rejection>();
    is_error::<aaa::actix::Rejection>();
}

/// A handler that panics is recorded as 500 when the panic passes through the layer, even if a
/// layer outside catches it and drops the response future only later; and only once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_recorded_once_as_500() {
    use tower_crate::{Layer as _, Service as _, ServiceExt as _};
    let audit = Arc::new(MemorySink::new());
    let inner = tower_crate::service_fn(|_: http::Request<String>| async {
        if true {
            panic!("the handler panicked");
        }
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let mut service = aaa::tower::AaaLayer::new(guard(audit.clone())).layer(inner);
    let mut request = http::Request::get("/health").body(String::new()).unwrap();
    request.extensions_mut().insert(aaa::tower::MatchedRoute {
        template: "/health".to_owned(),
        params: Vec::new(),
    });
    let mut answer = Box::pin(service.ready().await.unwrap().call(request));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // What a panic-catching layer outside does: catch, answer 500, drop the future later.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = answer.as_mut().poll(&mut cx);
    }));
    assert!(caught.is_err());
    assert_eq!(completions(&audit), [500], "recorded while unwinding");
    drop(answer);
    assert_eq!(completions(&audit), [500], "and not again when dropped");
}
