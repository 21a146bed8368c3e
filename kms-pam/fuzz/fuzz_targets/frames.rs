//! The exec/attach WebSocket frame reader: any bytes, cut where the first input bytes say, read
//! exactly as in one piece.
#![no_main]

use kms_pam::kube::frames::{FrameParser, Observed};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Seen {
    Data(u8, Vec<u8>),
    Close(Option<u16>, String),
    Failed,
}

fn push(seen: &mut Vec<Seen>, observed: Observed<'_>) {
    match (seen.last_mut(), observed) {
        (Some(Seen::Data(c, bytes)), Observed::Data { channel, data }) if *c == channel => {
            bytes.extend_from_slice(data)
        }
        (_, Observed::Data { channel, data }) => seen.push(Seen::Data(channel, data.to_vec())),
        (_, Observed::Close { code, reason }) => seen.push(Seen::Close(code, reason)),
    }
}

fn read(pieces: &[&[u8]]) -> Vec<Seen> {
    let mut parser = FrameParser::new();
    let mut seen = Vec::new();
    for piece in pieces {
        if parser.feed(piece, |o| push(&mut seen, o)).is_err() {
            seen.push(Seen::Failed);
            break;
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, bytes)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let pieces: Vec<&[u8]> = bytes.chunks(step).collect();
    assert_eq!(read(&pieces), read(&[bytes]));
});
