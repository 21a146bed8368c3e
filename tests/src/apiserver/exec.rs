//! exec and attach over WebSocket with the `v5.channel.k8s.io` / `v4.channel.k8s.io` framing:
//! every binary message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 status,
//! 4 resize; v5 adds 255 = close a channel); and with the base64 variants
//! (`v4.base64.channel.k8s.io`, `base64.channel.k8s.io`), whose text messages start with the
//! channel as an ASCII digit followed by the payload in base64, as the kubelet writes them.
//! SPDY is refused, as a server without it would.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::commands::{Action, Exit, Program};
use super::logs::container_name;
use super::record::StreamGuard;
use super::request::Query;
use super::response::{full, ApiError, Body};
use super::router::Target;
use super::store::Stored;
use super::State;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

/// The streams the client asked for.
#[derive(Debug, Clone, Copy)]
struct Streams {
    stdout: bool,
    stderr: bool,
    tty: bool,
    v5: bool,
    base64: bool,
}

pub(crate) fn serve(
    state: &Arc<State>,
    target: &Target,
    pod: &Stored,
    query: &Query,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (program, mut streams) = plan(target, pod, query)?;
    let picked = handshake(&request)?;
    let protocol = match &state.config.exec_subprotocol_answer {
        Some(answer) => answer.as_str(),
        None => picked,
    };
    streams.v5 = protocol == "v5.channel.k8s.io";
    streams.base64 = protocol.contains("base64");
    let accept = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let session = Pending {
        streams,
        program,
        guard: state.streams.enter(),
    };
    state
        .tasks
        .spawn(session.run_when_upgraded(request, state.cancel.clone()));
    Ok(switching_protocols(&accept, protocol))
}

/// The program to run and the streams to connect, from the query, with the real errors.
fn plan(target: &Target, pod: &Stored, query: &Query) -> Result<(Program, Streams), ApiError> {
    let attach = target.subresource.as_deref() == Some("attach");
    container_name(pod, query.get("container"))?;
    let stdin = query.flag("stdin")?;
    let (stdout, stderr, tty) = (
        query.flag("stdout")?,
        query.flag("stderr")?,
        query.flag("tty")?,
    );
    if !(stdin || stdout || stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let command = query.all("command");
    if !attach && command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let program = if attach {
        Program::attach(stdin, tty)
    } else {
        Program::exec(&command, pod.name(), tty)
    };
    // With a TTY, stderr is merged into stdout and has no channel of its own.
    let streams = Streams {
        stdout,
        stderr: stderr && !tty,
        tty,
        v5: false,
        base64: false,
    };
    Ok((program, streams))
}

fn switching_protocols(accept: &str, protocol: &str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    let protocol = Some(protocol).filter(|p| !p.is_empty());
    if let Some(Ok(protocol)) = protocol.map(HeaderValue::from_str) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

/// A session waiting for hyper to hand over the upgraded connection.
struct Pending {
    streams: Streams,
    program: Program,
    guard: StreamGuard,
}

impl Pending {
    async fn run_when_upgraded(self, request: Request<Incoming>, cancel: CancellationToken) {
        let upgraded = match hyper::upgrade::on(request).await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "api server double: exec upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let session = Session {
            ws,
            streams: self.streams,
            program: self.program,
            _guard: self.guard,
        };
        tokio::select! {
            () = cancel.cancelled() => {}
            () = session.run() => {}
        }
    }
}

/// Validates the WebSocket upgrade and picks the subprotocol (v5 over v4).
fn handshake(request: &Request<Incoming>) -> Result<&'static str, ApiError> {
    let headers = request.headers();
    let text = |name: header::HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    };
    let upgrade = text(header::UPGRADE);
    if upgrade.to_ascii_lowercase().contains("spdy") {
        return Err(ApiError::bad_request(
            "the API server double serves exec and attach over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) only; SPDY upgrade refused",
        ));
    }
    let connection_upgrade = text(header::CONNECTION)
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !upgrade.eq_ignore_ascii_case("websocket")
        || !connection_upgrade
        || request.version() != Version::HTTP_11
    {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    if text(header::SEC_WEBSOCKET_VERSION).trim() != "13"
        || headers.get(header::SEC_WEBSOCKET_KEY).is_none()
    {
        return Err(ApiError::bad_request(
            "invalid WebSocket handshake: Sec-WebSocket-Version 13 and a key are required",
        ));
    }
    let offered = text(header::SEC_WEBSOCKET_PROTOCOL);
    let offers = |p: &str| offered.split(',').any(|o| o.trim() == p);
    [
        "v5.channel.k8s.io",
        "v4.channel.k8s.io",
        "v4.base64.channel.k8s.io",
        "base64.channel.k8s.io",
    ]
    .into_iter()
    .find(|p| offers(p))
    .ok_or_else(|| ApiError::bad_request(format!("no supported WebSocket subprotocol in {offered:?}; the double speaks v5.channel.k8s.io, v4.channel.k8s.io and their base64 variants")))
}

/// The channel-3 `Status` for how the program ended, as the kubelet reports it.
fn exit_status(exit: &Exit) -> Value {
    match exit {
        Exit::Success => json!({"metadata": {}, "status": "Success"}),
        Exit::Code(code) => json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}}),
        Exit::NotFound(program) => {
            let message = format!("Internal error occurred: error executing command in container: failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": executable file not found in $PATH: unknown");
            json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
                   "details": {"causes": [{"message": message}]}, "code": 500})
        }
    }
}

