//! `DATA` versions on disk: a store written with version 1 (u32 lengths, no frames) still
//! loads, exactly, with and without a helper thread; and a version-2 file whose frames are
//! damaged behind a crc32 that matches them (so only decoding can catch it) fails the load
//! with the error `decode_data` gives for the same bytes, naming the file and the offset,
//! on the real OS (helper and not) and in the simulator. Small frames between full ones
//! load into about the file's bytes, and a kernel writing in its largest steps writes full
//! frames.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stormhold::checkpoint::data::{self, DATA_HEADER_BYTES};
use stormhold::checkpoint::frame::{FRAME_HEADER_BYTES, FrameHeader};
use stormhold::checkpoint::{
    CheckpointData, CheckpointError, CheckpointOptions, CheckpointStore, DATA_FILE_NAME, FallbackReason,
    META_FILE_NAME, UserMeta, format,
};
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions, OsEnv};

fn options() -> CheckpointOptions {
    CheckpointOptions { max_retained: 3, full_every_incrementals: 0, ..CheckpointOptions::default() }
}

/// About 10 MiB in many frames (past the size below which no helper is used).
fn state() -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..90_000u32)
        .map(|i| (format!("key-{i:07}").into_bytes(), vec![(i % 251) as u8; 90 + (i % 37) as usize]))
        .collect()
}

