//! The WebSocket frame reader of exec/attach recordings: any bytes, cut anywhere, never panic and
//! read the same as in one piece; well-formed channel messages come back byte for byte.

use proptest::prelude::*;

use super::check;
use crate::kube::frames::{FrameParser, Observed};

/// An observation with owned bytes, neighbouring pieces of one channel's data merged.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Data(u8, Vec<u8>),
    Close(Option<u16>, String),
    Failed,
}

fn push(seen: &mut Vec<Seen>, observed: Observed<'_>) {
    match (seen.last_mut(), observed) {
        (Some(Seen::Data(c, bytes)), Observed::Data { channel, data }) if *c == channel => {
            bytes.extend_from_slice(data);
        }
        (_, Observed::Data { channel, data }) => seen.push(Seen::Data(channel, data.to_vec())),
        (_, Observed::Close { code, reason }) => seen.push(Seen::Close(code, reason)),
    }
}

/// Feeds `bytes` cut at `cuts` (positions, in any order).
fn read(bytes: &[u8], cuts: &[usize]) -> Vec<Seen> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    let mut parser = FrameParser::new();
    let mut seen = Vec::new();
    for piece in points.windows(2) {
        if parser
            .feed(&bytes[piece[0]..piece[1]], |o| push(&mut seen, o))
            .is_err()
        {
            seen.push(Seen::Failed);
            break;
        }
    }
    seen
}

/// Frame-shaped bytes: plausible headers (masked or not, every length encoding) with payloads,
/// and raw noise.
fn wire() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        any::<u8>(),
        any::<bool>(),
        prop_oneof![0..126u64, Just(126), Just(127), 126..70_000u64],
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(first, masked, len, payload)| {
            let mut frame = vec![first];
            encode_len(&mut frame, masked, len);
            if masked {
                frame.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
            }
            frame.extend(payload);
            frame
        });
    prop_oneof![
        prop::collection::vec(frame, 0..6).prop_map(|f| f.concat()),
        prop::collection::vec(any::<u8>(), 0..400),
    ]
}

fn encode_len(out: &mut Vec<u8>, masked: bool, len: u64) {
    let mask = if masked { 0x80 } else { 0 };
    match len {
        0..=125 => out.push(mask | len as u8),
        126..=0xffff => {
            out.push(mask | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

#[test]
fn any_bytes_cut_anywhere_read_the_same_as_in_one_piece() {
    let input = (wire(), prop::collection::vec(any::<usize>(), 0..12));
    check("frames (bytes)", input, |(bytes, cuts)| {
        prop_assert_eq!(read(&bytes, &cuts), read(&bytes, &[]));
        Ok(())
    });
}

/// One channel message of the Kubernetes stream protocols: channel byte then data, sent in
/// `fragments` frames, masked (client to server) or not, with pings between the fragments.
#[derive(Clone, Debug)]
struct Message {
    channel: u8,
    data: Vec<u8>,
    fragments: usize,
    masked: bool,
    mask: [u8; 4],
}

fn message() -> impl Strategy<Value = Message> {
    (
        0..5u8,
        prop::collection::vec(any::<u8>(), 0..600),
        1..4usize,
        any::<bool>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(channel, data, fragments, masked, mask)| Message {
            channel,
            data,
            fragments,
            masked,
            mask,
        })
}

fn frame(out: &mut Vec<u8>, fin: bool, opcode: u8, message: &Message, payload: &[u8]) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    encode_len(out, message.masked, payload.len() as u64);
    if message.masked {
        out.extend_from_slice(&message.mask);
        out.extend(
            payload
                .iter()
                .zip(message.mask.iter().cycle())
                .map(|(b, m)| b ^ m),
        );
    } else {
        out.extend_from_slice(payload);
    }
}

fn encode(message: &Message, out: &mut Vec<u8>) {
    let mut payload = vec![message.channel];
    payload.extend_from_slice(&message.data);
    let size = payload.len().div_ceil(message.fragments).max(1);
    let pieces: Vec<&[u8]> = payload.chunks(size).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let (first, last) = (i == 0, i + 1 == pieces.len());
        frame(out, last, if first { 0x2 } else { 0x0 }, message, piece);
        if !last {
            frame(out, true, 0x9, message, b"ping");
        }
    }
}

#[test]
fn channel_messages_come_back_byte_for_byte() {
    let input = (
        prop::collection::vec(message(), 0..6),
        proptest::option::of((any::<u16>(), "[ -~]{0,40}")),
        prop::collection::vec(any::<usize>(), 0..12),
    );
    check("frames (messages)", input, |(messages, close, cuts)| {
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for m in &messages {
            encode(m, &mut bytes);
            if m.data.is_empty() {
                continue;
            }
            match expected.last_mut() {
                Some(Seen::Data(c, data)) if *c == m.channel => data.extend_from_slice(&m.data),
                _ => expected.push(Seen::Data(m.channel, m.data.clone())),
            }
        }
        if let Some((code, reason)) = &close {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            let unmasked = Message {
                channel: 0,
                data: Vec::new(),
                fragments: 1,
                masked: false,
                mask: [0; 4],
            };
            frame(&mut bytes, true, 0x8, &unmasked, &payload);
            expected.push(Seen::Close(Some(*code), reason.clone()));
        }
        prop_assert_eq!(read(&bytes, &cuts), expected);
        Ok(())
    });
}
