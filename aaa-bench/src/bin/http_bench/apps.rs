//! The apps `http-bench` serves, one per variant: the same one-line handler, bare, behind a
//! plain JWT middleware (jsonwebtoken EdDSA, what most services write), and behind the full aaa
//! layer (EdDSA token, the docs-service policy with the resource's attributes, audit to files).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

#[path = "../../../../examples/docs_service/demo.rs"]
mod demo;

/// Every variant, bare first within each framework.
pub(crate) const VARIANTS: &[&str] = &[
    "axum-bare",
    "axum-jwt",
    "axum-jwt_dalek",
    "axum-aaa",
    "axum-aaa_unaudited",
    "axum-aaa_cached",
    "axum-aaa_cached_unaudited",
    "axum-aaa_strict",
    "actix-bare",
    "actix-jwt",
    "actix-jwt_dalek",
    "actix-aaa",
    "actix-aaa_unaudited",
    "actix-aaa_cached",
    "actix-aaa_cached_unaudited",
    "actix-aaa_strict",
];

/// Serves `variant` on 127.0.0.1 with one worker; prints the address and the request to send.
pub(crate) fn serve(variant: &str, dir: PathBuf) {
    let (framework, wrap) = variant.split_once('-').unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let mut options = demo::Options::new(dir);
    // `aaa`: decisions are queued for the log (written and signed within milliseconds) and the
    // request does not wait for the disk; `aaa_strict`: the writer's default, where each
    // authorization decision waits for its group commit (`fdatasync`).
    // `aaa_cached`: as `aaa`, with the verified-token cache (the other variants verify every
    // token, like the JWT-only middleware).
    // `aaa_cached_unaudited`: the same without the log, to show what the log costs.
    options.token_cache = if wrap.starts_with("aaa_cached") {
        10_000
    } else {
        0
    };
    options.unaudited = wrap.ends_with("_unaudited");
    if wrap == "aaa" || wrap.starts_with("aaa_cached") {
        options.durability = Some(aaa::audit::DurabilityPolicy::all(
            aaa::audit::Durability::Block(std::time::Duration::from_millis(100)),
        ));
    }
    // `jwt_dalek`: the same JWT middleware, with jsonwebtoken's Ed25519 check made as aaa makes
    // it (ed25519-dalek, the key decoded once).
    if wrap == "jwt_dalek" {
        std::sync::LazyLock::force(&DALEK_PROVIDER)
            .install_default()
            .unwrap();
    }
    let wrap = match wrap {
        w if w.starts_with("aaa") => "aaa",
        "jwt_dalek" => "jwt",
        w => w,
    };
    options.policy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/policies/docs_service.toml"
    )
    .into();
    let demo = Arc::new(demo::Demo::new(&options, addr, None).unwrap());
    let token = demo.idp.token("alice", false, demo.now()).unwrap();
    println!("{addr}");
    println!(
        "GET /docs/d1 HTTP/1.1\\r\\nHost: bench\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n"
    );
    let jwt = Arc::new(Jwt::new(&demo));
    match framework {
        "axum" => serve_axum(std_listener, wrap, demo, jwt),
        "actix" => serve_actix(std_listener, wrap, demo, jwt),
        other => panic!("unknown framework {other}"),
    }
}

/// jsonwebtoken's `aws_lc_rs` provider with its Ed25519 verifier replaced by aaa's check:
/// `ed25519_dalek`'s `verify`, with the key decoded once (jsonwebtoken's own `rust_crypto`
/// provider, which the bench cannot enable beside `aws_lc_rs` without building RustCrypto's RSA
/// and ECDSA crates into the workspace, makes the same check but decodes the key on every call,
/// about 9 µs more here).
static DALEK_PROVIDER: std::sync::LazyLock<jsonwebtoken::crypto::CryptoProvider> =
    std::sync::LazyLock::new(|| jsonwebtoken::crypto::CryptoProvider {
        verifier_factory: dalek_verifier,
        ..jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.clone()
    });

