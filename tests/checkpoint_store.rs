//! The checkpoint store (`src/checkpoint/`) on the simulated disk: its formats never panic and
//! round-trip; create/list/latest/load over full and incremental chains; a crash at every Env
//! call of `create`, `apply_retention` and `delete` never leaves a half checkpoint as latest or
//! a retained checkpoint that does not load; damage falls back and is reported, never taken for
//! "no checkpoint"; partial directories are removed and their ids never reused; retention keeps
//! every parent a kept checkpoint needs; `full_every_incrementals` is enforced.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use stormhold::StoreIdentity;
use stormhold::checkpoint::format;
use stormhold::checkpoint::{
    CheckpointData, CheckpointError, CheckpointKind, CheckpointMeta, CheckpointOptions, CheckpointStore,
    FallbackReason, FileEntry, OpenReport, UserMeta, data,
};
use stormhold::env::sim::{CallKind, CrashMode, Fault, FaultOptions, SimEnv};
use stormhold::env::{Env, EnvFile, OpenOptions};

type State = BTreeMap<Vec<u8>, Vec<u8>>;
type Store = CheckpointStore<SimEnv>;

const DIR: &str = "/ckpt";

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn sim(seed: u64, crash: CrashMode) -> SimEnv {
    SimEnv::new(seed, FaultOptions { crash, ..FaultOptions::default() }).expect("valid fault options")
}

fn options(max_retained: usize, full_every_incrementals: u32) -> CheckpointOptions {
    CheckpointOptions { max_retained, full_every_incrementals, ..CheckpointOptions::default() }
}

