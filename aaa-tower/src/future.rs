use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

/// The response future of [`AaaService`](crate::AaaService).
///
/// The guard's check is asynchronous (fetching keys, waiting for a durable audit record), so the
/// whole exchange runs as one boxed future.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<T> {
    pub(crate) inner: Pin<Box<dyn Future<Output = T> + Send>>,
}

impl<T> Future for ResponseFuture<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for ResponseFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
