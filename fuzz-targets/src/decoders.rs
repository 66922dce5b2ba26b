//! One fuzz target per decoder of disk bytes: WAL segment headers and records (and a whole
//! segment walked record by record), ARIES payloads, the shard's batch records, checkpoint
//! `META`, `HIGH_WATER` and data files, the `KERNEL` file (through the kernel's own reader, on
//! a simulated file), and the file and directory names the stores parse.
//!
//! Each target returns normally on any input. It panics only when the decoder breaks its
//! documented contract: a panic inside the decoder, or an accepted input that does not
//! round-trip (`decode(encode(x)) == x`; for the formats that promise it, only the exact
//! encoding decodes).

use std::path::Path;
use stormhold::StoreIdentity;
use stormhold::checkpoint::data::{decode_data, encode_data};
use stormhold::checkpoint::format::{
    checkpoint_dir_name, decode_high_water, decode_meta, encode_high_water, encode_meta,
    parse_checkpoint_dir_name,
};
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::kernel::layout;
use stormhold::shard::record::Batch;
use stormhold::wal::aries::records as aries;
use stormhold::wal::format::{
    RECORD_ALIGN_BYTES, RECORD_HEADER_BYTES, RecordKind, SEGMENT_HEADER_BYTES, decode_record,
    decode_record_header, decode_segment_header, encode_record, encode_segment_header,
    parse_segment_file_name, segment_file_name,
};

/// A target: a name and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every decoder target, by name (the cargo-fuzz target of the same name calls the same body).
pub const TARGETS: [Target; 9] = [
    ("wal_segment", wal_segment),
    ("wal_record", wal_record),
    ("aries_payload", aries_payload),
    ("shard_batch", shard_batch),
    ("checkpoint_meta", checkpoint_meta),
    ("checkpoint_data", checkpoint_data),
    ("high_water", high_water),
    ("kernel_file", kernel_file),
    ("file_names", file_names),
];

/// Records a segment walk decodes at most (bounds the target's time on a long input).
const WALK_RECORDS_MAX: usize = 512;

/// A WAL segment file: its header, then a walk over the record slots as recovery reads them.
pub fn wal_segment(data: &[u8]) {
    if let Ok(header) = decode_segment_header(data) {
        let again = decode_segment_header(&encode_segment_header(&header));
        assert_eq!(again.ok(), Some(header), "a segment header does not round-trip");
    }
    let mut at = usize::try_from(SEGMENT_HEADER_BYTES).unwrap_or(usize::MAX);
    for _ in 0..WALK_RECORDS_MAX {
        let Some(rest) = data.get(at..).filter(|rest| rest.len() >= RECORD_HEADER_BYTES) else { return };
        let step = match decode_record(rest) {
            Ok(record) => {
                let bytes = encode_record(&record);
                assert_eq!(&rest[..bytes.len()], &bytes[..], "only the exact encoding of a record decodes");
                bytes.len()
            }
            Err(_) => RECORD_ALIGN_BYTES as usize,
        };
        at = (at + step).next_multiple_of(RECORD_ALIGN_BYTES as usize);
    }
}

/// One WAL record: header alone, then the whole record.
pub fn wal_record(data: &[u8]) {
    let _ = decode_record_header(data);
    if let Ok(record) = decode_record(data) {
        let bytes = encode_record(&record);
        assert_eq!(decode_record(&bytes).ok(), Some(record), "a record does not round-trip");
        assert_eq!(&data[..bytes.len()], &bytes[..], "only the exact encoding of a record decodes");
    }
}

const KINDS: [RecordKind; 7] = [
    RecordKind::Data,
    RecordKind::Begin,
    RecordKind::Update,
    RecordKind::Commit,
    RecordKind::Abort,
    RecordKind::Clr,
    RecordKind::Checkpoint,
];

/// An ARIES payload: the first byte picks the record kind, the rest is the payload.
pub fn aries_payload(data: &[u8]) {
    let Some((&kind, payload)) = data.split_first() else { return };
    let kind = KINDS[usize::from(kind) % KINDS.len()];
    if let Ok(decoded) = aries::decode(kind, payload)
        && let Some(bytes) = aries::encode(&decoded)
    {
        assert_eq!(aries::decode(kind, &bytes).ok(), Some(decoded), "an ARIES payload does not round-trip");
    }
}

