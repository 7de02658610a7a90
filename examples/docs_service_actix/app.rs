//! The documents service's routes on actix-web: the same routes, policy and users as the axum
//! version in `../docs_service/app.rs`.

use std::{collections::HashMap, sync::Arc};

use aaa::actix::{Aaa, Authenticated, Authorizer, Rejection};
use actix_web::{HttpResponse, http::StatusCode, web};

use super::demo::Demo;

type Shared = web::Data<Arc<Demo>>;
type Query = web::Query<HashMap<String, String>>;

/// Registers the routes (wrap the app with [`middleware`]).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(|| async { "ok" }))
        .route("/idp/token", web::post().to(token))
        .route("/.well-known/jwks.json", web::get().to(jwks))
        .route(
            "/.well-known/openid-configuration",
            web::get().to(discovery),
        )
        .service(web::resource("/docs").get(list).post(create))
        .service(
            web::resource("/docs/{id}")
                .get(read)
                .put(update)
                .delete(delete),
        )
        .route("/docs/{id}/share", web::post().to(share))
        .route("/audit-logs/{tenant}", web::get().to(audit_log))
        .route("/admin/policy", web::get().to(admin));
}

/// The middleware, configured as on axum.
pub(crate) fn middleware(demo: &Demo) -> Aaa {
    Aaa::new(demo.guard.clone()).audit_receipt_header(true)
}

/// What the demo's identity provider answers when it is off (`--no-demo-idp`).
fn idp_off() -> HttpResponse {
    HttpResponse::NotFound().body("the demo identity provider is off")
}

async fn jwks(d: Shared) -> HttpResponse {
    if !d.own_idp {
        return idp_off();
    }
    HttpResponse::Ok().json(&d.idp.jwks)
}

async fn discovery(d: Shared) -> HttpResponse {
    if !d.own_idp {
        return idp_off();
    }
    HttpResponse::Ok().json(d.idp.discovery())
}

async fn token(d: Shared, q: Query) -> HttpResponse {
    if !d.own_idp {
        return idp_off();
    }
    let user = q.get("user").map(String::as_str).unwrap_or_default();
    let mfa = q.get("mfa").is_some_and(|v| v == "true");
    match d.idp.token(user, mfa, d.now()) {
        Some(token) => HttpResponse::Ok().body(token),
        None => HttpResponse::NotFound().body("no such demo user"),
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().body("no such document")
}

async fn list(d: Shared, authz: Authorizer) -> HttpResponse {
    let mut visible = Vec::new();
    for doc in d.store.all() {
        if authz.check("docs:list", &doc.resource()).await.is_ok() {
            visible.push(doc);
        }
    }
    HttpResponse::Ok().json(visible)
}

async fn create(
    d: Shared,
    who: Authenticated,
    authz: Authorizer,
    q: Query,
    text: String,
) -> Result<HttpResponse, Rejection> {
    let doc = match d.draft(&who, &q, text) {
        Ok(doc) => doc,
        Err((status, why)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            return Ok(HttpResponse::build(status).body(why));
        }
    };
    authz.check("docs:create", &doc.draft_resource()).await?;
    if !d.store.insert_new(doc.clone()) {
        return Ok(HttpResponse::Conflict().body("give a new ?id="));
    }
    Ok(HttpResponse::Created().json(doc))
}

async fn read(d: Shared, id: web::Path<String>) -> HttpResponse {
    d.store
        .get(&id)
        .map_or_else(not_found, |doc| HttpResponse::Ok().json(doc))
}

async fn update(d: Shared, id: web::Path<String>, text: String) -> HttpResponse {
    d.store
        .update_text(&id, text)
        .map_or_else(not_found, |doc| HttpResponse::Ok().json(doc))
}

async fn delete(d: Shared, id: web::Path<String>) -> HttpResponse {
    d.store
        .remove(&id)
        .map_or_else(not_found, |_| HttpResponse::NoContent().finish())
}

async fn share(d: Shared, id: web::Path<String>) -> HttpResponse {
    d.store.get(&id).map_or_else(not_found, |doc| {
        HttpResponse::Ok().body(format!("shared {}", doc.id))
    })
}

async fn audit_log(d: Shared, tenant: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "tenant": tenant.into_inner(), "log": d.audit.origin() }))
}

async fn admin(who: Authenticated) -> String {
    format!("hello {}, the admin console is yours", who.id)
}
