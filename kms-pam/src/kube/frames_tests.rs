use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::*;

const BINARY: OpCode = OpCode::Data(Data::Binary);
const CONTINUE: OpCode = OpCode::Data(Data::Continue);
const TEXT: OpCode = OpCode::Data(Data::Text);
const PING: OpCode = OpCode::Control(Control::Ping);
const CLOSE: OpCode = OpCode::Control(Control::Close);
const MASK: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

/// A frame as tungstenite's encoder writes it; masked payloads are XORed here.
fn frame(opcode: OpCode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let header = FrameHeader {
        is_final: fin,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
    };
    let mut out = Vec::new();
    header.format(payload.len() as u64, &mut out).unwrap();
    match mask {
        Some(m) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

fn message(channel: u8, data: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut payload = vec![channel];
    payload.extend_from_slice(data);
    frame(BINARY, true, &payload, mask)
}

/// What a parser reported, with consecutive data of one channel joined, so that any chunking of
/// the same bytes gives the same value.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    data: Vec<(u8, Vec<u8>)>,
    closes: Vec<(Option<u16>, String)>,
}

impl Seen {
    fn take(&mut self, observed: Observed<'_>) {
        match observed {
            Observed::Data { channel, data } => match self.data.last_mut() {
                Some((c, bytes)) if *c == channel => bytes.extend_from_slice(data),
                _ => self.data.push((channel, data.to_vec())),
            },
            Observed::Close { code, reason } => self.closes.push((code, reason)),
        }
    }
}

fn read(pieces: &[&[u8]]) -> Result<Seen, FrameError> {
    let mut parser = FrameParser::new();
    let mut seen = Seen::default();
    for piece in pieces {
        parser.feed(piece, |o| seen.take(o))?;
    }
    Ok(seen)
}

/// kubectl's side: stdin `ls\n` in two fragments with a ping between, a resize, a v5 close of
/// stdin, then a close frame; every frame masked.
fn client_stream() -> Vec<u8> {
    [
        frame(BINARY, false, &[0, b'l'], MASK),
        frame(PING, true, b"hi", MASK),
        frame(CONTINUE, true, b"s\n", MASK),
        message(4, br#"{"Width":80,"Height":24}"#, MASK),
        message(255, &[0], MASK),
        frame(CLOSE, true, &[0x03, 0xe8, b'b', b'y', b'e'], MASK),
    ]
    .concat()
}

/// The API server's side: stdout of 300 bytes (a 16-bit length), stderr, the status.
fn server_stream() -> Vec<u8> {
    let stdout: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
    [
        message(1, &stdout, None),
        message(2, b"warning\n", None),
        message(3, br#"{"status":"Success"}"#, None),
    ]
    .concat()
}

#[test]
fn reads_a_kubectl_exec_conversation_both_ways() {
    let client = read(&[&client_stream()]).unwrap();
    assert_eq!(
        client.data,
        [
            (0, b"ls\n".to_vec()),
            (4, br#"{"Width":80,"Height":24}"#.to_vec()),
            (255, vec![0]),
        ],
        "stdin across fragments, resize, and the v5 close of channel 0"
    );
    assert_eq!(client.closes, [(Some(1000), "bye".to_owned())]);

    let server = read(&[&server_stream()]).unwrap();
    assert_eq!(server.data.len(), 3);
    assert_eq!(server.data[0].1.len(), 300);
    assert_eq!(server.data[1], (2, b"warning\n".to_vec()));
}

#[test]
fn any_split_point_and_single_bytes_give_the_same_result() {
    for stream in [client_stream(), server_stream()] {
        let whole = read(&[&stream]).unwrap();
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(read(&[a, b]).unwrap(), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(read(&bytes).unwrap(), whole);
    }
}

#[test]
fn sixty_four_bit_lengths_stream_through_in_pieces() {
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    for mask in [None, MASK] {
        let stream = [message(1, &big, mask), message(3, b"{}", mask)].concat();
        assert_eq!(stream[1] & 0x7f, 127, "a 64-bit length");
        let pieces: Vec<&[u8]> = stream.chunks(8192).collect();
        let seen = read(&pieces).unwrap();
        assert_eq!(seen.data, [(1, big.clone()), (3, b"{}".to_vec())]);
    }
}

#[test]
fn the_channel_byte_may_come_in_a_later_fragment() {
    let stream = [
        frame(BINARY, false, &[], None),
        frame(CONTINUE, false, &[2], None),
        frame(CONTINUE, true, b"err", None),
        frame(BINARY, true, &[], None), // an empty message: no channel, nothing to report
        frame(CLOSE, true, &[], None),
    ]
    .concat();
    let seen = read(&[&stream]).unwrap();
    assert_eq!(seen.data, [(2, b"err".to_vec())]);
    assert_eq!(seen.closes, [(None, String::new())]);
}

/// kube-apiserver reads a message by the subprotocol, not by its opcode: a text message on a
/// binary channel protocol carries its channel in the first byte (stdin that runs), and a
/// binary message on a base64 protocol is base64 text. The reader does the same, so what runs
/// is what is recorded (before, text was only counted and the input that ran was lost).
#[test]
fn messages_are_read_by_the_subprotocol_whatever_their_opcode() {
    let mask = Some([1, 2, 3, 4]);
    let binary_protocol = [
        frame(TEXT, false, b"\x00rm -rf ", mask),
        frame(CONTINUE, true, b"/data\n", mask),
        message(0, b"ls\n", mask),
    ]
    .concat();
    let seen = read(&[&binary_protocol]).unwrap();
    assert_eq!(seen.data, [(0, b"rm -rf /data\nls\n".to_vec())]);

    let base64_protocol = [
        frame(BINARY, true, b"0dG9wIHNlY3JldAo=", mask),
        frame(TEXT, true, b"0bHMK", mask),
    ]
    .concat();
    let mut parser = FrameParser::base64();
    let mut seen = Seen::default();
    parser.feed(&base64_protocol, |o| seen.take(o)).unwrap();
    assert_eq!(seen.data, [(0, b"top secret\nls\n".to_vec())]);
}

#[test]
fn protocol_violations_stop_the_reader() {
    let mut compressed = frame(BINARY, true, b"\x01x", None);
    compressed[0] |= 0x40;
    let mut reserved = frame(BINARY, true, b"\x01x", None);
    reserved[0] = (reserved[0] & 0xf0) | 0x3;
    let cases: [(&str, Vec<u8>); 6] = [
        ("continuation first", frame(CONTINUE, true, b"x", None)),
        ("compressed", compressed),
        ("reserved opcode", reserved),
        ("fragmented ping", frame(PING, false, b"x", None)),
        ("oversized ping", frame(PING, true, &[0; 126], None)),
        (
            "message inside a message",
            [
                frame(BINARY, false, &[1], None),
                frame(BINARY, true, &[1], None),
            ]
            .concat(),
        ),
    ];
    for (name, bytes) in cases {
        let mut parser = FrameParser::new();
        assert!(parser.feed(&bytes, |_| {}).is_err(), "{name}");
        assert!(parser.failed(), "{name}");
        assert!(
            parser.feed(&message(1, b"x", None), |_| {}).is_err(),
            "{name}"
        );
    }
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_conversations_in_random_pieces() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..200 {
        let mut stream = Vec::new();
        let mut expected = Seen::default();
        for _ in 0..rng.below(8) + 1 {
            let channel = [0, 1, 2, 3, 4, 255][rng.below(6)];
            let len = [0, 1, 125, 126, 127, 1000, 65_535, 65_536][rng.below(8)];
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mask = (rng.below(2) == 1).then(|| (rng.next() as u32).to_be_bytes());
            let fragments = rng.below(3) + 1;
            let mut payload = vec![channel];
            payload.extend_from_slice(&data);
            let step = payload.len().div_ceil(fragments);
            for (i, part) in payload.chunks(step).enumerate() {
                if rng.below(4) == 0 {
                    stream.extend(frame(PING, true, b"p", mask));
                }
                let last = (i + 1) * step >= payload.len();
                stream.extend(frame(
                    if i == 0 { BINARY } else { CONTINUE },
                    last,
                    part,
                    mask,
                ));
            }
            if !data.is_empty() {
                expected.take(Observed::Data {
                    channel,
                    data: &data,
                });
            }
        }
        let mut pieces = Vec::new();
        let mut rest = stream.as_slice();
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(rng.below(rest.len().min(9000)) + 1);
            pieces.push(piece);
            rest = tail;
        }
        assert_eq!(read(&pieces).unwrap(), expected, "round {round}");
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        let mut parser = FrameParser::new();
        let _ = parser.feed(&bytes, |_| {});
        let _ = parser.feed(&bytes, |_| {});
    }
}
