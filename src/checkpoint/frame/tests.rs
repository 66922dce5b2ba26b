//! The version-2 layout: round trips at every frame size, and every kind of damage refused
//! at its offset without a panic or an allocation the input does not hold.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::checkpoint::data::{DATA_HEADER_BYTES, decode_data, encode_data, encode_header};
use crate::checkpoint::meta::CheckpointData;

/// The frames of a version-2 file: (header offset, header) of each.
fn frames_of(bytes: &[u8]) -> Vec<(usize, FrameHeader)> {
    let mut out = Vec::new();
    let mut at = DATA_HEADER_BYTES;
    while at + FRAME_HEADER_BYTES <= bytes.len() {
        let header = FrameHeader::parse(bytes[at..at + FRAME_HEADER_BYTES].try_into().expect("8 bytes"));
        out.push((at, header));
        at += FRAME_HEADER_BYTES + header.body_bytes as usize;
    }
    out
}

/// A file of `puts` and `deletes` framed by hand: a frame ends after each entry whose index
/// is in `ends` (and at each section's end).
fn framed(puts: &[(&[u8], &[u8])], deletes: &[&[u8]], ends: &[usize]) -> Vec<u8> {
    let mut framer = Framer::new();
    for (n, (key, value)) in puts.iter().enumerate() {
        framer.entry(key, value).expect("entry");
        if ends.contains(&n) {
            framer.close_frame();
        }
    }
    framer.close_frame();
    for (n, key) in deletes.iter().enumerate() {
        framer.entry(key, &[]).expect("entry");
        if ends.contains(&n) {
            framer.close_frame();
        }
    }
    let full = deletes.is_empty();
    let mut out = encode_header(full, puts.len() as u64, deletes.len() as u64).to_vec();
    out.extend_from_slice(&framer.into_bytes());
    out
}

#[test]
fn a_full_image_round_trips_in_frames_of_at_most_a_block_and_a_huge_entry_gets_its_own() {
    let mut state: BTreeMap<Vec<u8>, Vec<u8>> = (0..40_000u32)
        .map(|i| (format!("k{i:06}").into_bytes(), vec![(i % 251) as u8; 1 + (i % 90) as usize]))
        .collect();
    state.insert(b"k020000-huge".to_vec(), vec![9; 3 * FRAME_BYTES_MAX / 2]);
    state.insert(b"k030000-wide".to_vec(), vec![8; 300]);
    let data = CheckpointData::Full(state);
    let bytes = encode_data(&data).expect("encode");
    assert_eq!(decode_data(&bytes), Ok(data));
    let frames = frames_of(&bytes);
    assert!(frames.len() >= 4, "several frames: {}", frames.len());
    for (at, header) in &frames {
        assert!(header.entries == 1 || header.body_bytes as usize <= FRAME_BYTES_MAX, "frame at {at}");
    }
    let huge: Vec<_> = frames.iter().filter(|(_, h)| h.body_bytes as usize > FRAME_BYTES_MAX).collect();
    assert_eq!(huge.len(), 1, "the huge entry's frame");
    assert_eq!(huge[0].1.entries, 1, "holds it alone");
    // The frames' counts add up to the header's, and the file ends with the last frame.
    assert_eq!(frames.iter().map(|(_, h)| u64::from(h.entries)).sum::<u64>(), 40_002);
    let (last_at, last) = frames[frames.len() - 1];
    assert_eq!(last_at + FRAME_HEADER_BYTES + last.body_bytes as usize, bytes.len());
    // No entries: the header alone.
    assert_eq!(encode_data(&CheckpointData::Full(BTreeMap::new())).expect("encode").len(), DATA_HEADER_BYTES);
}

#[test]
fn frames_ended_anywhere_decode_to_the_same_data() {
    let puts: Vec<(Vec<u8>, Vec<u8>)> =
        (0..20u8).map(|i| (vec![b'p', i], vec![i; usize::from(i) * 13])).collect();
    let deletes: Vec<Vec<u8>> = (0..7u8).map(|i| vec![b'q', i]).collect();
    let put_refs: Vec<(&[u8], &[u8])> = puts.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let delete_refs: Vec<&[u8]> = deletes.iter().map(Vec::as_slice).collect();
    let data = CheckpointData::Incremental {
        puts: puts.iter().cloned().collect(),
        deletes: deletes.iter().cloned().collect::<BTreeSet<_>>(),
    };
    assert_eq!(decode_data(&encode_data(&data).expect("encode")), Ok(data.clone()));
    for ends in [vec![], vec![0], vec![3, 4, 5], (0..20).collect::<Vec<_>>(), vec![19]] {
        let bytes = framed(&put_refs, &delete_refs, &ends);
        assert_eq!(decode_data(&bytes), Ok(data.clone()), "frames ended after {ends:?}");
    }
}

