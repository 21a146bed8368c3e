//! Streaming pieces of the path: bodies that count bytes and stop when the session ends, and the
//! splice that carries upgraded connections (exec, attach, port-forward) both ways.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body::{BoxError, ProxyBody};
use super::recorder::RecordingTap;
use super::tap::RequestTap;
use crate::audit::recording::Direction;
use crate::kube::{Status, StreamKind};

/// Resolves, with the `Status` to report, when the session a stream belongs to stops.
pub(crate) type SessionCut = Pin<Box<dyn Future<Output = Status> + Send>>;

/// The error a body ends with when its session was cut.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SessionCutError(String);

/// A request body on its way upstream: counts bytes from the client.
pub(crate) struct RequestBody {
    inner: ProxyBody,
    tap: Arc<RequestTap>,
}

impl RequestBody {
    /// Wraps a body.
    pub(crate) fn new(inner: ProxyBody, tap: Arc<RequestTap>) -> Self {
        Self { inner, tap }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.tap.add_in(data.len());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body on its way to the client: counts bytes and ends when the session is cut. A
/// watch ends with an `ERROR` event carrying the `Status` (kubectl prints it); other bodies end
/// with an error, which aborts the response.
pub(crate) struct ResponseBody {
    inner: ProxyBody,
    tap: Arc<RequestTap>,
    cut: Option<SessionCut>,
    watch: bool,
    state: CutState,
}

enum CutState {
    Flowing,
    SendFinal(Bytes),
    Done,
}

impl ResponseBody {
    /// Wraps a body; `cut` stops it when the session ends.
    pub(crate) fn new(inner: ProxyBody, tap: Arc<RequestTap>, cut: Option<SessionCut>) -> Self {
        let watch = false;
        Self {
            inner,
            tap,
            cut,
            watch,
            state: CutState::Flowing,
        }
    }

    /// Marks the body as a watch stream, so a cut ends it with an `ERROR` event.
    pub(crate) fn watch(mut self, stream: Option<StreamKind>) -> Self {
        self.watch = stream == Some(StreamKind::Watch);
        self
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(cut) = this.cut.as_mut() {
            if let Poll::Ready(status) = cut.as_mut().poll(cx) {
                this.cut = None;
                this.tap.set_error(status.message.clone());
                if !this.watch {
                    this.state = CutState::Done;
                    return Poll::Ready(Some(Err(Box::new(SessionCutError(status.message)))));
                }
                this.state = CutState::SendFinal(status.to_watch_error_event());
            }
        }
        match std::mem::replace(&mut this.state, CutState::Flowing) {
            CutState::SendFinal(event) => {
                this.state = CutState::Done;
                this.tap.add_out(event.len());
                return Poll::Ready(Some(Ok(Frame::data(event))));
            }
            CutState::Done => {
                this.state = CutState::Done;
                return Poll::Ready(None);
            }
            CutState::Flowing => {}
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.tap.add_out(data.len());
                }
            }
            Poll::Ready(Some(Err(e))) => this.tap.set_error(e.to_string()),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // Must follow the inner body exactly: reporting "not yet" for a finished body makes hyper
        // send an extra empty DATA frame per response, which a client that already has all its
        // bytes resets, and HTTP/2 closes a connection after 1,024 such resets.
        matches!(self.state, CutState::Done) || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The client side of an upgraded connection: counts bytes each way into the tap, and
    /// hands a copy to the recorder when the stream is recorded.
    struct CountingIo<T> {
        #[pin]
        inner: T,
        tap: Arc<RequestTap>,
        recorder: Option<RecordingTap>,
    }
}

impl<T: AsyncRead> AsyncRead for CountingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        // Room for the copy first: the splice waits for the recorder rather than outrun it.
        if let Some(recorder) = this.recorder.as_mut() {
            ready!(recorder.poll_reserve(cx, Direction::ToServer))?;
        }
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        let read = &buf.filled()[before..];
        this.tap.add_in(read.len());
        if let Some(recorder) = this.recorder.as_mut() {
            recorder.send(Direction::ToServer, read);
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for CountingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if let Some(recorder) = this.recorder.as_mut() {
            ready!(recorder.poll_reserve(cx, Direction::ToClient))?;
        }
        let polled = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            this.tap.add_out(*n);
            if let Some(recorder) = this.recorder.as_mut() {
                recorder.send(Direction::ToClient, &buf[..*n]);
            }
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Carries bytes both ways between the client's and the server's upgraded connections until
/// either side closes or the session is cut. Half-closes are passed on, so `exec -i` sees stdin's
/// end. With a `recorder`, a copy of every piece goes to it (exec/attach recording), each piece
/// waiting for room in the recorder's queue; a stream that can no longer be recorded under a
/// deny policy ends with the recorder's reason.
pub(crate) async fn splice(
    client: Upgraded,
    server: Upgraded,
    tap: Arc<RequestTap>,
    cut: Option<SessionCut>,
    recorder: Option<RecordingTap>,
) {
    let mut client = CountingIo {
        inner: TokioIo::new(client),
        tap: tap.clone(),
        recorder,
    };
    let mut server = TokioIo::new(server);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
    let outcome = match cut {
        Some(cut) => tokio::select! {
            result = copy => result.err().map(|e| e.to_string()),
            status = cut => Some(status.message),
        },
        None => copy.await.err().map(|e| e.to_string()),
    };
    if let Some(reason) = outcome {
        tracing::debug!(request = tap.request_id(), %reason, "upgraded stream closed");
        tap.set_error(reason);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::audit::recording::{RecordingConfig, UnrecordedStreams};
    use crate::audit::{AuditEventKind, NullAuditSink, RecordingEnded, StreamDetails};
    use crate::metrics::GatewayMetrics;
    use crate::proxy::recorder::{self, Emit, RecorderTask};
    use crate::session::SessionId;
    use http_body_util::BodyExt;

    fn tap() -> Arc<RequestTap> {
        RequestTap::new(
            Arc::new(NullAuditSink),
            Arc::new(GatewayMetrics::new()),
            SessionId::new("s"),
            1,
            None,
        )
    }

    #[tokio::test]
    async fn a_finished_body_says_so_even_with_a_cut_armed() {
        let cut: SessionCut = Box::pin(std::future::pending());
        let mut body = ResponseBody::new(crate::proxy::body::full("abc"), tap(), Some(cut));
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().expect("data"), "abc");
        // No trailing empty DATA frame: the stream ends with the last bytes.
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_cut_watch_ends_with_an_error_event() {
        let cut: SessionCut = Box::pin(async {
            Status::failure(401, "Unauthorized", "kms-pam session s was terminated")
        });
        let inner = crate::proxy::body::boxed(http_body_util::StreamBody::new(
            futures_util::stream::pending::<Result<Frame<Bytes>, BoxError>>(),
        ));
        let body = ResponseBody::new(inner, tap(), Some(cut)).watch(Some(StreamKind::Watch));
        let bytes = body.collect().await.expect("ends cleanly").to_bytes();
        let event: serde_json::Value =
            serde_json::from_slice(bytes.trim_ascii_end()).expect("JSON");
        assert_eq!(event["type"], "ERROR");
        assert_eq!(
            event["object"]["message"],
            "kms-pam session s was terminated"
        );
    }

    /// A binary WebSocket message on `channel`, masked as kubectl sends it.
    fn masked(channel: u8, data: &[u8]) -> Vec<u8> {
        use tungstenite::protocol::frame::coding::{Data, OpCode};
        let mask = [7, 1, 3, 9];
        let header = tungstenite::protocol::frame::FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::Data(Data::Binary),
            mask: Some(mask),
        };
        let mut out = Vec::new();
        header.format(data.len() as u64 + 1, &mut out).unwrap();
        let payload = std::iter::once(channel).chain(data.iter().copied());
        out.extend(payload.enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Starts recording an exec whose events land in `events`, each emit first waiting while
    /// `paused` is set (a recorder that falls behind), with a queue of one piece.
    fn slow_recording(
        unrecorded: UnrecordedStreams,
        paused: Arc<AtomicBool>,
        events: Arc<Mutex<Vec<AuditEventKind>>>,
    ) -> (RecordingTap, RecorderTask) {
        let mut answer = http::HeaderMap::new();
        answer.insert(http::header::UPGRADE, "websocket".parse().unwrap());
        answer.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            "v5.channel.k8s.io".parse().unwrap(),
        );
        let details =
            StreamDetails::from_request(1, StreamKind::Exec, Some("command=cat&stdin=1"), &answer);
        let emit: Emit = Box::new(move |kind| {
            while paused.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            events.lock().unwrap().push(kind);
            true
        });
        let config = RecordingConfig::default().with_queue_pieces(1);
        recorder::start(details, &config, unrecorded, emit).expect("recorded")
    }

    /// kubectl's end and the API server's end of a splice through a `CountingIo` feeding
    /// `recorder`; the copy's outcome comes out of the task.
    fn splice_through(
        recorder: RecordingTap,
    ) -> (
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<io::Result<(u64, u64)>>,
    ) {
        let (kubectl, client) = tokio::io::duplex(64 * 1024);
        let (mut server, apiserver) = tokio::io::duplex(64 * 1024);
        let mut client = CountingIo {
            inner: client,
            tap: tap(),
            recorder: Some(recorder),
        };
        let copy =
            tokio::spawn(
                async move { tokio::io::copy_bidirectional(&mut client, &mut server).await },
            );
        (kubectl, apiserver, copy)
    }

    fn ended(events: &[AuditEventKind]) -> Option<RecordingEnded> {
        events.iter().find_map(|k| match k {
            AuditEventKind::RecordingEnded(end) => Some(end.clone()),
            _ => None,
        })
    }

    // Two workers: the recorder's emit blocks its thread while paused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recorder_that_falls_behind_slows_the_splice_and_loses_no_byte() {
        let paused = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (recorder, task) =
            slow_recording(UnrecordedStreams::Deny, paused.clone(), events.clone());
        paused.store(true, Ordering::Relaxed);
        let recording = tokio::spawn(task.run());
        let (mut kubectl, mut apiserver, copy) = splice_through(recorder);

        // 2 MiB typed in 4 KiB messages: within the input cap, past the shared one.
        let typed: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let typing = tokio::spawn(async move {
            for piece in typed.chunks(4096) {
                kubectl.write_all(&masked(0, piece)).await.unwrap();
            }
            kubectl.shutdown().await.unwrap();
            kubectl
        });
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            apiserver.read_to_end(&mut got).await.unwrap();
            apiserver.shutdown().await.unwrap();
            got.len()
        });
        // The recorder is stuck; the splice must wait for it rather than run ahead.
        tokio::time::sleep(Duration::from_millis(200)).await;
        paused.store(false, Ordering::Relaxed);

        let received = reading.await.unwrap();
        let _kubectl = typing.await.unwrap();
        copy.await.unwrap().expect("the splice ends cleanly");
        recording.await.unwrap();
        // Each message: a 2-byte header, a 16-bit length, the mask, the channel byte, the data.
        assert_eq!(
            received,
            512 * (8 + 1 + 4096),
            "the API server got every frame"
        );
        let events = events.lock().unwrap();
        let end = ended(&events).expect("the recording ended");
        assert!(!end.truncated, "{end:?}");
        assert_eq!(end.recorded_bytes, 2 * 1024 * 1024);
    }

    #[tokio::test]
    async fn under_deny_unreadable_frames_end_the_stream() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let paused = Arc::new(AtomicBool::new(false));
        let (recorder, task) = slow_recording(UnrecordedStreams::Deny, paused, events.clone());
        let recording = tokio::spawn(task.run());
        let (mut kubectl, mut apiserver, copy) = splice_through(recorder);
        kubectl.write_all(&masked(0, b"ls\n")).await.unwrap();
        kubectl
            .write_all(&[0x80 | 0x03, 0x80, 0, 0, 0, 0])
            .await
            .unwrap(); // a reserved opcode
        let typing = tokio::spawn(async move {
            // Typing goes on, unreadable to the recorder: it must not reach the cluster long.
            for _ in 0..200 {
                if kubectl.write_all(&masked(0, b"rm -rf /\n")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let outcome = tokio::time::timeout(Duration::from_secs(1), copy)
            .await
            .expect("the stream was ended, not forwarded unrecorded")
            .unwrap();
        let said = outcome.expect_err("ended with the reason").to_string();
        assert!(said.contains("can no longer be recorded"), "{said}");
        let mut got = Vec::new();
        let _ = apiserver.read_to_end(&mut got).await;
        // `ls` and the bad frame, and at most one piece read while the recorder was parsing.
        assert!(got.len() <= 10 + 6 + 16, "{} bytes passed", got.len());
        typing.abort();
        recording.await.unwrap();
        let end = ended(&events.lock().unwrap()).expect("the recording ended");
        assert!(end.reason.unwrap().contains("ToServer"));
    }
}
