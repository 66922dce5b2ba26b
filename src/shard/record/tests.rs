//! Round trips and refusals of the batch codec.

use super::*;

fn sample() -> Batch {
    Batch {
        ops: vec![Op::Put(b"k".to_vec(), b"v".to_vec()), Op::Delete(b"gone".to_vec())],
        doc: Some(DocMark { id: "doc-7".to_owned(), complete: true }),
    }
}

/// The version-1 bytes of `sample()`: the id before the count.
fn sample_v1() -> Vec<u8> {
    let mut out = vec![VERSION_V1, FLAG_DOC | FLAG_DOC_COMPLETE];
    put_bytes(&mut out, b"doc-7");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.push(OP_PUT);
    put_bytes(&mut out, b"k");
    put_bytes(&mut out, b"v");
    out.push(OP_DELETE);
    put_bytes(&mut out, b"gone");
    out
}

#[test]
fn round_trip() {
    let chunk = Batch { doc: Some(DocMark { id: "d".into(), complete: false }), ..sample() };
    for batch in [sample(), Batch::default(), chunk] {
        let bytes = batch.encode();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(bytes.len(), batch.encoded_len());
        assert_eq!(Batch::decode(&bytes), Ok(batch));
    }
}

/// The version-2 bytes (main's range-delete layout: the id before the count) of a batch with
/// a put, a range delete and a document mark.
fn sample_v2() -> (Vec<u8>, Batch) {
    let mut out = vec![VERSION_V2_RANGE, FLAG_DOC];
    put_bytes(&mut out, b"doc-2");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.push(OP_PUT);
    put_bytes(&mut out, b"k");
    put_bytes(&mut out, b"v");
    out.push(OP_DELETE_RANGE);
    put_bytes(&mut out, b"a");
    put_bytes(&mut out, b"c");
    let batch = Batch {
        ops: vec![Op::Put(b"k".to_vec(), b"v".to_vec()), Op::DeleteRange(b"a".to_vec(), b"c".to_vec())],
        doc: Some(DocMark { id: "doc-2".to_owned(), complete: false }),
    };
    (out, batch)
}

#[test]
fn version_2_range_delete_records_still_decode_and_version_1_refuses_the_range_kind() {
    let (bytes, batch) = sample_v2();
    assert_eq!(Batch::decode(&bytes), Ok(batch.clone()));
    for len in 0..bytes.len() {
        assert!(Batch::decode(&bytes[..len]).is_err(), "v2 prefix of {len} bytes decoded");
    }
    let mut v1 = bytes.clone();
    v1[0] = VERSION_V1;
    let range_at = 2 + (4 + 5) + 4 + (1 + 5 + 5);
    assert_eq!(Batch::decode(&v1).unwrap_err(), format!("offset {range_at}: unknown op kind 3"));
    // Re-encoded, the same batch is version 3 and decodes to the same ops.
    let again = batch.encode();
    assert_eq!(again[0], VERSION);
    assert_eq!(Batch::decode(&again), Ok(batch));
}

#[test]
fn range_deletes_round_trip_in_version_3_and_the_builder_knows_what_they_erase() {
    let batch = Batch {
        ops: vec![
            Op::Put(b"b".to_vec(), b"1".to_vec()),
            Op::DeleteRange(b"a".to_vec(), b"c".to_vec()),
            Op::Delete(b"z".to_vec()),
        ],
        doc: None,
    };
    let bytes = batch.encode();
    assert_eq!(bytes[0], VERSION);
    assert_eq!(bytes.len(), batch.encoded_len());
    assert_eq!(Batch::decode(&bytes), Ok(batch));
    let mut builder = BatchBuilder::new(0);
    let before = builder.put(b"b", b"1");
    let range = builder.delete_range(b"a", b"c");
    let after = builder.put(b"b", b"2");
    assert_eq!(builder.op_at(range), OpRef::DeleteRange(b"a", b"c"));
    assert!(!builder.erased_before(before, b"b"));
    assert!(builder.erased_before(after, b"b"));
    assert!(!builder.erased_before(after, b"c"), "the end is exclusive");
}

#[test]
fn version_1_records_still_decode() {
    assert_eq!(Batch::decode(&sample_v1()), Ok(sample()));
    let bytes = sample_v1();
    for len in 0..bytes.len() {
        assert!(Batch::decode(&bytes[..len]).is_err(), "v1 prefix of {len} bytes decoded");
    }
}