#[test]
fn every_cut_and_every_flipped_byte_is_refused_or_decodes_to_data_that_round_trips() {
    let puts: [(&[u8], &[u8]); 4] = [(b"a", b"1"), (b"b", b""), (b"c", &[7; 130]), (b"d", b"44")];
    let bytes = framed(&puts, &[], &[1]);
    for len in 0..bytes.len() {
        let error = decode_data(&bytes[..len]).expect_err("a cut file");
        assert!(error.offset <= len as u64, "cut at {len}: {error}");
    }
    for at in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[at] ^= flip;
            if let Ok(decoded) = decode_data(&damaged) {
                let again = encode_data(&decoded).expect("encode");
                assert_eq!(decode_data(&again), Ok(decoded), "byte {at} ^ {flip:#x}");
            }
        }
    }
}

/// The error decoding `bytes` gives: (offset, detail).
fn refused(bytes: &[u8]) -> (u64, String) {
    let error = decode_data(bytes).expect_err("refused");
    (error.offset, error.detail)
}

#[test]
fn each_kind_of_bad_frame_is_refused_at_its_offset() {
    let puts: [(&[u8], &[u8]); 3] = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")];
    let good = framed(&puts, &[], &[0]);
    let first = DATA_HEADER_BYTES;
    let second = first + FRAME_HEADER_BYTES + 4;
    assert_eq!(frames_of(&good).iter().map(|(at, _)| *at).take(2).collect::<Vec<_>>(), [first, second]);

    // A length past the end of the file: refused before anything is read into it.
    let mut bad = good.clone();
    bad[first..first + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let (offset, detail) = refused(&bad);
    assert_eq!(offset, first as u64);
    assert!(detail.contains("the file ends first"), "{detail}");

    // A count that exceeds the header's, or that the body cannot hold.
    let mut bad = good.clone();
    bad[first + 4..first + 8].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(refused(&bad).0, first as u64);

    // A non-minimal varint: 0x81 0x00 is 1, spelled in two bytes.
    let mut bad = framed(&[(b"a", b"")], &[], &[]);
    let body = first + FRAME_HEADER_BYTES;
    bad.splice(body + 2..body + 3, [0x80, 0x00]);
    bad[first..first + 4].copy_from_slice(&4u32.to_le_bytes());
    let (offset, detail) = refused(&bad);
    assert_eq!((offset, detail.contains("minimal")), (body as u64, true), "{detail}");

    // Keys out of order across two frames: refused at the entry.
    let bad = framed(&[(b"b", b"1"), (b"a", b"2")], &[], &[0]);
    let (offset, detail) = refused(&bad);
    assert_eq!(offset, (second + FRAME_HEADER_BYTES) as u64);
    assert!(detail.contains("strictly increasing"), "{detail}");

    // Bytes after the last frame.
    let mut bad = good.clone();
    bad.push(0);
    let (offset, detail) = refused(&bad);
    assert_eq!((offset, detail.as_str()), (good.len() as u64, "1 trailing bytes"));

    // A delete that carries a value, and a delete of a key also put.
    let mut framer = Framer::new();
    framer.entry(b"a", b"1").expect("entry");
    framer.close_frame();
    framer.entry(b"b", b"x").expect("entry");
    let mut bad = encode_header(false, 1, 1).to_vec();
    bad.extend_from_slice(&framer.into_bytes());
    assert!(refused(&bad).1.contains("a delete carries a value"));
    let bad = framed(&[(b"a", b"1")], &[b"a"], &[]);
    assert!(refused(&bad).1.contains("also put"));

    // More than one entry in a frame larger than a block: the framer gives the first its
    // own frame; joined by hand, the frame is refused.
    let big = vec![1; FRAME_BYTES_MAX];
    let split = framed(&[(b"a", &big), (b"b", b"")], &[], &[]);
    let frames = frames_of(&split);
    assert_eq!(frames.iter().map(|(_, h)| h.entries).collect::<Vec<_>>(), [1, 1]);
    let (second_at, second) = frames[1];
    let mut joined = split.clone();
    joined.drain(second_at..second_at + FRAME_HEADER_BYTES);
    let body_bytes = frames[0].1.body_bytes + second.body_bytes;
    joined[first..first + 4].copy_from_slice(&body_bytes.to_le_bytes());
    joined[first + 4..first + 8].copy_from_slice(&2u32.to_le_bytes());
    let (offset, detail) = refused(&joined);
    assert_eq!(offset, first as u64);
    assert!(detail.contains("holding 2 entries"), "{detail}");
}

#[test]
fn a_frame_never_spans_the_puts_and_the_deletes() {
    // One put and one delete in one frame: the frame claims two entries where one put is left.
    let mut framer = Framer::new();
    framer.entry(b"a", b"1").expect("entry");
    framer.entry(b"b", b"").expect("entry");
    let mut bad = encode_header(false, 1, 1).to_vec();
    bad.extend_from_slice(&framer.into_bytes());
    let (offset, detail) = refused(&bad);
    assert_eq!(offset, DATA_HEADER_BYTES as u64);
    assert!(detail.contains("with 1 Puts left"), "{detail}");
    // Framed apart, the same entries decode.
    let good = framed(&[(b"a", b"1")], &[b"b"], &[]);
    let decoded = decode_data(&good).expect("decodes");
    let CheckpointData::Incremental { puts, deletes } = decoded else { panic!("an incremental") };
    assert_eq!((puts.len(), deletes.len()), (1, 1));
}
