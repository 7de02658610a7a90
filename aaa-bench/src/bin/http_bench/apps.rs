//! The apps `http-bench` serves, one per variant.

/// Every variant, bare first within each framework.
pub(crate) const VARIANTS: &[&str] = &["axum-bare", "actix-bare"];

const REQUEST: &str = "GET /docs/d1 HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n";

/// Serves `variant` on 127.0.0.1 with one worker; prints the address and the request to send.
pub(crate) fn serve(variant: &str) {
    match variant {
        "axum-bare" => serve_axum(
            axum::Router::new().route("/docs/{id}", axum::routing::get(|| async { "ok" })),
        ),
        "actix-bare" => serve_actix(),
        other => panic!("unknown variant {other}"),
    }
}

fn announce(addr: std::net::SocketAddr) {
    println!("{addr}");
    println!("{REQUEST}");
}

fn serve_axum(app: axum::Router) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        announce(listener.local_addr().unwrap());
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
}

fn serve_actix() {
    actix_web::rt::System::new().block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        announce(listener.local_addr().unwrap());
        actix_web::HttpServer::new(|| {
            actix_web::App::new().route("/docs/{id}", actix_web::web::get().to(|| async { "ok" }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run()
        .await
        .unwrap();
    });
}
