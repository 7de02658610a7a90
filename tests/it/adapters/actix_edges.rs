//! A client that goes away while its handler runs, on actix-web. actix keeps running the
//! handler by default (it allows half-closed HTTP/1 connections and does not watch the socket
//! while a handler runs), so the completion records the handler's status; with
//! `HttpServer::h1_allow_half_closed(false)` it drops the request when the client leaves, and
//! the completion records 499, as on axum. The crate's documentation says so.

use std::sync::{Arc, Mutex};

use aaa::{
    BoxFuture,
    actix::Aaa,
    audit::{AuditError, AuditEvent, AuditReceipt, AuditSink, MemorySink},
};
use actix_web::{App, HttpServer, web};
use tokio::{
    io::AsyncWriteExt,
    sync::{oneshot, watch},
};

use super::kinds;

/// A memory sink that counts what it records, for the test to wait on.
#[derive(Debug)]
struct Counted {
    events: MemorySink,
    recorded: watch::Sender<usize>,
}

impl AuditSink for Counted {
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>> {
        let recorded = self.events.record(event);
        self.recorded.send_modify(|n| *n += 1);
        recorded
    }
}

/// The handler of `/health`: tells the test it runs, then answers once `answer` fires (never,
/// if it is dropped unfired).
type Gate = Arc<Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>>;

/// Serves `/health` with a handler held by a [`Gate`]; the sink and the record counter.
async fn start(
    allow_half_closed: bool,
    gate: Gate,
) -> (std::net::SocketAddr, Arc<Counted>, watch::Receiver<usize>) {
    let (recorded, count) = watch::channel(0);
    let sink = Arc::new(Counted {
        events: MemorySink::new(),
        recorded,
    });
    let guard = super::guard(sink.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        let gate = gate.clone();
        App::new().wrap(Aaa::new(guard.clone())).route(
            "/health",
            web::get().to(move || {
                let held = gate.lock().unwrap().take();
                async move {
                    if let Some((entered, answer)) = held {
                        let _ = entered.send(());
                        let _ = answer.await;
                    }
                    "ok"
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .h1_allow_half_closed(allow_half_closed)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (addr, sink, count)
}

/// Sends a request for `/health` and closes the connection once its handler runs.
async fn leave_while_the_handler_runs(addr: std::net::SocketAddr, entered: oneshot::Receiver<()>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    entered.await.unwrap();
    stream.shutdown().await.unwrap();
    drop(stream);
}

/// With half-closures refused, actix drops the request of a client that leaves, and the
/// completion records 499 although the handler never answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_half_closures_records_a_client_that_leaves_as_499() {
    let (entered, entered_rx) = oneshot::channel();
    let (_never, answer) = oneshot::channel();
    let gate: Gate = Arc::new(Mutex::new(Some((entered, answer))));
    let (addr, sink, mut count) = start(false, gate).await;
    leave_while_the_handler_runs(addr, entered_rx).await;
    // Bounded so that a regression fails instead of hanging: without the client's leaving being
    // noticed, nothing would ever complete this request.
    let completed = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        count.wait_for(|n| *n >= 2),
    );
    completed
        .await
        .expect("the request was never completed")
        .unwrap();
    assert_eq!(kinds(&sink.events.events()), ["authz Allow", "done 499"]);
}

/// By default actix lets the handler of a client that left run to its end, and the
/// completion records the handler's status: the 499 of axum is not seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_actix_records_the_handler_status_of_a_client_that_left() {
    let (entered, entered_rx) = oneshot::channel();
    let (release, answer) = oneshot::channel();
    let gate: Gate = Arc::new(Mutex::new(Some((entered, answer))));
    let (addr, sink, mut count) = start(true, gate).await;
    leave_while_the_handler_runs(addr, entered_rx).await;
    release.send(()).unwrap();
    count.wait_for(|n| *n >= 2).await.unwrap();
    assert_eq!(kinds(&sink.events.events()), ["authz Allow", "done 200"]);
}
