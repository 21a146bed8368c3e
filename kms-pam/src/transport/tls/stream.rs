//! The client's tunnel stream: TLS over TCP, with the gateway's late refusal made readable.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::errors::late_refusal;

/// An established client tunnel.
///
/// Exists to translate the alert a TLS 1.3 gateway sends after the client's handshake has
/// already finished (see the module docs) into an actionable error; bytes pass through as is.
pub(crate) struct ClientTunnel<S = TcpStream> {
    inner: TlsStream<S>,
    gateway_addr: Arc<str>,
}

impl<S> ClientTunnel<S> {
    pub(crate) fn new(inner: TlsStream<S>, gateway_addr: Arc<str>) -> Self {
        Self {
            inner,
            gateway_addr,
        }
    }

    fn map<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        result.map_err(|e| late_refusal(&self.gateway_addr, e))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientTunnel<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.map(result)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientTunnel<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.map(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.map(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.map(result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.map(result)
    }
}