fn open(env: &SimEnv, options: CheckpointOptions) -> (Store, OpenReport) {
    CheckpointStore::open(env.clone(), dir(), options).unwrap_or_else(|e| panic!("open: {e}"))
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

/// A full image of keys `0..n`, values tagged with `tag`.
fn image(n: u32, tag: &str) -> State {
    (0..n).map(|i| (key(i), format!("{tag}-{i}").into_bytes())).collect()
}

/// An increment putting `puts` (tagged) and deleting `deletes`.
fn increment(puts: &[u32], deletes: &[u32], tag: &str) -> CheckpointData {
    CheckpointData::Incremental {
        puts: puts.iter().map(|&i| (key(i), format!("{tag}-{i}").into_bytes())).collect(),
        deletes: deletes.iter().map(|&i| key(i)).collect(),
    }
}

fn applied(mut state: State, data: &CheckpointData) -> State {
    data.clone().apply_to(&mut state);
    state
}

fn user(offset: u64) -> UserMeta {
    UserMeta { source_offsets: [("orders".to_string(), offset)].into(), watermark: Some(offset * 10) }
}

/// Creates a checkpoint at `lsn` and returns its id.
fn create(store: &mut Store, lsn: u64, data: CheckpointData, parent: Option<u64>) -> u64 {
    store.create(lsn, lsn, user(lsn), data, parent).unwrap_or_else(|e| panic!("create at lsn {lsn}: {e}")).id
}

fn ids(store: &Store) -> Vec<u64> {
    store.list().iter().map(|meta| meta.id).collect()
}

fn ckpt_path(id: u64, name: &str) -> PathBuf {
    dir().join(format::checkpoint_dir_name(id)).join(name)
}

/// Flips one bit of the file at `path`, durably, through the Env (media damage).
fn flip_bit(env: &SimEnv, path: &Path, offset: u64) {
    let file = env.open(path, OpenOptions::read_write()).expect("open to damage");
    let mut byte = [0];
    file.read_exact_at(&mut byte, offset).expect("read the byte");
    file.write_all_at(&[byte[0] ^ 0x10], offset).expect("write the byte");
    file.sync_data().expect("sync the damage");
}

/// One checkpoint of a plan: its parent and its data. The i-th (0-based) gets lsn 10 * (i + 1).
type Plan = Vec<(Option<u64>, CheckpointData)>;

/// Creates the checkpoints of `plan` and returns the state of each; stops at the first error
/// (a crash).
fn build(store: &mut Store, plan: Plan) -> Result<BTreeMap<u64, State>, CheckpointError> {
    let mut states: BTreeMap<u64, State> = BTreeMap::new();
    for (i, (parent, data)) in plan.into_iter().enumerate() {
        let base: State = parent.map(|p| states[&p].clone()).unwrap_or_default();
        let lsn = 10 * (i as u64 + 1);
        let id = store.create(lsn, lsn, user(lsn), data.clone(), parent)?.id;
        states.insert(id, applied(base, &data));
    }
    Ok(states)
}

/// Full 1 (3 keys), incremental 2 on 1, incremental 3 on 2.
fn three_plan() -> Plan {
    vec![
        (None, CheckpointData::Full(image(3, "a"))),
        (Some(1), increment(&[1, 5], &[0], "b")),
        (Some(2), increment(&[6], &[5, 2], "c")),
    ]
}

/// Full 1, inc 2 (on 1), full 3, inc 4 (on 3), inc 5 (on 1), full 6, inc 7 (on 6). With
/// `max_retained` 2, retention keeps 7 and 6 and deletes 2, 4, 3, 5, 1 in that order (oldest first, a parent after its children).
fn seven_plan() -> Plan {
    vec![
        (None, CheckpointData::Full(image(3, "a"))),
        (Some(1), increment(&[4], &[0], "b")),
        (None, CheckpointData::Full(image(5, "c"))),
        (Some(3), increment(&[1], &[2], "d")),
        (Some(1), increment(&[2], &[1], "e")),
        (None, CheckpointData::Full(image(2, "f"))),
        (Some(6), increment(&[9], &[], "g")),
    ]
}

fn three_chain(store: &mut Store) -> BTreeMap<u64, State> {
    build(store, three_plan()).unwrap_or_else(|e| panic!("build: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Formats.

fn meta_strategy() -> impl Strategy<Value = CheckpointMeta> {
    let user = (prop::collection::btree_map("[a-z]{0,8}", any::<u64>(), 0..4), any::<Option<u64>>())
        .prop_map(|(source_offsets, watermark)| UserMeta { source_offsets, watermark });
    let file = ("[A-Za-z.]{1,12}", any::<u64>(), any::<u32>())
        .prop_map(|(name, len_bytes, crc32)| FileEntry { name, len_bytes, crc32 });
    let numbers = (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>());
    (numbers, user, any::<Option<u64>>(), any::<bool>(), prop::collection::vec(file, 0..3)).prop_map(
        |((id, epoch, lsn, wall_time_ms, size_bytes, key_count), user, parent, full, files)| CheckpointMeta {
            id,
            epoch,
            lsn,
            wall_time_ms,
            user,
            size_bytes,
            key_count,
            parent,
            kind: if full { CheckpointKind::Full } else { CheckpointKind::Incremental },
            files,
        },
    )
}

fn data_strategy() -> impl Strategy<Value = CheckpointData> {
    let map = prop::collection::btree_map(prop::collection::vec(any::<u8>(), 0..6), any::<Vec<u8>>(), 0..6);
    let set = prop::collection::btree_set(prop::collection::vec(any::<u8>(), 0..6), 0..6);
    prop_oneof![
        map.clone().prop_map(CheckpointData::Full),
        (map, set).prop_map(|(puts, deletes)| {
            let deletes = deletes.into_iter().filter(|k| !puts.contains_key(k)).collect();
            CheckpointData::Incremental { puts, deletes }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn meta_envelope_round_trips_and_refuses_every_bit_flip_and_truncation(
        meta in meta_strategy(), bit in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(),
    ) {
        let place = Some(StoreIdentity { store_id: bit.index(1 << 20) as u64, shard: 1, shards: 3 });
        let bytes = format::encode_meta(&meta, place).expect("encode");
        prop_assert_eq!(format::decode_meta(&bytes), Ok((meta.clone(), place)));
        let unplaced = format::encode_meta(&meta, None).expect("encode version 1");
        prop_assert_eq!(format::decode_meta(&unplaced), Ok((meta, None)));
        let mut flipped = bytes.clone();
        let at = bit.index(bytes.len() * 8);
        flipped[at / 8] ^= 1 << (at % 8);
        prop_assert!(format::decode_meta(&flipped).is_err(), "bit {} flipped and still decodes", at);
        prop_assert!(format::decode_meta(&bytes[..cut.index(bytes.len())]).is_err());
    }

    #[test]
    fn meta_envelope_decoder_never_panics_on_random_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..200), magic in any::<bool>(),
    ) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(b"STRMCKM\0");
        }
        if let Ok((meta, place)) = format::decode_meta(&bytes) {
            prop_assert_eq!(&format::encode_meta(&meta, place).expect("encode"), &bytes);
        }
        let _ = format::decode_high_water(&bytes);
    }

    #[test]
    fn data_file_round_trips_and_its_decoder_never_panics(
        data in data_strategy(), noise in prop::collection::vec(any::<u8>(), 0..100), at in any::<prop::sample::Index>(),
    ) {
        let bytes = data::encode_data(&data).expect("encode");
        prop_assert_eq!(data::decode_data(&bytes), Ok(data));
        let mut damaged = bytes.clone();
        let at = at.index(damaged.len());
        damaged.splice(at.., noise);
        if let Ok(decoded) = data::decode_data(&damaged) {
            prop_assert_eq!(data::encode_data(&decoded).expect("encode"), damaged);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Create, list, latest, load.

#[test]
fn create_list_latest_and_load_return_the_state_of_every_checkpoint_of_an_incremental_chain() {
    let env = sim(1, CrashMode::Off);
    let (mut store, report) = open(&env, options(3, 8));
    assert_eq!((report.valid.len(), report.next_id), (0, 1), "a fresh store");
    assert!(
        store.load_latest_valid().expect("nothing to load").is_none(),
        "an empty store has no checkpoint"
    );
    let states = three_chain(&mut store);
    for reopened in [false, true] {
        assert_eq!(ids(&store), [3, 2, 1], "newest first (reopened: {reopened})");
        let latest = store.latest().expect("a latest");
        assert_eq!((latest.id, latest.parent, latest.kind), (3, Some(2), CheckpointKind::Incremental));
        assert_eq!((latest.lsn, &latest.user, latest.key_count), (30, &user(30), 3));
        assert_eq!(latest.size_bytes, latest.files.iter().map(|f| f.len_bytes).sum::<u64>());
        for (&id, state) in &states {
            assert_eq!(&store.load(id).expect("load"), state, "checkpoint {id} (reopened: {reopened})");
        }
        let loaded = store.load_latest_valid().expect("load").expect("a checkpoint");
        assert_eq!((loaded.meta.id, &loaded.state, loaded.fallbacks.len()), (3, &states[&3], 0));
        assert_eq!(store.min_retained_lsn(), Some(10));
        drop(store);
        store = open(&env, options(3, 8)).0;
    }
    assert!(matches!(store.load(9), Err(CheckpointError::NotFound { id: 9 })));
}

#[test]
fn create_refuses_a_missing_parent_a_lower_lsn_and_mismatched_kinds_without_poisoning() {
    let env = sim(2, CrashMode::Off);
    let (mut store, _) = open(&env, options(3, 8));
    let one = create(&mut store, 10, CheckpointData::Full(image(2, "a")), None);
    let refusals = [
        store.create(1, 20, user(0), increment(&[1], &[], "x"), Some(7)),
        store.create(1, 20, user(0), increment(&[1], &[], "x"), None),
        store.create(1, 20, user(0), CheckpointData::Full(image(1, "x")), Some(one)),
        store.create(1, 5, user(0), CheckpointData::Full(image(1, "x")), None),
    ];
    for refusal in refusals {
        assert!(matches!(refusal, Err(CheckpointError::InvalidRequest(_))), "{refusal:?}");
    }
    assert_eq!(create(&mut store, 20, increment(&[1], &[], "x"), Some(one)), 2, "not poisoned, no id spent");
}

#[test]
fn full_every_incrementals_refuses_the_incremental_after_k_and_accepts_a_full_one() {
    let env = sim(3, CrashMode::Off);
    let (mut store, _) = open(&env, options(3, 2));
    let one = create(&mut store, 1, CheckpointData::Full(image(2, "a")), None);
    let two = create(&mut store, 2, increment(&[1], &[], "b"), Some(one));
    assert!(!store.full_due(two));
    let three = create(&mut store, 3, increment(&[2], &[], "c"), Some(two));
    assert!(store.full_due(three), "two incrementals chained on the full one");
    match store.create(4, 4, user(4), increment(&[3], &[], "d"), Some(three)) {
        Err(CheckpointError::FullCheckpointDue { parent: 3, incrementals: 2 }) => {}
        other => panic!("expected FullCheckpointDue, got {other:?}"),
    }
    let four = create(&mut store, 4, CheckpointData::Full(image(4, "d")), None);
    assert!(!store.full_due(four));
    create(&mut store, 5, increment(&[3], &[], "e"), Some(four));
    drop(store);
    let (mut every_full, _) = open(&env, options(3, 0));
    assert!(every_full.full_due(four), "with 0, every checkpoint is full");
    assert!(matches!(
        every_full.create(6, 6, user(6), increment(&[1], &[], "f"), Some(four)),
        Err(CheckpointError::FullCheckpointDue { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Crash at every Env call.

/// Post-crash images drawn per crash point and side (before or after the call): each pending
/// write and directory entry survives or not at random, so one image per point would miss
/// most combinations (a `META` rename kept while the data file's entry is lost is one in 8).
const CRASH_SEEDS_PER_POINT: u64 = 12;

/// Runs `setup` then `action` on a machine that crashes at call `call`, for every call from 1
/// until a run completes without crashing; after each crash, restarts, reopens and hands the
/// store and its report to `check`. Crash points inside `setup` are skipped. Returns how many
/// runs crashed inside `action`.
fn crash_at_every_call<T>(
    opts: &CheckpointOptions,
    setup: impl Fn(&mut Store) -> T,
    action: impl Fn(&mut Store, &T),
    mut check: impl FnMut(&Store, &OpenReport, &T, &str),
) -> u64 {
    let mut hits = 0;
    for call in 1.. {
        let mut completed = false;
        for variant in 0..2 * CRASH_SEEDS_PER_POINT {
            let (after, seed) = (variant % 2 == 1, call * CRASH_SEEDS_PER_POINT + variant / 2);
            let env = sim(seed, CrashMode::AtCall { call, after });
            let Ok((mut store, _)) = CheckpointStore::open(env.clone(), dir(), opts.clone()) else {
                continue;
            };
            let context = setup(&mut store);
            if env.is_crashed() {
                continue;
            }
            action(&mut store, &context);
            if !env.is_crashed() {
                completed = true;
                continue;
            }
            hits += 1;
            drop(store);
            env.restart();
            let (store, report) = open(&env, opts.clone());
            check(&store, &report, &context, &format!("call {call} after={after} seed {seed}"));
        }
        if completed {
            return hits;
        }
    }
    unreachable!()
}

#[test]
fn crash_at_every_call_of_create_leaves_the_new_checkpoint_whole_and_latest_or_absent() {
    let (mut new_seen, mut absent_seen, mut partial_seen) = (0, 0, 0);
    let inc4 = increment(&[7], &[1], "d");
    let hits = crash_at_every_call(
        &options(3, 8),
        |store| build(store, three_plan()).unwrap_or_default(),
        |store, _| {
            let _ = store.create(40, 40, user(40), inc4.clone(), Some(3));
        },
        |store, report, states, at| {
            assert!(report.damaged.is_empty() && report.broken_chains.is_empty(), "{at}: {report:?}");
            let latest = store.latest().expect("a latest").id;
            match latest {
                4 => {
                    new_seen += 1;
                    let expected = applied(states[&3].clone(), &inc4);
                    assert_eq!(store.load(4).expect("the new checkpoint loads"), expected, "{at}");
                }
                3 => absent_seen += 1,
                other => panic!("{at}: latest is {other}"),
            }
            if report.partial_removed.contains(&4) {
                partial_seen += 1;
                assert!(latest == 3 && store.next_id() >= 5, "{at}: a partial 4 is never reused");
            }
            for (&id, state) in states {
                assert_eq!(&store.load(id).expect("an older checkpoint loads"), state, "{at}: {id}");
            }
        },
    );
    assert!(hits > 20, "the crash points covered create ({hits})");
    assert!(new_seen > 0 && absent_seen > 0 && partial_seen > 0, "{new_seen} {absent_seen} {partial_seen}");
}

fn assert_every_listed_checkpoint_loads(store: &Store, states: &BTreeMap<u64, State>, at: &str) {
    for meta in store.list() {
        assert_eq!(store.load(meta.id).ok().as_ref(), states.get(&meta.id), "{at}: checkpoint {}", meta.id);
    }
}

#[test]
fn crash_at_every_call_of_apply_retention_keeps_every_retained_checkpoint_loadable() {
    let mut partial_seen = 0;
    let hits = crash_at_every_call(
        &options(2, 8),
        |store| build(store, seven_plan()).unwrap_or_default(),
        |store, _| {
            let _ = store.apply_retention();
        },
        |store, report, states, at| {
            assert!(report.damaged.is_empty() && report.broken_chains.is_empty(), "{at}: {report:?}");
            partial_seen += report.partial_removed.len();
            assert!(ids(store).starts_with(&[7, 6]), "{at}: the kept ones are there: {:?}", ids(store));
            assert_every_listed_checkpoint_loads(store, states, at);
            assert_eq!(store.next_id(), 8, "{at}: no id handed out again");
        },
    );
    assert!(hits > 20 && partial_seen > 0, "{hits} crash points, {partial_seen} partial directories");
    let (mut store, _) = open(&sim(0, CrashMode::Off), options(2, 8));
    let states = build(&mut store, seven_plan()).expect("build");
    assert_eq!(
        store.apply_retention().expect("retention"),
        [2, 4, 3, 5, 1],
        "oldest first, children before parents"
    );
    assert_eq!(ids(&store), [7, 6]);
    assert_every_listed_checkpoint_loads(&store, &states, "after retention");
    assert_eq!(store.min_retained_lsn(), Some(60));
}

#[test]
fn crash_at_every_call_of_deleting_the_newest_keeps_the_others_and_never_reuses_its_id() {
    let mut gone_seen = 0;
    let hits = crash_at_every_call(
        &options(3, 8),
        |store| build(store, seven_plan()).unwrap_or_default(),
        |store, _| {
            let _ = store.delete(7);
        },
        |store, report, states, at| {
            assert!(report.damaged.is_empty(), "{at}: {report:?}");
            gone_seen += u64::from(!ids(store).contains(&7));
            assert!((1..=6).all(|id| ids(store).contains(&id)), "{at}: {:?}", ids(store));
            assert_every_listed_checkpoint_loads(store, states, at);
            assert_eq!(store.next_id(), 8, "{at}: id 7 is never handed out again");
        },
    );
    assert!(hits > 10 && gone_seen > 0, "{hits} crash points, 7 gone after {gone_seen}");
}

/// Checkpoints 1 and 2, then the durable leftovers of two creates that crashed: directory 3
/// with its data and directory 4 with only `META.tmp`.
fn two_and_partials(env: &SimEnv) -> std::io::Result<BTreeMap<u64, State>> {
    let states = match CheckpointStore::open(env.clone(), dir(), options(3, 8)) {
        Ok((mut store, _)) => build(&mut store, three_plan()[..2].to_vec()).map_err(std::io::Error::other)?,
        Err(error) => return Err(std::io::Error::other(error)),
    };
    for (id, file) in [(3, "DATA"), (4, "META.tmp")] {
        let path = ckpt_path(id, file);
        env.create_dir(path.parent().expect("a directory"))?;
        env.open(&path, OpenOptions::create())?.write_all_at(b"half", 0)?;
        env.sync_dir(path.parent().expect("a directory"))?;
    }
    env.sync_dir(dir())?;
    Ok(states)
}

#[test]
fn crash_at_every_call_of_an_open_that_removes_partials_leaves_a_store_the_next_open_recovers() {
    let mut crashed_opens = 0;
    for call in 1.. {
        let env = sim(call, CrashMode::AtCall { call, after: call % 2 == 0 });
        let Ok(states) = two_and_partials(&env) else { continue };
        if CheckpointStore::open(env.clone(), dir(), options(3, 8)).is_ok() && !env.is_crashed() {
            break;
        }
        crashed_opens += 1;
        env.restart();
        let (store, report) = open(&env, options(3, 8));
        let at = format!("call {call}");
        assert_eq!((report.valid.clone(), report.next_id), (vec![2, 1], 5), "{at}: {report:?}");
        assert!(report.damaged.is_empty(), "{at}: {report:?}");
        assert_every_listed_checkpoint_loads(&store, &states, &at);
        for id in [3, 4] {
            let partial = dir().join(format::checkpoint_dir_name(id));
            assert!(!env.exists(&partial).expect("exists"), "{at}: partial {id} is gone");
        }
    }
    assert!(crashed_opens > 5, "the crash points covered open ({crashed_opens})");
}

// ---------------------------------------------------------------------------------------------
// Damage, partial directories, retention and deletion rules.

#[test]
fn corrupt_latest_data_makes_load_latest_valid_fall_back_and_name_the_file() {
    let env = sim(4, CrashMode::Off);
    let (mut store, _) = open(&env, options(3, 8));
    let states = three_chain(&mut store);
    flip_bit(&env, &ckpt_path(3, "DATA"), 40);
    let loaded = store.load_latest_valid().expect("a fallback loads").expect("a checkpoint");
    assert_eq!((loaded.meta.id, &loaded.state), (2, &states[&2]));
    assert_eq!(loaded.fallbacks.len(), 1);
    match &loaded.fallbacks[0].reason {
        FallbackReason::DamagedData(why) => assert!(why.contains("ckpt-0000000000000003/DATA"), "{why}"),
        other => panic!("{other:?}"),
    }
    flip_bit(&env, &ckpt_path(1, "DATA"), 40);
    match store.load_latest_valid() {
        Err(CheckpointError::NoLoadableCheckpoint { fallbacks }) => {
            assert_eq!(fallbacks.iter().map(|f| f.id).collect::<Vec<_>>(), [3, 2, 1]);
            assert!(fallbacks[1].to_string().contains("ckpt-0000000000000001/DATA"), "{}", fallbacks[1]);
        }
        other => panic!("expected NoLoadableCheckpoint, got {other:?}"),
    }
}

#[test]
fn corrupt_meta_is_a_reported_damaged_checkpoint_never_no_checkpoint_and_is_not_deleted() {
    let env = sim(5, CrashMode::Off);
    let (mut store, _) = open(&env, options(1, 8));
    create(&mut store, 10, CheckpointData::Full(image(2, "a")), None);
    drop(store);
    flip_bit(&env, &ckpt_path(1, "META"), 30);
    let (mut store, report) = open(&env, options(1, 8));
    assert_eq!((report.valid.len(), report.damaged.len(), report.next_id), (0, 1, 2), "{report:?}");
    assert!(report.damaged[0].reason.contains("checksum"), "{report:?}");
    assert!(store.latest().is_none());
    assert!(matches!(store.load_latest_valid(), Err(CheckpointError::NoLoadableCheckpoint { .. })));
    assert_eq!(store.apply_retention().expect("retention"), Vec::<u64>::new(), "damage is left alone");
    assert!(env.exists(&ckpt_path(1, "META")).expect("exists"), "the damaged checkpoint stays on disk");
    store.delete(1).expect("an explicit delete removes it");
    assert!(!env.exists(&ckpt_path(1, "META")).expect("exists"));
}

#[test]
fn partial_directories_are_never_latest_are_removed_and_their_ids_never_reused() {
    let env = sim(6, CrashMode::Off);
    let (mut store, _) = open(&env, options(3, 8));
    create(&mut store, 10, CheckpointData::Full(image(2, "a")), None);
    create(&mut store, 20, CheckpointData::Full(image(3, "b")), None);
    drop(store);
    for (id, file) in [(3, "DATA"), (5, "META.tmp")] {
        let path = ckpt_path(id, file);
        env.create_dir(path.parent().expect("a directory")).expect("mkdir");
        env.open(&path, OpenOptions::create()).expect("create").write_all_at(b"half", 0).expect("write");
    }
    let (store, report) = open(&env, options(3, 8));
    assert_eq!(
        (report.partial_removed.clone(), report.valid.clone(), report.next_id),
        (vec![3, 5], vec![2, 1], 6)
    );
    assert_eq!(store.latest().map(|m| m.id), Some(2));
    assert!(!env.exists(&dir().join(format::checkpoint_dir_name(5))).expect("exists"));
    drop(store);
    env.crash();
    env.restart();
    let (mut store, report) = open(&env, options(3, 8));
    assert_eq!((report.partial_removed.len(), report.next_id), (0, 6), "HIGH_WATER keeps ids 3..=5 spent");
    assert_eq!(create(&mut store, 30, CheckpointData::Full(image(1, "c")), None), 6);
}

#[test]
fn retention_never_removes_a_parent_that_a_kept_incremental_needs() {
    let env = sim(7, CrashMode::Off);
    let (mut store, _) = open(&env, options(2, 8));
    let one = create(&mut store, 10, CheckpointData::Full(image(3, "a")), None);
    create(&mut store, 20, increment(&[3], &[], "b"), Some(one));
    let three = create(&mut store, 30, CheckpointData::Full(image(4, "c")), None);
    create(&mut store, 40, increment(&[5], &[0], "d"), Some(three));
    let five = create(&mut store, 50, increment(&[6], &[1], "e"), Some(one));
    assert_eq!(store.apply_retention().expect("retention"), [2], "1 and 3 are parents of kept 5 and 4");
    assert_eq!(ids(&store), [5, 4, 3, 1]);
    assert_eq!(store.min_retained_lsn(), Some(10), "the WAL is kept back to the oldest parent");
    let six = create(&mut store, 60, increment(&[7], &[], "f"), Some(five));
    assert_eq!(store.apply_retention().expect("retention"), [4, 3], "6 and 5 keep 1");
    assert_eq!(ids(&store), [six, five, one]);
    for id in [six, five, one] {
        store.load(id).unwrap_or_else(|e| panic!("{id}: {e}"));
    }
}

#[test]
fn delete_refuses_a_parent_that_a_remaining_incremental_needs() {
    let env = sim(8, CrashMode::Off);
    let (mut store, _) = open(&env, options(3, 8));
    let states = three_chain(&mut store);
    assert!(matches!(store.delete(2), Err(CheckpointError::NeededByChain { id: 2, needed_by: 3 })));
    assert!(matches!(store.delete(1), Err(CheckpointError::NeededByChain { id: 1, needed_by: 2 })));
    store.delete(3).expect("a leaf can go");
    store.delete(2).expect("then its parent");
    assert_eq!(ids(&store), [1]);
    assert_eq!(store.load(1).expect("load"), states[&1]);
    drop(store);
    assert_eq!(open(&env, options(3, 8)).1.next_id, 4, "ids 2 and 3 stay spent");
}

#[test]
fn a_failed_sync_during_create_poisons_the_store_until_it_is_reopened() {
    let env = sim(9, CrashMode::Off);
    let (mut store, _) = open(&env, options(3, 8));
    create(&mut store, 10, CheckpointData::Full(image(2, "a")), None);
    env.arm(CallKind::SyncFile, Fault::SyncFailure { image_seed: 1 });
    assert!(matches!(
        store.create(2, 20, user(2), CheckpointData::Full(image(1, "b")), None),
        Err(CheckpointError::Io { .. })
    ));
    assert!(store.poisoned().is_some());
    assert!(matches!(store.apply_retention(), Err(CheckpointError::Poisoned { .. })));
    drop(store);
    let (mut store, report) = open(&env, options(3, 8));
    assert_eq!((report.partial_removed.clone(), report.next_id), (vec![2], 3), "the failed one is partial");
    assert_eq!(create(&mut store, 30, CheckpointData::Full(image(1, "c")), None), 3);
}

#[test]
fn an_io_error_while_loading_is_returned_not_taken_for_damage() {
    let env = sim(10, CrashMode::Off);
    let (mut store, _) = open(&env, options(3, 8));
    three_chain(&mut store);
    env.arm(CallKind::Read, Fault::IoError { persistent: false });
    assert!(matches!(store.load_latest_valid(), Err(CheckpointError::Io { .. })));
    assert_eq!(store.load_latest_valid().expect("load").expect("a checkpoint").meta.id, 3);
}

// ---------------------------------------------------------------------------------------------
// Snapshot.

/// Pinned scenario: full 1, incremental 2 on 1, full 3, incremental 4 on 3; 3's META rots; a
/// partial directory 5 is left behind.
#[test]
fn open_and_load_reports_of_a_pinned_damaged_store_match_the_snapshot() {
    let env = sim(11, CrashMode::Off);
    let (mut store, _) = open(&env, options(3, 8));
    create(&mut store, 10, CheckpointData::Full(image(2, "a")), None);
    create(&mut store, 20, increment(&[2], &[0], "b"), Some(1));
    create(&mut store, 30, CheckpointData::Full(image(3, "c")), None);
    create(&mut store, 40, increment(&[4], &[], "d"), Some(3));
    drop(store);
    flip_bit(&env, &ckpt_path(3, "META"), 25);
    env.create_dir(&dir().join(format::checkpoint_dir_name(5))).expect("mkdir");
    let (store, report) = open(&env, options(3, 8));
    let loaded = store.load_latest_valid().expect("load").expect("a checkpoint");
    let fallbacks: Vec<String> = loaded.fallbacks.iter().map(ToString::to_string).collect();
    let keys: BTreeSet<String> =
        loaded.state.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    insta::assert_debug_snapshot!((report, loaded.meta.id, fallbacks, keys), @r#"
    (
        OpenReport {
            valid: [
                4,
                2,
                1,
            ],
            damaged: [
                Unusable {
                    id: 3,
                    reason: "damaged metadata /ckpt/ckpt-0000000000000003/META: checksum mismatch: stored 0x5459a9c3, computed 0x7e237656",
                },
            ],
            broken_chains: [
                Unusable {
                    id: 4,
                    reason: "parent chain broken at checkpoint 3: damaged metadata /ckpt/ckpt-0000000000000003/META: checksum mismatch: stored 0x5459a9c3, computed 0x7e237656",
                },
            ],
            partial_removed: [
                5,
            ],
            high_water_damaged: None,
            next_id: 6,
        },
        2,
        [
            "checkpoint 4: parent chain broken at checkpoint 3: damaged metadata /ckpt/ckpt-0000000000000003/META: checksum mismatch: stored 0x5459a9c3, computed 0x7e237656",
            "checkpoint 3: damaged metadata /ckpt/ckpt-0000000000000003/META: checksum mismatch: stored 0x5459a9c3, computed 0x7e237656",
        ],
        {
            "key-0001",
            "key-0002",
        },
    )
    "#);
}
