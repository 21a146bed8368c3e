//! The relay's two frames, exchanged inside the CLI's outer TLS before any inner byte: the
//! CLI's hello (which gateway it wants) and the relay's status (whether the inner TLS may
//! start, and if not why).
//!
//! Both are length-prefixed and bounded, so a peer can neither make the other read without end
//! nor be mistaken for the inner TLS: a status is always read whole before a byte of the inner
//! handshake is written.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const HELLO_MAGIC: &[u8; 4] = b"KPR1";
const STATUS_MAGIC: &[u8; 4] = b"KPS1";
/// Longest gateway name a hello may carry.
const MAX_NAME: usize = 255;
/// Longest message a status may carry; longer ones are cut at a character boundary.
const MAX_MESSAGE: usize = 1024;

/// What a relay tells a CLI before the inner TLS starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayCode {
    /// The relay joined the CLI to the gateway's tunnel: the inner TLS may start.
    Ok,
    /// No tunnel from the gateway reaches this relay now.
    GatewayOffline,
    /// The session certificate's validity has ended.
    SessionExpired,
    /// The session was ended or terminated, or access was revoked.
    Revoked,
    /// The certificate may not reach the gateway asked for.
    Forbidden,
    /// The relay is at its limit; try again after the status's `retry_after`.
    Overloaded,
    /// A code this build does not know (a newer relay).
    Unknown(u8),
}

impl RelayCode {
    fn to_byte(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::GatewayOffline => 1,
            Self::SessionExpired => 2,
            Self::Revoked => 3,
            Self::Forbidden => 4,
            Self::Overloaded => 5,
            Self::Unknown(code) => code,
        }
    }

    fn from_byte(byte: u8) -> Self {
        match byte {
            0 => Self::Ok,
            1 => Self::GatewayOffline,
            2 => Self::SessionExpired,
            3 => Self::Revoked,
            4 => Self::Forbidden,
            5 => Self::Overloaded,
            other => Self::Unknown(other),
        }
    }

    /// The lowercase name used in logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::GatewayOffline => "gateway_offline",
            Self::SessionExpired => "session_expired",
            Self::Revoked => "revoked",
            Self::Forbidden => "forbidden",
            Self::Overloaded => "overloaded",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// A relay's answer to a CLI: a code, a retry hint and a message for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayStatus {
    /// What happened.
    pub code: RelayCode,
    /// When to try again (overloaded); zero when there is no hint.
    pub retry_after: Duration,
    /// Why, in a sentence.
    pub message: String,
}

impl RelayStatus {
    /// A status with no retry hint.
    pub(crate) fn new(code: RelayCode, message: impl Into<String>) -> Self {
        Self {
            code,
            retry_after: Duration::ZERO,
            message: message.into(),
        }
    }

    /// The status that lets the inner TLS start.
    pub(crate) fn ok() -> Self {
        Self::new(RelayCode::Ok, "")
    }

    /// With a retry hint.
    pub(crate) fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }
}

/// A frame that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum FrameError {
    /// The stream failed or ended.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer does not speak the relay protocol (wrong magic).
    #[error("the peer does not speak the kms-pam relay protocol")]
    NotRelayProtocol,
    /// A length out of bounds, or text that is not UTF-8.
    #[error("malformed relay frame: {0}")]
    Malformed(&'static str),
}

/// Writes the CLI's hello naming `gateway`.
pub(crate) async fn write_hello<W>(io: &mut W, gateway: &str) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
{
    if gateway.is_empty() || gateway.len() > MAX_NAME {
        return Err(FrameError::Malformed("gateway name length"));
    }
    let mut frame = Vec::with_capacity(6 + gateway.len());
    frame.extend_from_slice(HELLO_MAGIC);
    frame.extend_from_slice(&u16::try_from(gateway.len()).unwrap_or(0).to_be_bytes());
    frame.extend_from_slice(gateway.as_bytes());
    io.write_all(&frame).await?;
    io.flush().await?;
    Ok(())
}

