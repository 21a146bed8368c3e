//! A deadline on reading a request body: every KMS API body is small and read before any check
//! (the enrollment handler reads its JSON before it knows the token), so a client dribbling one
//! byte a second would otherwise hold a connection as long as it likes. Past the deadline the body
//! fails to read, and the request is answered 408 and its connection closed.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::server::edge::error::ApiError;
use axum::response::IntoResponse as _;
use http::StatusCode;

/// A request body must have arrived whole this long after its head (1 MiB, or a 16 MiB event
/// batch, in 15 s is about 1 MiB/s).
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);

pin_project_lite::pin_project! {
    /// `inner`, failing with [`BodyTimedOut`] once the deadline passes before its end.
    pub(crate) struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: tokio::time::Sleep,
        timed_out: Arc<AtomicBool>,
    }
}

/// The error a body yields when it is read past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {} s", BODY_READ_TIMEOUT.as_secs())]
pub(crate) struct BodyTimedOut;

/// Whether a request's body ran out of time; read after its response is made.
#[derive(Clone, Default)]
pub(crate) struct TimedOut(Arc<AtomicBool>);

impl TimedOut {
    /// Replaces the response (the handler's rejection of an unreadable body) with a 408 that
    /// closes the connection, if the body ran out of time.
    pub(crate) fn answer(
        &self,
        version: http::Version,
        response: axum::response::Response,
    ) -> axum::response::Response {
        if !self.0.load(Ordering::Relaxed) {
            return response;
        }
        let mut response =
            ApiError::unreadable(StatusCode::REQUEST_TIMEOUT, BodyTimedOut.to_string())
                .into_response();
        if version < http::Version::HTTP_2 {
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl<B> DeadlineBody<B> {
    /// `inner` with the deadline [`BODY_READ_TIMEOUT`] from now, reporting to `timed_out`.
    pub(crate) fn new(inner: B, timed_out: &TimedOut) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep(BODY_READ_TIMEOUT),
            timed_out: timed_out.0.clone(),
        }
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
