//! An incremental WebSocket frame reader for bytes observed on the wire, in whatever pieces
//! they arrive. Headers are parsed by tungstenite's `FrameHeader::parse` (which never consumes
//! a partial header); payloads are streamed, unmasked, without buffering whole frames, so a
//! frame with a 64-bit length costs no memory.
//!
//! The binary channel protocols (`v5.channel.k8s.io`, …) put the channel in a message's first
//! byte; the base64 ones (`base64.channel.k8s.io`, `v4.base64.channel.k8s.io`) send text
//! messages whose first character is the channel as an ASCII digit and whose rest is the
//! payload in base64, which [`FrameParser::base64`] decodes as it streams (at most three
//! characters are held between pieces).
//!
//! A message is read the way kube-apiserver reads it: by the subprotocol, whatever its opcode.
//! The API server takes a text message on a binary channel protocol as binary (its first byte
//! is the channel) and a binary message on a base64 protocol as base64 text, so what runs in
//! the container is what is recorded, whichever opcode a client chose.

use std::io::Cursor;

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// The longest WebSocket frame header (RFC 6455 §5.2): 2 + 8 length + 4 mask bytes.
const MAX_HEADER: usize = 14;

/// What the reader found.
#[derive(Debug, PartialEq, Eq)]
pub enum Observed<'a> {
    /// Payload of a message on a Kubernetes channel, the channel byte removed (decoded, on the
    /// base64 protocols). One message may come in several pieces (fragments, or reads).
    Data {
        /// The message's first byte.
        channel: u8,
        /// The next payload bytes of the message.
        data: &'a [u8],
    },
    /// A close frame.
    Close {
        /// Its status code, when it has one.
        code: Option<u16>,
        /// Its reason.
        reason: String,
    },
}

/// Base64 characters decoded at a time: a multiple of 4, so that groups never straddle two.
const DECODE_CHUNK: usize = 4 * 1024;

/// Frames that cannot be read; the reader stops for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// An earlier call failed; frame boundaries are lost.
    #[error("unreadable WebSocket frames: the reader stopped at an earlier error")]
    Stopped,
    /// A frame header breaks RFC 6455.
    #[error("unreadable WebSocket frames: {0}")]
    Header(#[source] tungstenite::Error),
    /// A frame header is longer than any valid one.
    #[error("unreadable WebSocket frames: frame header longer than 14 bytes")]
    HeaderTooLong,
    /// A frame uses an extension (compression) the reader cannot undo.
    #[error("unreadable WebSocket frames: a frame uses a WebSocket extension (reserved bits set)")]
    Extension,
    /// A continuation frame arrived outside a message.
    #[error("unreadable WebSocket frames: a continuation frame outside a message")]
    StrayContinuation,
    /// A new message started before the previous one ended.
    #[error("unreadable WebSocket frames: a new message before the previous one ended")]
    Interleaved,
    /// A control frame is fragmented or longer than 125 bytes.
    #[error("unreadable WebSocket frames: a fragmented or oversized control frame")]
    BadControlFrame,
    /// A frame uses a reserved opcode.
    #[error("unreadable WebSocket frames: a reserved opcode")]
    ReservedOpcode,
    /// A base64 channel message does not start with a channel digit.
    #[error(
        "unreadable WebSocket frames: a base64 channel message starts with {first:#04x}, \
         not a channel digit"
    )]
    NoChannel {
        /// The byte it starts with.
        first: u8,
    },
    /// A base64 channel message is not base64.
    #[error("unreadable WebSocket frames: a base64 channel message: {0}")]
    Base64(#[source] base64::DecodeError),
}

/// Reads the frames of one direction of a WebSocket connection, fed with the bytes as observed.
/// Masked (client) and unmasked (server) frames alike; control frames between fragments.
#[derive(Debug, Default)]
pub struct FrameParser {
    header: Vec<u8>,
    payload: Option<Payload>,
    message: Message,
    control: Vec<u8>,
    scratch: Vec<u8>,
    failed: bool,
    /// Messages carry base64 channel payloads (whatever their opcode).
    base64: Option<Base64Text>,
}

/// The base64 text message in progress.
#[derive(Debug, Default)]
struct Base64Text {
    channel: Option<u8>,
    /// Characters of an incomplete group (fewer than 4).
    pending: Vec<u8>,
    decoded: Vec<u8>,
}