#[test]
fn the_builder_writes_the_encoding_behind_its_head_room() {
    let mut builder = BatchBuilder::new(3);
    let put = builder.put(b"k", b"v");
    let delete = builder.delete(b"gone");
    assert_eq!((put, delete), (OPS_START as u32, OPS_START as u32 + 11));
    assert_eq!(builder.op_at(delete), OpRef::Delete(b"gone"));
    builder.finish(sample().doc.as_ref());
    assert_eq!(builder.payload(), &sample().encode()[..]);
    assert_eq!(&builder.frame_mut()[..3], &[0, 0, 0]);
    let view = BatchView::parse(builder.payload()).unwrap();
    assert_eq!(view.op_count(), 2);
    assert_eq!(view.ops().collect::<Vec<_>>(), vec![OpRef::Put(b"k", b"v"), OpRef::Delete(b"gone")]);
    assert_eq!(view.doc(), Some(("doc-7", true)));
}

#[test]
fn a_patched_value_replaces_the_placeholder() {
    let mut builder = BatchBuilder::new(0);
    let at = builder.put(b"n", &[0; 8]);
    builder.put(b"m", b"x");
    builder.patch_value(at, &7u64.to_le_bytes());
    builder.finish(None);
    let batch = Batch::decode(builder.payload()).unwrap();
    assert_eq!(batch.ops[0], Op::Put(b"n".to_vec(), 7u64.to_le_bytes().to_vec()));
    assert_eq!(batch.ops[1], Op::Put(b"m".to_vec(), b"x".to_vec()));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = sample().encode();
    for len in 0..bytes.len() {
        assert!(Batch::decode(&bytes[..len]).is_err(), "prefix of {len} bytes decoded");
    }
}

#[test]
fn absurd_counts_and_kinds_are_refused_with_an_offset() {
    let mut bytes = Batch::default().encode();
    bytes[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Batch::decode(&bytes).unwrap_err().starts_with("offset 2:"));
    let mut bytes = sample().encode();
    let op_at = OPS_START + 11;
    bytes[op_at] = 9;
    assert_eq!(Batch::decode(&bytes).unwrap_err(), format!("offset {op_at}: unknown op kind 9"));
    let mut bytes = sample().encode();
    bytes.push(0);
    assert!(Batch::decode(&bytes).unwrap_err().contains("after the batch"));
    let mut bytes = sample().encode();
    bytes[0] = 4;
    assert_eq!(Batch::decode(&bytes).unwrap_err(), "offset 0: unknown batch version 4");
    let mut bytes = sample().encode();
    let id_at = bytes.len() - 5;
    bytes[id_at] = 0xff;
    assert_eq!(Batch::decode(&bytes).unwrap_err(), format!("offset {}: document id is not UTF-8", id_at - 4));
}

#[test]
fn every_single_byte_flip_decodes_or_is_refused_without_a_panic() {
    let bytes = sample().encode();
    for at in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[at] ^= 1 << bit;
            if let Ok(batch) = Batch::decode(&flipped) {
                assert_eq!(Batch::decode(&batch.encode()), Ok(batch));
            }
        }
    }
}

#[test]
fn the_builders_view_is_what_parse_decodes_and_a_reset_builder_starts_empty() {
    let mut builder = BatchBuilder::new(5);
    assert!(builder.view().is_none(), "no view before the batch is closed");
    for round in 0..2 {
        builder.put(b"k", b"v");
        builder.delete_range(b"a", b"b");
        builder.delete(b"gone");
        let doc = DocMark { id: format!("doc-{round}"), complete: round == 1 };
        builder.finish(Some(&doc));
        let view = builder.view().unwrap();
        let parsed = BatchView::parse(builder.payload()).unwrap();
        assert_eq!(view.to_batch(), parsed.to_batch(), "round {round}");
        assert_eq!(view.to_batch().doc, Some(doc));
        assert_eq!(view.op_count(), 3);
        let capacity = builder.capacity_bytes();
        builder.reset();
        assert_eq!(builder.capacity_bytes(), capacity, "a reset keeps the allocation");
        assert_eq!(builder.op_count(), 0);
        assert_eq!(builder.frame_mut().len(), 5 + OPS_START);
    }
    builder.finish(None);
    assert_eq!(Batch::decode(builder.payload()), Ok(Batch::default()));
}