/// A base64 channel message as channel byte + payload, or `None` when it is not one.
fn decode_base64_message(text: &str) -> Option<Vec<u8>> {
    let (first, rest) = text.as_bytes().split_first()?;
    let channel = first.checked_sub(b'0').filter(|c| *c <= 9)?;
    let mut data = vec![channel];
    data.extend(STANDARD.decode(rest).ok()?);
    Some(data)
}

/// A terminal's output processing (ONLCR): every `\n` goes out as `\r\n`.
fn onlcr(data: &Bytes) -> Bytes {
    if !data.contains(&b'\n') {
        return data.clone();
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    for &byte in data.iter() {
        if byte == b'\n' {
            out.push(b'\r');
        }
        out.push(byte);
    }
    Bytes::from(out)
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

struct Session {
    ws: Socket,
    streams: Streams,
    program: Program,
    _guard: StreamGuard,
}

impl Session {
    async fn run(mut self) {
        // A real exec reaches its process through kubelet and the container runtime, which takes
        // milliseconds. kubectl 1.32's WebSocket client once dropped output sent right after the
        // upgrade ("Unknown stream id 1, discarding message"; seen on a loaded machine), so the
        // double answers no faster than a kubelet could.
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        let actions = self.program.start();
        if let Some(exit) = self.perform(actions).await {
            return self.finish(exit).await;
        }
        loop {
            let deadline = self.program.deadline();
            let wake = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let actions = tokio::select! {
                message = self.ws.next() => match message {
                    // Like kube-apiserver, the subprotocol decides how a message is read, not
                    // its opcode: text on a binary protocol is binary (first byte = channel),
                    // binary on a base64 protocol is base64 text.
                    Some(Ok(Message::Binary(data))) if !self.streams.base64 => {
                        self.on_frame(&data)
                    }
                    Some(Ok(Message::Text(text))) if !self.streams.base64 => {
                        self.on_frame(text.as_bytes())
                    }
                    Some(Ok(Message::Text(text))) => match decode_base64_message(text.as_str()) {
                        Some(data) => self.on_frame(&data),
                        None => return,
                    },
                    Some(Ok(Message::Binary(data))) => {
                        match std::str::from_utf8(&data).ok().and_then(decode_base64_message) {
                            Some(data) => self.on_frame(&data),
                            None => return,
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                },
                () = wake => self.program.on_deadline(),
            };
            if let Some(exit) = self.perform(actions).await {
                return self.finish(exit).await;
            }
        }
    }

    fn on_frame(&mut self, data: &[u8]) -> Vec<Action> {
        match data.split_first() {
            Some((&STDIN, payload)) if !payload.is_empty() => self.program.on_stdin(payload),
            Some((&CLOSE, [channel])) if self.streams.v5 && *channel == STDIN => {
                self.program.on_stdin_closed()
            }
            // Resize events and empty frames change nothing here.
            _ => Vec::new(),
        }
    }

    /// Sends output; returns the exit if the program ended (or the socket broke).
    async fn perform(&mut self, actions: Vec<Action>) -> Option<Exit> {
        for action in actions {
            let (channel, data) = match action {
                Action::Exit(exit) => return Some(exit),
                Action::Stdout(data) => (STDOUT, data),
                Action::Stderr(data) if self.streams.tty => (STDOUT, data),
                Action::Stderr(data) => (STDERR, data),
            };
            let wanted = if channel == STDOUT {
                self.streams.stdout
            } else {
                self.streams.stderr
            };
            let data = if self.streams.tty { onlcr(&data) } else { data };
            if wanted && self.send(channel, &data).await.is_err() {
                return Some(Exit::Success);
            }
        }
        None
    }

    async fn send(
        &mut self,
        channel: u8,
        data: &[u8],
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        if self.streams.base64 {
            let text = format!("{channel}{}", STANDARD.encode(data));
            return self.ws.send(Message::Text(text.into())).await;
        }
        let mut frame = BytesMut::with_capacity(data.len() + 1);
        frame.put_u8(channel);
        frame.put_slice(data);
        self.ws.send(Message::Binary(frame.freeze())).await
    }

    /// Reports the exit on the status channel, closes, and waits briefly for the client's close.
    async fn finish(mut self, exit: Exit) {
        let status = serde_json::to_vec(&exit_status(&exit)).unwrap_or_default();
        if self.send(STATUS, &status).await.is_err() {
            return;
        }
        // client-go treats only a normal closure (1000) as the end of the streams.
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = self.ws.close(Some(normal)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminals_turn_newlines_into_crlf() {
        assert_eq!(
            onlcr(&Bytes::from_static(b"a\nb\n")),
            Bytes::from_static(b"a\r\nb\r\n")
        );
        assert_eq!(
            onlcr(&Bytes::from_static(b"plain")),
            Bytes::from_static(b"plain")
        );
    }

    #[test]
    fn exit_statuses_match_the_kubelet() {
        assert_eq!(
            exit_status(&Exit::Success),
            json!({"metadata": {}, "status": "Success"})
        );
        let failed = exit_status(&Exit::Code(3));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        let missing = exit_status(&Exit::NotFound("nope".into()));
        assert!(missing["message"]
            .as_str()
            .unwrap()
            .contains("executable file not found"));
    }
}
