//! The docs_service demo (examples/docs_service), started on 127.0.0.1:0 on axum and on actix-web,
//! with a memory sink beside its audit log so the suite can count records.

#[path = "../../examples/docs_service/demo.rs"]
pub(crate) mod demo;

#[path = "../../examples/docs_service/app.rs"]
mod axum_app;

#[path = "../../examples/docs_service_actix/app.rs"]
mod actix_app;

use std::{net::SocketAddr, sync::Arc};

use aaa::audit::MemorySink;
use tempfile::TempDir;

pub(crate) use axum_app::router;
pub(crate) use demo::Demo;
pub(crate) use demo::unmapped;

/// A running demo.
pub(crate) struct Running {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) demo: Arc<Demo>,
    pub(crate) events: Arc<MemorySink>,
    dir: TempDir,
}

impl Running {
    /// Makes everything written durable, covers it with a checkpoint, and verifies the log.
    pub(crate) async fn verify_log(&self) -> aaa::audit::VerifyReport {
        self.demo
            .verify_log(self.dir.path())
            .await
            .unwrap_or_else(|e| panic!("[{}] the audit log does not verify: {e}", self.name))
    }

    /// An `Authorization` header line with a token of this demo's identity provider for `user`.
    pub(crate) fn bearer(&self, user: &str, mfa: bool) -> String {
        let token = self.demo.idp.token(user, mfa, self.demo.now()).unwrap();
        format!("Authorization: Bearer {token}")
    }

    /// The directory of the audit log's segments.
    pub(crate) fn log_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("log")
    }

    /// The audit log's files, concatenated.
    pub(crate) fn log_text(&self) -> String {
        let mut text = String::new();
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path().join("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
        }
        text
    }
}

fn build(
    addr: SocketAddr,
    trust: Option<&str>,
    own_idp: bool,
) -> (Arc<Demo>, Arc<MemorySink>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(MemorySink::new());
    let mut options = demo::Options::new(dir.path());
    // A mesh proxy on 127.0.0.2, so the suite can send what only a trusted proxy may.
    options.trusted_proxy = "127.0.0.2/32".to_owned();
    if let Some(issuer) = trust {
        options.issuer = Some(issuer.to_owned());
        options.audience = Some(demo::AUDIENCE.to_owned());
    }
    options.demo_idp = own_idp;
    let demo = Arc::new(Demo::new(&options, addr, Some(events.clone())).unwrap());
    (demo, events, dir)
}

/// The demo on axum.
pub(crate) async fn axum() -> Running {
    axum_trusting(None).await
}

/// The demo on axum, also trusting the OIDC issuer at `issuer` (`--issuer URL --audience AUD`).
pub(crate) async fn axum_trusting(issuer: Option<&str>) -> Running {
    axum_with(issuer, true).await
}

/// The demo on axum, trusting `issuer` too and, unless `own_idp`, only it (`--no-demo-idp`).
pub(crate) async fn axum_with(issuer: Option<&str>, own_idp: bool) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (demo, events, dir) = build(addr, issuer, own_idp);
    tokio::spawn(axum_app::serve(listener, demo.clone()));
    Running {
        name: "axum",
        addr,
        demo,
        events,
        dir,
    }
}

/// The demo on actix-web.
pub(crate) async fn actix() -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (demo, events, dir) = build(addr, None, true);
    let shared = demo.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(shared.clone()))
            .wrap(actix_app::middleware(&shared))
            .configure(actix_app::routes)
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Running {
        name: "actix",
        addr,
        demo,
        events,
        dir,
    }
}

/// The demo's store: a create never replaces a document (the id check and the insertion are one
/// step, so two concurrent creates of one id across tenants cannot overwrite each other), and an
/// update never recreates a document deleted meanwhile (found by a review, 2026-12-03).
#[test]
fn the_demo_store_neither_replaces_on_create_nor_recreates_on_update() {
    let store = demo::Store::seeded();
    let doc = |id: &str, tenant: &str, owner: &str| demo::Doc {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        owner: owner.to_owned(),
        classification: "internal".to_owned(),
        text: format!("{tenant}'s"),
    };
    assert!(store.insert_new(doc("n1", "acme", "alice")));
    // The second create of `n1` (another tenant's, having checked the id was free) is refused.
    assert!(!store.insert_new(doc("n1", "globex", "dave")));
    let kept = store.get("n1").unwrap();
    assert_eq!(
        (kept.tenant.as_str(), kept.owner.as_str()),
        ("acme", "alice")
    );
    assert!(
        !store.insert_new(doc("d4", "acme", "alice")),
        "a seeded document"
    );
    assert_eq!(store.get("d4").unwrap().tenant, "globex");
    // Updated in place; gone once deleted, and not recreated by a late update.
    let updated = store.update_text("n1", "new text".to_owned()).unwrap();
    assert_eq!(
        (updated.text.as_str(), updated.tenant.as_str()),
        ("new text", "acme")
    );
    assert!(store.remove("n1").is_some());
    assert!(store.update_text("n1", "late".to_owned()).is_none());
    assert!(store.get("n1").is_none());
}
