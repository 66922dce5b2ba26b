//! Property tests of the WAL byte format (`src/wal/format.rs`): decoding any byte string never
//! panics and accepts only the exact encoding of a record; every record round-trips; every
//! single-bit flip and every truncation of an encoded record is refused; segment headers and
//! segment file names round-trip.

use proptest::prelude::*;
use stormhold::wal::format::{
    self, DecodeError, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX, Record, RecordKind,
    SEGMENT_HEADER_FIELDS_BYTES, SegmentHeader,
};

const KINDS: [RecordKind; 7] = [
    RecordKind::Data,
    RecordKind::Begin,
    RecordKind::Update,
    RecordKind::Commit,
    RecordKind::Abort,
    RecordKind::Clr,
    RecordKind::Checkpoint,
];

fn record() -> impl Strategy<Value = Record> {
    (
        prop::sample::select(KINDS.to_vec()),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(kind, lsn, durable_lsn, segment_id, txn_id, prev_lsn, payload)| Record {
            kind,
            lsn,
            durable_lsn,
            segment_id,
            txn_id,
            prev_lsn,
            payload,
        })
}

/// Sets the header checksum of `bytes` (at least a header long) so it passes: a decoder then
/// trusts the fields, which is where a lax decoder would accept what no writer wrote.
fn seal_header(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[4..RECORD_HEADER_BYTES]);
    bytes[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Byte strings that reach every branch of the decoder: pure noise; noise with a valid header
/// checksum; random fields with valid checksums; encoded records with bytes overwritten;
/// encoded records cut short or followed by noise.
fn candidate_bytes() -> impl Strategy<Value = Vec<u8>> {
    let noise = prop::collection::vec(any::<u8>(), 0..256);
    let sealed_noise = prop::collection::vec(any::<u8>(), RECORD_HEADER_BYTES..256).prop_map(|mut bytes| {
        seal_header(&mut bytes);
        bytes
    });
    // Random fields with both checksums right: reaches the length, kind and reserved checks.
    let sealed_fields = (
        prop::collection::vec(any::<u8>(), RECORD_HEADER_BYTES),
        prop::collection::vec(any::<u8>(), 0..200),
        0u8..10,
        prop::bool::ANY,
    )
        .prop_map(|(mut bytes, payload, kind, zero_reserved)| {
            bytes[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes[8..12].copy_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            bytes[12] = kind;
            if zero_reserved {
                bytes[13..16].fill(0);
            }
            bytes.extend(payload);
            seal_header(&mut bytes);
            bytes
        });
    let damaged = (record(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4))
        .prop_map(|(record, edits)| {
            let mut bytes = format::encode_record(&record);
            for (at, value) in edits {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            bytes
        });
    let reframed = (record(), any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(record, cut, tail)| {
            let mut bytes = format::encode_record(&record);
            bytes.truncate(cut.index(bytes.len() + 1));
            bytes.extend(tail);
            bytes
        });
    prop_oneof![noise, sealed_noise, sealed_fields, damaged, reframed]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn wal_format_decode_never_panics_and_accepts_only_an_exact_encoding(bytes in candidate_bytes()) {
        match format::decode_record(&bytes) {
            Ok(record) => {
                let encoded = format::encode_record(&record);
                prop_assert!(
                    bytes.starts_with(&encoded),
                    "decoded {:?} from bytes that are not its encoding",
                    record
                );
            }
            Err(DecodeError::LengthTooLarge(len)) => prop_assert!(len as usize > RECORD_PAYLOAD_BYTES_MAX),
            Err(DecodeError::Truncated { needed, available }) => prop_assert!(available < needed),
            Err(_) => {}
        }
        // The header decoder alone never panics either, and agrees with the whole decoder.
        if let Ok(header) = format::decode_record_header(&bytes) {
            prop_assert!(header.payload_len <= RECORD_PAYLOAD_BYTES_MAX);
        }
        let _ = format::decode_segment_header(&bytes);
    }

    #[test]
    fn wal_format_record_round_trips_even_with_bytes_after_it(record in record(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = format::encode_record(&record);
        prop_assert_eq!(bytes.len() as u64, format::record_bytes(record.payload.len()));
        prop_assert!(format::record_slot_bytes(record.payload.len()) >= bytes.len() as u64);
        prop_assert_eq!(format::record_slot_bytes(record.payload.len()) % format::RECORD_ALIGN_BYTES, 0);
        bytes.extend(tail);
        prop_assert_eq!(format::decode_record(&bytes), Ok(record));
    }

    #[test]
    fn wal_format_any_flipped_bit_or_truncation_of_a_record_is_refused(
        record in record(),
        bit in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = format::encode_record(&record);
        let mut flipped = bytes.clone();
        let bit = bit.index(bytes.len() * 8);
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(format::decode_record(&flipped).is_err(), "bit {} flipped and still decoded", bit);
        let cut = cut.index(bytes.len());
        let short = format::decode_record(&bytes[..cut]);
        prop_assert!(matches!(short, Err(DecodeError::Truncated { .. })), "cut at {}: {:?}", cut, short);
    }

    #[test]
    fn wal_format_segment_header_round_trips_and_any_flipped_bit_is_refused(
        segment_id in any::<u64>(),
        first_lsn in 1..=format::FIRST_LSN_MAX,
        (store_id, shard, shards) in (any::<u64>(), any::<u32>(), any::<u32>()),
        bit in 0..SEGMENT_HEADER_FIELDS_BYTES * 8,
    ) {
        let identity = format::StoreIdentity { store_id, shard, shards };
        let header = SegmentHeader { segment_id, first_lsn, identity };
        let mut bytes = format::encode_segment_header(&header).to_vec();
        prop_assert_eq!(format::decode_segment_header(&bytes), Ok(header));
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(format::decode_segment_header(&bytes).is_err());
    }

    #[test]
    fn wal_format_segment_file_names_round_trip_and_sort_by_id(a in any::<u64>(), b in any::<u64>()) {
        let (name_a, name_b) = (format::segment_file_name(a), format::segment_file_name(b));
        prop_assert_eq!(format::parse_segment_file_name(&name_a), Some(a));
        // The scan lists a directory sorted by name: that must be id order.
        prop_assert_eq!(name_a.cmp(&name_b), a.cmp(&b));
    }
}

#[test]
fn wal_format_header_with_nonzero_reserved_bytes_is_refused() {
    // Bug pinned: the decoder ignored header bytes 13..16, documented as zero, so bytes that a
    // writer of this format never produces decoded as a record (a future format's flags would
    // have been silently dropped).
    let record = Record {
        kind: RecordKind::Commit,
        lsn: 5,
        durable_lsn: 4,
        segment_id: 1,
        txn_id: 9,
        prev_lsn: 3,
        payload: b"commit".to_vec(),
    };
    let mut bytes = format::encode_record(&record);
    for at in 13..16 {
        let mut odd = bytes.clone();
        odd[at] = 1;
        seal_header(&mut odd);
        assert!(format::decode_record(&odd).is_err(), "reserved byte {at} set and still decoded");
    }
    seal_header(&mut bytes);
    assert_eq!(format::decode_record(&bytes), Ok(record));
}

#[test]
fn wal_format_segment_header_with_an_impossible_first_lsn_is_refused() {
    // Regression (review finding): a checksummed header naming first lsn 0 made
    // `last_lsn()` underflow, and one near u64::MAX overflowed `lsn + 1` during the scan.
    for first_lsn in [0, format::FIRST_LSN_MAX + 1, u64::MAX] {
        let bytes = format::encode_segment_header(&SegmentHeader {
            segment_id: 1,
            first_lsn,
            identity: format::StoreIdentity::default(),
        });
        assert_eq!(
            format::decode_segment_header(&bytes),
            Err(format::DecodeError::InvalidFirstLsn(first_lsn))
        );
    }
}
