//! Loading a checkpoint whose `DATA` is larger than the store's read block (1 MiB): the file is
//! decoded as it is streamed, block by block, so entries straddle block boundaries and a
//! value larger than a block needs the block to grow. The state must equal what was written,
//! and damage anywhere in the file must still be reported as a checksum failure naming the
//! file (as when the whole file was read and checked before decoding), never as a format
//! error and never as a silently different state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stormhold::checkpoint::{
    CheckpointData, CheckpointError, CheckpointOptions, CheckpointStore, UserMeta, format,
};
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions};

const DIR: &str = "/ckpt";
const BLOCK_BYTES: u64 = 1024 * 1024;

fn store(env: &SimEnv) -> CheckpointStore<SimEnv> {
    let options =
        CheckpointOptions { max_retained: 3, full_every_incrementals: 0, ..CheckpointOptions::default() };
    CheckpointStore::open(env.clone(), Path::new(DIR), options).expect("open").0
}

/// About 3.5 MiB of entries of odd sizes (so they straddle every block boundary), and one
/// value of 2.5 MiB (larger than a block) in the middle.
fn state() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state: BTreeMap<Vec<u8>, Vec<u8>> = (0..30_000u32)
        .map(|i| (format!("key-{i:06}").into_bytes(), vec![(i % 251) as u8; 97 + (i % 13) as usize]))
        .collect();
    state.insert(b"key-015000-huge".to_vec(), (0..(5 * BLOCK_BYTES / 2)).map(|i| (i % 241) as u8).collect());
    state
}

fn data_path(id: u64) -> PathBuf {
    Path::new(DIR).join(format::checkpoint_dir_name(id)).join("DATA")
}

#[test]
fn a_data_file_of_several_blocks_with_a_value_larger_than_a_block_loads_exactly() {
    let env = SimEnv::new(1, FaultOptions::default()).expect("sim");
    let mut checkpoints = store(&env);
    let written = state();
    let id = checkpoints
        .create(1, 1, UserMeta::default(), CheckpointData::Full(written.clone()), None)
        .expect("create")
        .id;
    let len = env.open(&data_path(id), OpenOptions::read_only()).and_then(|f| f.len()).expect("len");
    assert!(len > 5 * BLOCK_BYTES, "the file spans several blocks ({len} bytes)");
    drop(checkpoints);
    let loaded = store(&env).load(id).expect("load");
    assert_eq!(loaded.len(), written.len());
    assert!(loaded == written, "the streamed load returns the state that was written");
}

/// Flips one bit of `path` at `offset`, durably.
fn flip_bit(env: &SimEnv, path: &Path, offset: u64) {
    let file = env.open(path, OpenOptions::read_write()).expect("open to damage");
    let mut byte = [0];
    file.read_exact_at(&mut byte, offset).expect("read");
    file.write_all_at(&[byte[0] ^ 0x40], offset).expect("write");
    file.sync_data().expect("sync");
}

#[test]
fn damage_in_any_block_is_a_checksum_failure_naming_the_file_even_where_it_breaks_decoding() {
    // Offsets: the header's put count (decoding then fails at the end of the file), a key
    // length in the first block, the huge value in a middle block, and the last byte.
    let env = SimEnv::new(2, FaultOptions::default()).expect("sim");
    let id = store(&env)
        .create(1, 1, UserMeta::default(), CheckpointData::Full(state()), None)
        .expect("create")
        .id;
    let path = data_path(id);
    let len = env.open(&path, OpenOptions::read_only()).and_then(|f| f.len()).expect("len");
    for offset in [16, 32, 2 * BLOCK_BYTES + 17, len - 1] {
        let damaged = env.fork();
        flip_bit(&damaged, &path, offset);
        match store(&damaged).load(id) {
            Err(CheckpointError::DataChecksum { path: named, expected, actual }) => {
                assert_eq!(named, path, "offset {offset}");
                assert_ne!(expected, actual, "offset {offset}");
            }
            other => panic!("a bit flipped at offset {offset} loaded as {:?}", other.map(|s| s.len())),
        }
    }
}