/// `data` in version 1: the header, then each put as u32 lengths and bytes.
fn version_1(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let mut out = data::encode_header(true, state.len() as u64, 0).to_vec();
    out[8..12].copy_from_slice(&data::DATA_VERSION_PACKED_U32.to_le_bytes());
    for (key, value) in state {
        for bytes in [key, value] {
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
    out
}

/// The whole file at `path`.
fn read<E: Env>(env: &E, path: &Path) -> Vec<u8> {
    let file = env.open(path, OpenOptions::read_only()).expect("open");
    let mut bytes = vec![0; file.len().expect("len") as usize];
    file.read_exact_at(&mut bytes, 0).expect("read");
    bytes
}

/// Replaces checkpoint `id`'s `DATA` in `dir` with `bytes` and rewrites its `META` to record
/// their length and crc32, as if they were written so.
fn replace_data<E: Env>(env: &E, dir: &Path, id: u64, bytes: &[u8]) -> PathBuf {
    let at = dir.join(format::checkpoint_dir_name(id));
    let write = |path: &Path, bytes: &[u8]| {
        let file = env.open(path, OpenOptions::create().truncate(true)).expect("open");
        file.write_all_at(bytes, 0).expect("write");
        file.sync_data().expect("sync");
    };
    let meta_path = at.join(META_FILE_NAME);
    let meta_bytes = read(env, &meta_path);
    let (mut meta, place) = format::decode_meta(&meta_bytes).expect("META decodes");
    meta.files[0].len_bytes = bytes.len() as u64;
    meta.files[0].crc32 = crc32fast::hash(bytes);
    meta.size_bytes = bytes.len() as u64;
    let data_path = at.join(DATA_FILE_NAME);
    write(&data_path, bytes);
    write(&meta_path, &format::encode_meta(&meta, place).expect("encode META"));
    data_path
}

fn entries(run: &stormhold::checkpoint::run::Run) -> Vec<(Vec<u8>, Vec<u8>)> {
    run.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

/// A store on the real OS whose one checkpoint holds `state`, and that checkpoint's id.
fn store_holding(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = CheckpointStore::open(OsEnv::new(), dir.path(), options()).expect("open");
    let data = CheckpointData::Full(state.clone());
    let id = store.create(1, 1, UserMeta::default(), data, None).expect("create").id;
    (dir, id)
}

/// The only checkpoint of `dir` loads as `expected`, with and without a helper, passing over
/// nothing.
fn assert_loads(dir: &Path, expected: &BTreeMap<Vec<u8>, Vec<u8>>, what: &str) {
    let expected: Vec<_> = expected.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for helper in [false, true] {
        let (store, _) = CheckpointStore::open(OsEnv::new(), dir, options()).expect("open");
        let loaded = store.load_latest_valid_run_with(helper).expect("load").expect("a checkpoint");
        assert!(loaded.fallbacks.is_empty(), "{what}, helper {helper}: {:?}", loaded.fallbacks);
        assert!(entries(&loaded.run) == expected, "{what}, helper {helper}: the state written");
    }
}

#[test]
fn a_version_1_data_file_still_loads_exactly_with_and_without_a_helper() {
    let written = state();
    let (dir, id) = store_holding(&written);
    let old = version_1(&written);
    replace_data(&OsEnv::new(), dir.path(), id, &old);
    assert_loads(dir.path(), &written, "version 1");
}

/// Damaged version-2 files: each refused by `decode_data` with a known error.
fn damaged(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let first = DATA_HEADER_BYTES;
    let header = |bytes: &[u8], at: usize| FrameHeader::parse(bytes[at..at + 8].try_into().expect("8 bytes"));
    let second = first + FRAME_HEADER_BYTES + header(good, first).body_bytes as usize;
    let third = second + FRAME_HEADER_BYTES + header(good, second).body_bytes as usize;
    let mut out = Vec::new();
    // The second frame's first key made larger than every later one: out of order at the
    // second entry of the frame (keys are "key-NNNNNNN", the first byte after the length).
    let mut disorder = good.to_vec();
    disorder[second + FRAME_HEADER_BYTES + 1] = b'z';
    out.push(("out of order", disorder));
    // The second frame's first key made smaller than the first frame's last: the frame is
    // in order on its own, out of order with the one before it (at its first entry).
    let mut behind = good.to_vec();
    behind[second + FRAME_HEADER_BYTES + 1] = b'a';
    out.push(("out of order with the frame before", behind));
    // The second frame's first key made equal to the first frame's last (keys and values
    // under 128 bytes: one-byte lengths).
    let mut equal = good.to_vec();
    let (mut at, mut last_key) = (first + FRAME_HEADER_BYTES, 0..0);
    for _ in 0..header(good, first).entries {
        let key_len = usize::from(good[at]);
        last_key = at + 1..at + 1 + key_len;
        at += 2 + key_len + usize::from(good[at + 1 + key_len]);
    }
    let second_key = second + FRAME_HEADER_BYTES + 1;
    equal.copy_within(last_key.clone(), second_key);
    assert_eq!(usize::from(good[second + FRAME_HEADER_BYTES]), last_key.len(), "keys of one length");
    out.push(("equal to the last key of the frame before", equal));
    // The third frame's length past the end of the file.
    let mut long = good.to_vec();
    long[third..third + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    out.push(("length past the end", long));
    // A frame's count one short: its last entry is left over.
    let mut short = good.to_vec();
    let count = header(good, second).entries - 1;
    short[second + 4..second + 8].copy_from_slice(&count.to_le_bytes());
    out.push(("count short", short));
    // Trailing bytes.
    let mut trailing = good.to_vec();
    trailing.extend_from_slice(&[0; 3]);
    out.push(("trailing bytes", trailing));
    // Cut inside the last frame.
    out.push(("cut", good[..good.len() - 40].to_vec()));
    out
}

/// The reason the only checkpoint of `dir` did not load.
fn load_failure<E: Env + Clone>(env: &E, dir: &Path, helper: bool) -> String {
    let (store, _) = CheckpointStore::open(env.clone(), dir, options()).expect("open");
    match store.load_latest_valid_run_with(helper).map(|loaded| loaded.map(|l| l.run.len())) {
        Err(CheckpointError::NoLoadableCheckpoint { fallbacks }) => match &fallbacks[0].reason {
            FallbackReason::DamagedData(why) => why.clone(),
            other => panic!("passed over for another reason: {other:?}"),
        },
        other => panic!("the damaged checkpoint loaded or failed otherwise: {other:?}"),
    }
}

#[test]
fn damaged_frames_behind_a_matching_crc_fail_the_load_as_decode_data_fails_them() {
    let (dir, id) = store_holding(&state());
    let good = read(&OsEnv::new(), &dir.path().join(format::checkpoint_dir_name(id)).join(DATA_FILE_NAME));
    let sim_dir = Path::new("/ckpt");
    for (what, bytes) in damaged(&good) {
        let error = data::decode_data(&bytes).expect_err(what);
        let path = replace_data(&OsEnv::new(), dir.path(), id, &bytes);
        let expected =
            format!("{}", CheckpointError::DataFormat { path: path.clone(), source: error.clone() });
        for helper in [false, true] {
            assert_eq!(load_failure(&OsEnv::new(), dir.path(), helper), expected, "{what}, helper {helper}");
        }
        // The simulator (no helper ever) reads the same frames the same way.
        let env = SimEnv::new(7, FaultOptions::default()).expect("env");
        let (mut store, _) = CheckpointStore::open(env.clone(), sim_dir, options()).expect("open");
        let sim_id =
            store.create(1, 1, UserMeta::default(), CheckpointData::Full(state()), None).expect("create").id;
        drop(store);
        let sim_path = replace_data(&env, sim_dir, sim_id, &bytes);
        let expected = format!("{}", CheckpointError::DataFormat { path: sim_path, source: error });
        assert_eq!(load_failure(&env, sim_dir, true), expected, "{what}, simulated");
    }
}

/// A full version-2 file of `state` whose frames end every `every` entries (small frames,
/// which the loader copies into the run instead of adopting).
fn in_small_frames(state: &BTreeMap<Vec<u8>, Vec<u8>>, every: usize) -> Vec<u8> {
    framed(state, |n, _| n % every == every - 1)
}

/// A full version-2 file of `state`, a frame ended after each entry for which `ends_frame`
/// (given the entry's number and payload bytes) says so, and wherever the framer must.
fn framed(state: &BTreeMap<Vec<u8>, Vec<u8>>, mut ends_frame: impl FnMut(usize, usize) -> bool) -> Vec<u8> {
    let mut framer = stormhold::checkpoint::frame::Framer::new();
    for (n, (key, value)) in state.iter().enumerate() {
        framer.entry(key, value).expect("entry");
        if ends_frame(n, key.len() + value.len()) {
            framer.close_frame();
        }
    }
    let mut out = data::encode_header(true, state.len() as u64, 0).to_vec();
    out.extend_from_slice(&framer.into_bytes());
    out
}

#[test]
fn small_frames_load_exactly_and_fail_as_decode_data_fails_them() {
    let written = state();
    let (dir, id) = store_holding(&written);
    // Frames of 3 entries, about 350 bytes each.
    let small = in_small_frames(&written, 3);
    replace_data(&OsEnv::new(), dir.path(), id, &small);
    assert_loads(dir.path(), &written, "frames of 3 entries");
    // Damage inside small frames, behind a matching crc: the same error as decode_data.
    for (what, bytes) in damaged(&small) {
        let error = data::decode_data(&bytes).expect_err(what);
        let path = replace_data(&OsEnv::new(), dir.path(), id, &bytes);
        let expected = format!("{}", CheckpointError::DataFormat { path: path.clone(), source: error });
        for helper in [false, true] {
            assert_eq!(load_failure(&OsEnv::new(), dir.path(), helper), expected, "{what}, helper {helper}");
        }
    }
}

/// Each full frame followed by a frame of one entry: what the staged writer wrote when a
/// step's budget equalled a frame's bound (the step ended one entry into the next frame).
fn full_frames_each_followed_by_one_entry(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let (mut body_bytes, mut next_alone) = (0, false);
    framed(state, |_, payload| {
        if std::mem::take(&mut next_alone) {
            body_bytes = 0;
            return true;
        }
        // Keys and values under 128 bytes: two bytes of lengths.
        body_bytes += payload + 2;
        // Full once the next entry of this size would not fit: that one goes alone.
        next_alone = body_bytes + payload + 2 > stormhold::checkpoint::frame::FRAME_BYTES_MAX;
        next_alone
    })
}

/// A one-entry frame after an adopted (full) frame finds no room in the run's last block:
/// its entry went into a fresh block of a whole `BLOCK_BYTES`, so such a file loaded into
/// twice its bytes (and took twice the page faults). It loads into about its bytes now.
#[test]
fn small_frames_between_full_ones_take_no_block_of_their_own() {
    let written = state();
    let (dir, id) = store_holding(&written);
    let bytes = full_frames_each_followed_by_one_entry(&written);
    let frames = frame_sizes(&bytes);
    let small = frames.iter().filter(|&&body| body < 1024).count();
    assert!(small >= 8 && small * 2 + 1 >= frames.len() && small * 2 <= frames.len(), "{frames:?}");
    replace_data(&OsEnv::new(), dir.path(), id, &bytes);
    assert_loads(dir.path(), &written, "full frames, each followed by one entry");
    for helper in [false, true] {
        let (store, _) = CheckpointStore::open(OsEnv::new(), dir.path(), options()).expect("open");
        let loaded = store.load_latest_valid_run_with(helper).expect("load").expect("a checkpoint");
        let allocated = loaded.run.allocated_bytes();
        assert!(
            allocated < bytes.len() * 5 / 4,
            "helper {helper}: {allocated} bytes allocated for a file of {}",
            bytes.len()
        );
    }
}

/// The body length of each frame of a version-2 `DATA` file.
fn frame_sizes(bytes: &[u8]) -> Vec<usize> {
    let mut at = DATA_HEADER_BYTES;
    let mut sizes = Vec::new();
    while at + FRAME_HEADER_BYTES <= bytes.len() {
        let header: [u8; FRAME_HEADER_BYTES] =
            bytes[at..at + FRAME_HEADER_BYTES].try_into().expect("8 bytes");
        let body = FrameHeader::parse(header).body_bytes as usize;
        sizes.push(body);
        at += FRAME_HEADER_BYTES + body;
    }
    assert_eq!(at, bytes.len(), "the frames end where the file does");
    sizes
}

/// A kernel whose WAL-bytes cap is large writes its checkpoints in steps of the largest
/// size, and a step ends before an entry that would close its frame: every frame but the
/// last is full, for small values and for values of 10 KB (a step of a whole frame's bound
/// left a one-entry frame after each full one; one stopped 4 KiB short, for entries larger
/// than that).
#[test]
fn a_checkpoint_written_in_the_largest_steps_has_full_frames() {
    let small = state();
    let large: BTreeMap<Vec<u8>, Vec<u8>> =
        (0..3_000u32).map(|i| (format!("key-{i:07}").into_bytes(), vec![(i % 251) as u8; 10_000])).collect();
    for (what, written) in [("small values", small), ("10 KB values", large)] {
        let frames = frames_of_a_kernel_checkpoint(&written);
        assert!(frames.len() >= 8, "{what}: {frames:?}");
        let (_, full) = frames.split_last().expect("frames");
        let bound = stormhold::checkpoint::frame::FRAME_BYTES_MAX;
        assert!(full.iter().all(|body| (bound * 9 / 10..=bound).contains(body)), "{what}: {frames:?}");
    }
}

/// The frame sizes of the checkpoint a one-shard kernel with a large WAL-bytes cap writes of
/// `state`.
fn frames_of_a_kernel_checkpoint(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<usize> {
    use stormhold::{Config, Durability, EpochConfig, Kernel};

    let dir = tempfile::tempdir().expect("tempdir");
    let epochs = EpochConfig {
        ops_max: 1_000_000_000,
        wal_bytes_max: 64 << 30,
        duration_max_ms: 86_400_000,
        ..EpochConfig::default()
    };
    let config = Config::builder().shards(1).epochs(epochs).build().expect("config");
    let kernel = Kernel::open(OsEnv::new(), dir.path(), config).expect("open");
    for (key, value) in state {
        kernel.put(key, value, Durability::None).expect("put");
    }
    kernel.checkpoint().expect("checkpoint");
    drop(kernel);
    let shard = stormhold::kernel::layout::shard_dir(dir.path(), 0).join("ckpt");
    let env = OsEnv::new();
    let mut data_files: Vec<_> = env
        .list_dir(&shard)
        .expect("list")
        .into_iter()
        .filter(|name| name.starts_with("ckpt-"))
        .map(|name| shard.join(name).join(DATA_FILE_NAME))
        .collect();
    data_files.sort();
    frame_sizes(&read(&env, data_files.last().expect("a checkpoint")))
}
