//! The documents service's routes on axum.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use aaa::tower::{AaaLayer, Authenticated, Authorizer, Rejection};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};

use super::demo::{Demo, Doc};

type Shared = State<Arc<Demo>>;

/// The service: documents, an audit-log route for auditors, an admin route, a public health
/// route and the demo identity provider, all behind one `AaaLayer`.
pub(crate) fn router(demo: Arc<Demo>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/idp/token", post(token))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/docs", get(list).post(create))
        .route("/docs/{id}", get(read).put(update).delete(delete))
        .route("/docs/{id}/share", post(share))
        .route("/audit-logs/{tenant}", get(audit_log))
        .route("/admin/policy", get(policy_version))
        .layer(AaaLayer::new(demo.guard.clone()).audit_receipt_header(true))
        .with_state(demo)
}

/// Serves `router` on `listener` with the peer address known to the layer.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    demo: Arc<Demo>,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(demo).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// What the demo's identity provider answers when it is off (`--no-demo-idp`).
fn idp_off() -> Response {
    (StatusCode::NOT_FOUND, "the demo identity provider is off").into_response()
}

async fn jwks(State(d): Shared) -> Response {
    if !d.own_idp {
        return idp_off();
    }
    Json(d.idp.jwks.clone()).into_response()
}

async fn discovery(State(d): Shared) -> Response {
    if !d.own_idp {
        return idp_off();
    }
    Json(d.idp.discovery()).into_response()
}

async fn token(State(d): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    if !d.own_idp {
        return idp_off();
    }
    let user = q.get("user").map(String::as_str).unwrap_or_default();
    let mfa = q.get("mfa").is_some_and(|v| v == "true");
    match d.idp.token(user, mfa, d.now()) {
        Some(token) => token.into_response(),
        None => (StatusCode::NOT_FOUND, "no such demo user").into_response(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such document").into_response()
}

async fn list(State(d): Shared, authz: Authorizer) -> Json<Vec<Doc>> {
    let mut visible = Vec::new();
    for doc in d.store.all() {
        if authz.check("docs:list", &doc.resource()).await.is_ok() {
            visible.push(doc);
        }
    }
    Json(visible)
}

async fn create(
    State(d): Shared,
    who: Authenticated,
    authz: Authorizer,
    Query(q): Query<HashMap<String, String>>,
    text: String,
) -> Result<Response, Rejection> {
    let doc = match d.draft(&who, &q, text) {
        Ok(doc) => doc,
        Err((status, why)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            return Ok((status, why).into_response());
        }
    };
    authz.check("docs:create", &doc.draft_resource()).await?;
    if !d.store.insert_new(doc.clone()) {
        return Ok((StatusCode::CONFLICT, "give a new ?id=").into_response());
    }
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

async fn read(State(d): Shared, Path(id): Path<String>) -> Response {
    d.store
        .get(&id)
        .map_or_else(not_found, |doc| Json(doc).into_response())
}

async fn update(State(d): Shared, Path(id): Path<String>, text: String) -> Response {
    d.store
        .update_text(&id, text)
        .map_or_else(not_found, |doc| Json(doc).into_response())
}

async fn delete(State(d): Shared, Path(id): Path<String>) -> Response {
    d.store
        .remove(&id)
        .map_or_else(not_found, |_| StatusCode::NO_CONTENT.into_response())
}

async fn share(State(d): Shared, Path(id): Path<String>) -> Response {
    d.store.get(&id).map_or_else(not_found, |doc| {
        format!("shared {}", doc.id).into_response()
    })
}

async fn audit_log(State(d): Shared, Path(tenant): Path<String>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "tenant": tenant, "log": d.audit.origin() }))
}

async fn policy_version(who: Authenticated) -> String {
    format!("hello {}, the admin console is yours", who.id)
}