/// Reads a CLI's hello: the gateway it wants.
pub(crate) async fn read_hello<R>(io: &mut R) -> Result<String, FrameError>
where
    R: AsyncRead + Unpin,
{
    let mut head = [0u8; 6];
    io.read_exact(&mut head).await?;
    if &head[..4] != HELLO_MAGIC {
        return Err(FrameError::NotRelayProtocol);
    }
    let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
    if len == 0 || len > MAX_NAME {
        return Err(FrameError::Malformed("gateway name length"));
    }
    let mut name = vec![0u8; len];
    io.read_exact(&mut name).await?;
    String::from_utf8(name).map_err(|_| FrameError::Malformed("gateway name is not UTF-8"))
}

/// Writes a status.
pub(crate) async fn write_status<W>(io: &mut W, status: &RelayStatus) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
{
    let message = truncate(&status.message, MAX_MESSAGE);
    let retry = u32::try_from(status.retry_after.as_secs()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(11 + message.len());
    frame.extend_from_slice(STATUS_MAGIC);
    frame.push(status.code.to_byte());
    frame.extend_from_slice(&retry.to_be_bytes());
    frame.extend_from_slice(&u16::try_from(message.len()).unwrap_or(0).to_be_bytes());
    frame.extend_from_slice(message.as_bytes());
    io.write_all(&frame).await?;
    io.flush().await?;
    Ok(())
}

/// Reads a status.
pub(crate) async fn read_status<R>(io: &mut R) -> Result<RelayStatus, FrameError>
where
    R: AsyncRead + Unpin,
{
    let mut head = [0u8; 11];
    io.read_exact(&mut head).await?;
    if &head[..4] != STATUS_MAGIC {
        return Err(FrameError::NotRelayProtocol);
    }
    let code = RelayCode::from_byte(head[4]);
    let retry = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
    let len = usize::from(u16::from_be_bytes([head[9], head[10]]));
    if len > MAX_MESSAGE {
        return Err(FrameError::Malformed("status message length"));
    }
    let mut message = vec![0u8; len];
    io.read_exact(&mut message).await?;
    let message =
        String::from_utf8(message).map_err(|_| FrameError::Malformed("message is not UTF-8"))?;
    Ok(RelayStatus {
        code,
        retry_after: Duration::from_secs(u64::from(retry)),
        message,
    })
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        write_hello(&mut buf, "gw-ü").await.unwrap();
        assert_eq!(read_hello(&mut buf.as_slice()).await.unwrap(), "gw-ü");

        let status =
            RelayStatus::new(RelayCode::Overloaded, "busy").retry_after(Duration::from_secs(7));
        let mut buf = Vec::new();
        write_status(&mut buf, &status).await.unwrap();
        assert_eq!(read_status(&mut buf.as_slice()).await.unwrap(), status);
    }

    #[tokio::test]
    async fn bad_frames_are_errors_not_panics() {
        // A TLS ClientHello where a hello belongs: another protocol.
        let tls = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00];
        let err = read_hello(&mut tls.as_slice()).await.unwrap_err();
        assert!(matches!(err, FrameError::NotRelayProtocol), "{err}");
        for bad in [
            &b"KPR1\x00\x00"[..],
            b"KPR1\x01\x00",
            b"KPR1\x00\x02\xff\xfe",
        ] {
            assert!(read_hello(&mut &bad[..]).await.is_err(), "{bad:?}");
        }
        let truncated = b"KPS1\x00\x00\x00";
        assert!(read_status(&mut &truncated[..]).await.is_err());
        let too_long = b"KPS1\x01\x00\x00\x00\x00\xff\xff";
        assert!(matches!(
            read_status(&mut &too_long[..]).await,
            Err(FrameError::Malformed(_))
        ));
        let unknown = b"KPS1\x63\x00\x00\x00\x00\x00\x00";
        let status = read_status(&mut &unknown[..]).await.unwrap();
        assert_eq!(status.code, RelayCode::Unknown(0x63));
        let mut sink = Vec::new();
        assert!(write_hello(&mut sink, "").await.is_err());
        assert!(write_hello(&mut sink, &"g".repeat(256)).await.is_err());
    }

    #[tokio::test]
    async fn long_messages_are_cut_at_a_character() {
        let status = RelayStatus::new(RelayCode::Forbidden, "é".repeat(600));
        let mut buf = Vec::new();
        write_status(&mut buf, &status).await.unwrap();
        let read = read_status(&mut buf.as_slice()).await.unwrap();
        assert_eq!(read.message.len(), MAX_MESSAGE);
        assert!(read.message.chars().all(|c| c == 'é'));
    }
}