/// A shard's batch record (the payload of its WAL records).
pub fn shard_batch(data: &[u8]) {
    if let Ok(batch) = Batch::decode(data) {
        assert_eq!(Batch::decode(&batch.encode()).ok(), Some(batch), "a batch does not round-trip");
    }
}

/// A checkpoint's `META` file (only its exact encoding decodes).
pub fn checkpoint_meta(data: &[u8]) {
    if let Ok((meta, place)) = decode_meta(data) {
        let bytes = encode_meta(&meta, place).expect("a decoded META encodes");
        assert_eq!(bytes, data, "only the exact encoding of a META decodes");
    }
}

/// A checkpoint data file.
pub fn checkpoint_data(data: &[u8]) {
    if let Ok(decoded) = decode_data(data) {
        let bytes = encode_data(&decoded).expect("decoded checkpoint data encodes");
        assert_eq!(decode_data(&bytes).ok(), Some(decoded), "checkpoint data does not round-trip");
    }
}

/// A `HIGH_WATER` file (only its exact encoding decodes).
pub fn high_water(data: &[u8]) {
    if let Ok((id, place)) = decode_high_water(data) {
        assert_eq!(
            &encode_high_water(id, place)[..],
            data,
            "only the exact encoding of a HIGH_WATER decodes"
        );
    }
}

/// A `KERNEL` file, read by the kernel's own reader from a simulated file.
pub fn kernel_file(data: &[u8]) {
    let Ok(env) = SimEnv::new(0, FaultOptions::default()) else { return };
    let dir = Path::new("/k");
    let written = env.create_dir(dir).and_then(|()| {
        let file = env.open(&dir.join(layout::KERNEL_FILE_NAME), OpenOptions::create())?;
        file.write_all_at(data, 0)
    });
    if written.is_ok() {
        let _ = layout::read_meta(&env, dir);
    }
}

/// The names the stores parse: WAL segment files and checkpoint directories (a parsed id must
/// name the same file back).
pub fn file_names(data: &[u8]) {
    let name = String::from_utf8_lossy(data);
    if let Some(id) = parse_segment_file_name(&name) {
        assert_eq!(segment_file_name(id), name, "a segment name does not round-trip");
    }
    if let Some(id) = parse_checkpoint_dir_name(&name) {
        assert_eq!(checkpoint_dir_name(id), name, "a checkpoint directory name does not round-trip");
    }
}

/// Seed inputs of a target: the matching files of a real small store (and pieces of them).
/// Every target has at least one non-empty seed (`tests/fuzz_decoders.rs` checks it).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let files = crate::store::seed_files();
    let named = |pred: &dyn Fn(&str, &Path) -> bool| -> Vec<Vec<u8>> {
        files
            .iter()
            .filter(|(path, _)| pred(&file_name(path), path))
            .map(|(_, bytes)| bytes.clone())
            .collect()
    };
    let segments = named(&|name, _| parse_segment_file_name(name).is_some());
    let records: Vec<Vec<u8>> =
        segments.iter().filter_map(|s| s.get(SEGMENT_HEADER_BYTES as usize..).map(<[u8]>::to_vec)).collect();
    let payloads: Vec<Vec<u8>> =
        records.iter().filter_map(|r| decode_record(r).ok()).map(|record| record.payload).collect();
    let mut seeds = match target {
        "wal_segment" => segments,
        "wal_record" => records,
        "shard_batch" => payloads,
        "aries_payload" => payloads.iter().map(|p| [&[2u8][..], p].concat()).collect(),
        "checkpoint_meta" => named(&|name, _| name == "META"),
        // The small store removes no checkpoint, so it has no HIGH_WATER: the encoder's.
        "high_water" => [
            named(&|name, _| name == "HIGH_WATER"),
            vec![encode_high_water(1, None), encode_high_water(1, Some(StoreIdentity::default()))],
        ]
        .concat(),
        "kernel_file" => named(&|name, _| name == layout::KERNEL_FILE_NAME),
        "checkpoint_data" => named(&|name, path| {
            name != "META" && name != "HIGH_WATER" && path.components().any(|c| c.as_os_str() == "ckpt")
        }),
        "file_names" => files
            .iter()
            .flat_map(|(path, _)| {
                path.components().map(|c| c.as_os_str().to_string_lossy().into_owned().into_bytes())
            })
            .collect(),
        _ => Vec::new(),
    };
    seeds.push(Vec::new());
    seeds
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
