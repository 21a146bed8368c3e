//! Recording of upgraded streams: what `kubectl exec` and `kubectl attach` sent and received.
//!
//! When an upgrade succeeds, the gateway records a `StreamDetails` event (exec command,
//! container, tty, stdin; port-forward ports; the negotiated protocol). For exec and attach over
//! the WebSocket channel protocols (`v4.channel.k8s.io`, `v5.channel.k8s.io`, …) the splice then
//! hands a copy of each piece it carries, both ways, to a recording tap; a recorder task reads
//! the WebSocket frames ([`FrameParser`](crate::kube::frames::FrameParser)) and records the
//! channel payloads (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 v5 channel close) as
//! `StreamData` events, then a `RecordingEnded` summary.
//!
//! The base64 channel protocols (`base64.channel.k8s.io`, `v4.base64.channel.k8s.io`) are
//! recorded the same way, their text messages decoded.
//!
//! Caps: [`RecordingConfig::max_bytes`] (1 MiB by default) of payload per stream, all channels
//! together; past it what the user typed (stdin, resize: the bytes kubectl sends) is still kept up
//! to [`RecordingConfig::max_input_bytes`] (8 MiB), so a long output does not hide the commands
//! typed after it. Past a cap only byte counts go on, and `RecordingEnded` says `truncated: true`
//! and lists each channel's gap (from which offset, how many bytes). Status messages (channel 3,
//! the exit code) are kept beyond the caps, up to 64 KiB. The splice reserves room in the
//! recorder's bounded queue before it carries a piece, so it waits for the recorder instead of
//! outrunning it: nothing is dropped for speed (past the caps the recorder only parses and
//! counts). If recording becomes impossible mid-stream (unreadable frames, the recorder gone),
//! a resource whose policy is [`UnrecordedStreams::Deny`] has the stream ended; under `Allow` it
//! goes on and the recording says from where it is missing. SPDY streams, port-forward data and
//! other upgrades are not recorded: their details event says `recorded: false`, and a resource's
//! [`RecordingPolicy`] (deny by default) refuses them before they reach the cluster.

use serde::{Deserialize, Serialize};

use super::write::StreamDetails;
use crate::kube::StreamKind;

/// Whether a resource lets through streams the gateway cannot record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnrecordedStreams {
    /// Refuse them with a `Status` saying why (the default): SPDY exec/attach, port-forward,
    /// and any other upgrade whose bytes would pass unrecorded.
    #[default]
    Deny,
    /// Let them through; their details and byte counts are recorded, not their bytes.
    Allow,
}

impl UnrecordedStreams {
    /// `deny` or `allow`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Allow => "allow",
        }
    }
}

impl std::str::FromStr for UnrecordedStreams {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "deny" => Ok(Self::Deny),
            "allow" => Ok(Self::Allow),
            other => Err(format!("expected deny or allow, got {other:?}")),
        }
    }
}

/// A resource's recording settings, as KMS hands them to the gateway with a session's
/// credential: what happens to streams that cannot be recorded, and the caps (unset: the
/// gateway's [`RecordingConfig`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordingPolicy {
    /// Refuse or allow streams whose bytes cannot be recorded.
    #[serde(default)]
    pub unrecorded_streams: UnrecordedStreams,
    /// Payload bytes recorded per stream (all channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Input bytes (stdin, resize) recorded per stream, past `max_bytes` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_bytes: Option<u64>,
}

impl RecordingPolicy {
    /// Unrecordable streams refused, the gateway's caps.
    pub fn deny() -> Self {
        Self::default()
    }

    /// Unrecordable streams allowed (unrecorded), the gateway's caps.
    pub fn allow() -> Self {
        Self {
            unrecorded_streams: UnrecordedStreams::Allow,
            ..Self::default()
        }
    }

    /// With this treatment of unrecordable streams.
    pub fn with_unrecorded_streams(mut self, unrecorded: UnrecordedStreams) -> Self {
        self.unrecorded_streams = unrecorded;
        self
    }

    /// With a recording cap of its own.
    pub fn with_max_bytes(mut self, max_bytes: Option<u64>) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// With an input recording cap of its own.
    pub fn with_max_input_bytes(mut self, max_input_bytes: Option<u64>) -> Self {
        self.max_input_bytes = max_input_bytes;
        self
    }
}