#[derive(Debug)]
struct Payload {
    remaining: u64,
    mask: Option<[u8; 4]>,
    mask_at: usize,
    kind: Kind,
    fin: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A data frame of a binary channel protocol.
    Binary,
    /// A data frame of a base64 channel protocol.
    Base64,
    Control(Control),
}

/// The data message in progress, across its fragments.
#[derive(Debug, Default, PartialEq, Eq)]
enum Message {
    #[default]
    None,
    Binary {
        channel: Option<u8>,
    },
    Base64,
}

impl FrameParser {
    /// A reader at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader for the base64 channel protocols: messages are decoded into
    /// [`Observed::Data`] of the channel their first character names.
    pub fn base64() -> Self {
        Self {
            base64: Some(Base64Text::default()),
            ..Self::default()
        }
    }

    /// Whether an error stopped the reader.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Reads `input`, calling `on` for each thing found, in order. After an error every later
    /// call fails too: frame boundaries are lost.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on: impl FnMut(Observed<'_>),
    ) -> Result<(), FrameError> {
        if self.failed {
            return Err(FrameError::Stopped);
        }
        while !input.is_empty() {
            let consumed = if self.payload.is_some() {
                self.read_payload(input, &mut on)
            } else {
                self.read_header(input, &mut on)
            };
            match consumed {
                Ok(n) => input = &input[n..],
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Consumes header bytes; a partial header is kept until the rest arrives.
    fn read_header(
        &mut self,
        input: &[u8],
        on: &mut impl FnMut(Observed<'_>),
    ) -> Result<usize, FrameError> {
        let kept = self.header.len();
        let take = if kept == 0 {
            input.len()
        } else {
            input.len().min(MAX_HEADER - kept)
        };
        let (parsed, position) = if kept == 0 {
            let mut cursor = Cursor::new(input);
            (FrameHeader::parse(&mut cursor), cursor.position())
        } else {
            self.header.extend_from_slice(&input[..take]);
            let mut cursor = Cursor::new(&self.header);
            (FrameHeader::parse(&mut cursor), cursor.position())
        };
        match parsed.map_err(FrameError::Header)? {
            Some((header, len)) => {
                // The position, not the header's length: a non-minimal length encoding is longer.
                let used = usize::try_from(position)
                    .unwrap_or(MAX_HEADER)
                    .saturating_sub(kept);
                self.header.clear();
                self.start_frame(&header, len, on)?;
                Ok(used)
            }
            None if kept + take < MAX_HEADER => {
                if kept == 0 {
                    self.header.extend_from_slice(input);
                }
                Ok(take)
            }
            None => Err(FrameError::HeaderTooLong),
        }
    }

    fn start_frame(
        &mut self,
        header: &FrameHeader,
        len: u64,
        on: &mut impl FnMut(Observed<'_>),
    ) -> Result<(), FrameError> {
        let refuse = |error: FrameError| Err(error);
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return refuse(FrameError::Extension);
        }
        let kind = match (header.opcode, &self.message) {
            (OpCode::Data(Data::Continue), Message::Binary { .. }) => Kind::Binary,
            (OpCode::Data(Data::Continue), Message::Base64) => Kind::Base64,
            (OpCode::Data(Data::Continue), Message::None) => {
                return refuse(FrameError::StrayContinuation)
            }
            (OpCode::Data(Data::Binary | Data::Text), Message::Binary { .. } | Message::Base64) => {
                return refuse(FrameError::Interleaved)
            }
            // The opcode does not decide how a message is read; the subprotocol does.
            (OpCode::Data(Data::Binary | Data::Text), Message::None) if self.base64.is_some() => {
                self.message = Message::Base64;
                Kind::Base64
            }
            (OpCode::Data(Data::Binary | Data::Text), Message::None) => {
                self.message = Message::Binary { channel: None };
                Kind::Binary
            }
            (OpCode::Control(control), _) if header.is_final && len <= 125 => {
                Kind::Control(control)
            }
            (OpCode::Control(_), _) => return refuse(FrameError::BadControlFrame),
            (OpCode::Data(Data::Reserved(_)), _) => return refuse(FrameError::ReservedOpcode),
        };
        self.payload = Some(Payload {
            remaining: len,
            mask: header.mask,
            mask_at: 0,
            kind,
            fin: header.is_final,
        });
        if len == 0 {
            self.end_frame(on)?;
        }
        Ok(())
    }

    /// Consumes payload bytes, unmasking them into a scratch buffer when masked.
    fn read_payload(
        &mut self,
        input: &[u8],
        on: &mut impl FnMut(Observed<'_>),
    ) -> Result<usize, FrameError> {
        let Self {
            payload,
            message,
            control,
            scratch,
            base64,
            ..
        } = self;
        let Some(payload) = payload.as_mut() else {
            return Ok(0);
        };
        let n = usize::try_from(payload.remaining).map_or(input.len(), |r| r.min(input.len()));
        let mut data = &input[..n];
        if let Some(mask) = payload.mask {
            scratch.clear();
            scratch.extend(
                data.iter()
                    .zip((payload.mask_at..).map(|i| mask[i & 3]))
                    .map(|(b, m)| b ^ m),
            );
            payload.mask_at = (payload.mask_at + n) & 3;
            data = scratch;
        }
        payload.remaining -= n as u64;
        match (payload.kind, message) {
            (Kind::Binary, Message::Binary { channel }) => {
                if channel.is_none() {
                    if let Some((&first, rest)) = data.split_first() {
                        *channel = Some(first);
                        data = rest;
                    }
                }
                if let (Some(channel), false) = (*channel, data.is_empty()) {
                    on(Observed::Data { channel, data });
                }
            }
            (Kind::Base64, _) if n > 0 => {
                if let Some(text) = base64 {
                    text.feed(data, on)?;
                }
            }
            (Kind::Control(_), _) => control.extend_from_slice(data),
            _ => {}
        }
        if payload.remaining == 0 {
            self.end_frame(on)?;
        }
        Ok(n)
    }

    fn end_frame(&mut self, on: &mut impl FnMut(Observed<'_>)) -> Result<(), FrameError> {
        let Some(payload) = self.payload.take() else {
            return Ok(());
        };
        match payload.kind {
            Kind::Base64 if payload.fin => {
                self.message = Message::None;
                if let Some(text) = &mut self.base64 {
                    text.finish(on)?;
                }
            }
            Kind::Binary if payload.fin => self.message = Message::None,
            Kind::Control(Control::Close) => {
                let (code, reason) = match self.control.split_first_chunk::<2>() {
                    Some((code, reason)) => (
                        Some(u16::from_be_bytes(*code)),
                        String::from_utf8_lossy(reason).into_owned(),
                    ),
                    None => (None, String::new()),
                };
                on(Observed::Close { code, reason });
            }
            _ => {}
        }
        self.control.clear();
        Ok(())
    }
}

impl Base64Text {
    /// Reads the next characters of a message: the channel digit first, then base64.
    fn feed(
        &mut self,
        mut data: &[u8],
        on: &mut impl FnMut(Observed<'_>),
    ) -> Result<(), FrameError> {
        if self.channel.is_none() {
            let Some((&first, rest)) = data.split_first() else {
                return Ok(());
            };
            if !first.is_ascii_digit() {
                return Err(FrameError::NoChannel { first });
            }
            self.channel = Some(first - b'0');
            data = rest;
        }
        while !data.is_empty() {
            let want = DECODE_CHUNK - self.pending.len();
            let (now, later) = data.split_at(data.len().min(want));
            self.pending.extend_from_slice(now);
            data = later;
            let whole = self.pending.len() - self.pending.len() % 4;
            self.decode(whole, on)?;
        }
        Ok(())
    }

    /// Decodes what is left at the end of a message (padded by the sender).
    fn finish(&mut self, on: &mut impl FnMut(Observed<'_>)) -> Result<(), FrameError> {
        let result = self.decode(self.pending.len(), on);
        self.channel = None;
        self.pending.clear();
        result
    }

    /// Decodes the first `len` pending characters and reports them.
    fn decode(&mut self, len: usize, on: &mut impl FnMut(Observed<'_>)) -> Result<(), FrameError> {
        use base64::Engine;
        if len == 0 {
            return Ok(());
        }
        self.decoded.clear();
        base64::engine::general_purpose::STANDARD
            .decode_vec(&self.pending[..len], &mut self.decoded)
            .map_err(FrameError::Base64)?;
        self.pending.drain(..len);
        if let (Some(channel), false) = (self.channel, self.decoded.is_empty()) {
            on(Observed::Data {
                channel,
                data: &self.decoded,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;
