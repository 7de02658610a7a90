use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use aaa_core::{Admitted, Completion, http::RECEIPT_HEADER};
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use crate::rejection::Rejection;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the guard's check gave: the request to pass on (with the admission in its extensions),
/// or the rejection to answer.
pub(crate) enum Checked<ReqBody> {
    Forward {
        request: Request<ReqBody>,
        completion: Completion,
        /// The admission whose answer's receipt is sent, if the receipt header is on.
        receipt: Option<Admitted>,
    },
    /// The guard's refusal, and the receipt header to send with it, if asked for.
    Answer(aaa_core::http::Rejection, Option<HeaderValue>),
}

pin_project! {
    /// The response future of [`AaaService`](crate::AaaService), in three steps: the guard's
    /// check (boxed: it is asynchronous, and may fetch keys or wait for a durable record), then
    /// the inner service's future, held in place, then the completion record. Dropped before the
    /// inner service answers, it records the request as abandoned (status 499).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, F, ReqBody, ResBody> {
        #[pin]
        state: State<S, F, ReqBody, ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, ReqBody, ResBody> {
        Checking {
            check: BoxFuture<Checked<ReqBody>>,
            service: Option<S>,
        },
        Running {
            #[pin]
            future: F,
            completion: Option<Completion>,
            receipt: Option<Admitted>,
        },
        Completing {
            finish: BoxFuture<Result<(), aaa_core::http::Rejection>>,
            response: Option<Response<ResBody>>,
            receipt: Option<Admitted>,
        },
        Done,
    }
}

impl<S, F, ReqBody, ResBody> ResponseFuture<S, F, ReqBody, ResBody> {
    pub(crate) fn new(check: BoxFuture<Checked<ReqBody>>, service: S) -> Self {
        ResponseFuture {
            state: State::Checking {
                check,
                service: Some(service),
            },
        }
    }
}

impl<S, F, ReqBody, ResBody, E> Future for ResponseFuture<S, F, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = E, Future = F>,
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: From<String>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, service } => {
                    let (request, completion, receipt) = match ready!(check.as_mut().poll(cx)) {
                        Checked::Answer(rejection, receipt) => {
                            this.state.set(State::Done);
                            let mut response: Response<ResBody> =
                                Rejection(rejection).into_response();
                            if let Some(value) = receipt {
                                response.headers_mut().insert(RECEIPT_HEADER, value);
                            }
                            return Poll::Ready(Ok(response));
                        }
                        Checked::Forward {
                            request,
                            completion,
                            receipt,
                        } => (request, completion, receipt),
                    };
                    let Some(mut service) = service.take() else {
                        // Only one request per future: never reached. Recorded as a 503.
                        completion.finish_detached(503);
                        this.state.set(State::Done);
                        let gone = aaa_core::http::Rejection::unavailable("the service is gone");
                        return Poll::Ready(Ok(Rejection(gone).into_response()));
                    };
                    let future = service.call(request);
                    this.state.set(State::Running {
                        future,
                        completion: Some(completion),
                        receipt,
                    });
                }
                StateProj::Running {
                    future,
                    completion,
                    receipt,
                } => {
                    let polled = {
                        // A panic in the inner service is recorded as 500 here, even when a layer
                        // outside catches it and drops this future later.
                        let _unwinding = RecordPanic(completion);
                        future.poll(cx)
                    };
                    let result = ready!(polled);
                    let completion = completion.take();
                    let receipt = receipt.take();
                    match (result, completion) {
                        (Err(error), completion) => {
                            // The server cannot answer: recorded as a server error.
                            if let Some(completion) = completion {
                                completion.finish_detached(500);
                            }
                            this.state.set(State::Done);
                            return Poll::Ready(Err(error));
                        }
                        (Ok(response), Some(completion)) => {
                            completion.answered_with(response.extensions().get());
                            let status = response.status().as_u16();
                            this.state.set(State::Completing {
                                finish: Box::pin(completion.finish(status)),
                                response: Some(response),
                                receipt,
                            });
                        }
                        (Ok(response), None) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                StateProj::Completing {
                    finish,
                    response,
                    receipt,
                } => {
                    let finished = ready!(finish.as_mut().poll(cx));
                    let response = response.take();
                    let receipt = receipt.take();
                    this.state.set(State::Done);
                    let answer = match (finished, response) {
                        (Ok(()), Some(mut response)) => {
                            if let Some(value) = receipt.and_then(|admitted| {
                                admitted.admission().answer_receipt()?.header_value()
                            }) {
                                response.headers_mut().insert(RECEIPT_HEADER, value);
                            }
                            response
                        }
                        // The completion could not be recorded (strict audit mode): 503.
                        (Err(rejection), _) => Rejection(rejection).into_response(),
                        (Ok(()), None) => Rejection(aaa_core::http::Rejection::unavailable(
                            "the response is gone",
                        ))
                        .into_response(),
                    };
                    return Poll::Ready(Ok(answer));
                }
                // Polled after it completed, which the `Future` contract does not allow: it never
                // answers again (and registers no waker).
                StateProj::Done => return Poll::Pending,
            }
        }
    }
}

/// Records the completion as 500 if dropped while a panic unwinds.
struct RecordPanic<'a>(&'a mut Option<Completion>);

impl Drop for RecordPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(completion) = self.0.take()
        {
            completion.finish_detached(500);
        }
    }
}

impl<S, F, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, F, ReqBody, ResBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Checking { .. } => "checking",
            State::Running { .. } => "running",
            State::Completing { .. } => "completing",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