/// How much of a stream is recorded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordingConfig {
    /// Most payload bytes recorded per stream, all channels together; 0 records nothing but the
    /// details. Default 1 MiB.
    pub max_bytes: u64,
    /// Most input bytes (stdin, resize: what the user typed) recorded per stream, past
    /// `max_bytes` too, so a long output does not hide what was typed after it. Default 8 MiB.
    pub max_input_bytes: u64,
    /// Pieces the splice may hand the recorder ahead of it (each at most one read, 8 KiB for
    /// the splice's copy); when they are all taken the splice waits. Default 64.
    pub queue_pieces: usize,
}

impl RecordingConfig {
    /// Records at most `max_bytes` of payload per stream (0: the details only).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Records at most `max_input_bytes` of input per stream.
    pub fn with_max_input_bytes(mut self, max_input_bytes: u64) -> Self {
        self.max_input_bytes = max_input_bytes;
        self
    }

    /// These settings with a resource's caps, where it sets them.
    pub fn for_policy(&self, policy: &RecordingPolicy) -> Self {
        Self {
            max_bytes: policy.max_bytes.unwrap_or(self.max_bytes),
            max_input_bytes: policy.max_input_bytes.unwrap_or(self.max_input_bytes),
            queue_pieces: self.queue_pieces,
        }
    }

    /// Lets the splice hand the recorder up to `pieces` reads ahead of it.
    pub fn with_queue_pieces(mut self, pieces: usize) -> Self {
        self.queue_pieces = pieces;
        self
    }
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_input_bytes: 8 * 1024 * 1024,
            queue_pieces: 64,
        }
    }
}

/// The WebSocket subprotocols whose exec and attach streams the recorder reads: the binary
/// channel protocols and their base64 variants.
pub const RECORDED_PROTOCOLS: [&str; 7] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "base64.channel.k8s.io",
];

/// Whether the recorder reads exec and attach streams of this WebSocket subprotocol.
pub fn is_recorded_protocol(protocol: &str) -> bool {
    RECORDED_PROTOCOLS.contains(&protocol.trim())
}

/// Which way bytes travel through the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From kubectl to the API server: stdin, resize (masked frames).
    ToServer,
    /// From the API server to kubectl: stdout, stderr, status (unmasked frames).
    ToClient,
}

impl StreamDetails {
    /// Reads what a stream is from its request's query (`command=`, `container=`, `tty=`,
    /// `stdin=`, `ports=`) and its `101` answer's `Upgrade` and `Sec-WebSocket-Protocol`.
    /// `recorded` says whether its bytes can be recorded.
    pub fn from_request(
        request_id: u64,
        stream: StreamKind,
        query: Option<&str>,
        answer: &http::HeaderMap,
    ) -> StreamDetails {
        let mut details = StreamDetails {
            request_id,
            stream,
            command: Vec::new(),
            container: None,
            tty: false,
            stdin: false,
            ports: Vec::new(),
            protocol: None,
            recorded: false,
        };
        let is_true = |v: &str| v != "0" && !v.eq_ignore_ascii_case("false");
        let pairs = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        for (key, value) in pairs {
            match key.as_ref() {
                "command" => details.command.push(value.into_owned()),
                "container" if details.container.is_none() => {
                    details.container = Some(value.into_owned());
                }
                "tty" => details.tty = is_true(&value),
                "stdin" => details.stdin = is_true(&value),
                "ports" => details.ports.extend(
                    value
                        .split(',')
                        .filter_map(|p| p.trim().parse::<u16>().ok()),
                ),
                _ => {}
            }
        }
        let header = |name| answer.get(name).and_then(|v| v.to_str().ok());
        let upgrade = header(http::header::UPGRADE).unwrap_or_default();
        let websocket = upgrade.eq_ignore_ascii_case("websocket");
        let subprotocol = header(http::header::SEC_WEBSOCKET_PROTOCOL);
        details.protocol = if websocket {
            subprotocol
        } else {
            Some(upgrade)
        }
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
        details.recorded = matches!(stream, StreamKind::Exec | StreamKind::Attach)
            && websocket
            && subprotocol.is_some_and(is_recorded_protocol);
        details
    }
}