fn dalek_verifier(
    alg: &jsonwebtoken::Algorithm,
    key: &jsonwebtoken::DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn jsonwebtoken::crypto::JwtVerifier>> {
    if *alg != jsonwebtoken::Algorithm::EdDSA {
        return (jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.verifier_factory)(alg, key);
    }
    // The bench verifies with one key: decoded on first use, then reused.
    static DECODED: std::sync::OnceLock<ed25519_dalek::VerifyingKey> = std::sync::OnceLock::new();
    let bytes = <&[u8; 32]>::try_from(key.try_get_as_bytes()?)
        .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidEddsaKey)?;
    let key = match DECODED.get() {
        Some(decoded) if decoded.as_bytes() == bytes => *decoded,
        _ => {
            let decoded = ed25519_dalek::VerifyingKey::from_bytes(bytes)
                .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidEddsaKey)?;
            let _ = DECODED.set(decoded);
            decoded
        }
    };
    Ok(Box::new(DalekVerifier(key)))
}

struct DalekVerifier(ed25519_dalek::VerifyingKey);

impl jsonwebtoken::signature::Verifier<Vec<u8>> for DalekVerifier {
    fn verify(
        &self,
        msg: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        use ed25519_dalek::Verifier;
        ed25519_dalek::Signature::from_slice(signature)
            .and_then(|signature| self.0.verify(msg, &signature))
            .map_err(|_| jsonwebtoken::signature::Error::new())
    }
}

impl jsonwebtoken::crypto::JwtVerifier for DalekVerifier {
    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        jsonwebtoken::Algorithm::EdDSA
    }
}

/// What a hand-written JWT middleware does: decode and validate with jsonwebtoken.
struct Jwt {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

impl Jwt {
    fn new(demo: &demo::Demo) -> Self {
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(demo.idp.jwks["keys"][0].clone()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_audience(&[demo::AUDIENCE]);
        validation.set_issuer(&[&demo.idp.issuer]);
        Jwt {
            key: jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
            validation,
        }
    }

    fn verify(&self, authorization: Option<&[u8]>) -> bool {
        let Some(token) = authorization
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &self.validation).is_ok()
    }
}

fn serve_axum(listener: std::net::TcpListener, wrap: &str, demo: Arc<demo::Demo>, jwt: Arc<Jwt>) {
    use axum::{http::StatusCode, middleware::Next, response::IntoResponse};
    let router = axum::Router::new().route("/docs/{id}", axum::routing::get(|| async { "ok" }));
    let router = match wrap {
        "bare" => router,
        "jwt" => router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: Next| {
                let jwt = jwt.clone();
                async move {
                    let auth = req.headers().get("authorization").map(|v| v.as_bytes());
                    if jwt.verify(auth) {
                        next.run(req).await
                    } else {
                        StatusCode::UNAUTHORIZED.into_response()
                    }
                }
            },
        )),
        "aaa" => router.layer(aaa::tower::AaaLayer::new(demo.guard.clone())),
        other => panic!("unknown variant {other}"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
}

fn serve_actix(listener: std::net::TcpListener, wrap: &str, demo: Arc<demo::Demo>, jwt: Arc<Jwt>) {
    use actix_web::{
        App, HttpResponse, HttpServer,
        dev::{ServiceRequest, ServiceResponse},
        middleware::{Condition, Next, from_fn},
        web,
    };
    let wrap = wrap.to_owned();
    listener.set_nonblocking(false).unwrap();
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let jwt = jwt.clone();
            let check = move |req: ServiceRequest, next: Next<_>| {
                let jwt = jwt.clone();
                async move {
                    let ok = jwt.verify(req.headers().get("authorization").map(|v| v.as_bytes()));
                    if ok {
                        next.call(req)
                            .await
                            .map(ServiceResponse::map_into_boxed_body)
                    } else {
                        Ok(req
                            .into_response(HttpResponse::Unauthorized().finish())
                            .map_into_boxed_body())
                    }
                }
            };
            App::new()
                .wrap(Condition::new(
                    wrap == "aaa",
                    aaa::actix::Aaa::new(demo.guard.clone()),
                ))
                .wrap(Condition::new(wrap == "jwt", from_fn(check)))
                .route("/docs/{id}", web::get().to(|| async { "ok" }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run()
        .await
        .unwrap();
    });
}
