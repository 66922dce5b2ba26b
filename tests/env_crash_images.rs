//! Pins `SimEnv::crash_images`: the exact set of post-crash images the fault model allows at a
//! crash point, the bound past which they are sampled, and the independence of `SimEnv::fork`.
//!
//! Image counts are worked out from the rules of `DESIGN.md` section 2: a pending write
//! survives, is lost, or is torn, each sector of a tear holding new bytes or, if its new bytes
//! did not land, old bytes, zeros or garbage; pending directory operations survive as any
//! subset, or as a prefix in ordered mode. Identical disks count once.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use stormhold::env::sim::{
    CrashImages, CrashMode, DirOrdering, FaultOptions, SimEnv, SimFile, TearFillWeights, WriteFateWeights,
};
use stormhold::env::{Env, EnvFile, OpenOptions};

const SECTOR: usize = 512;

fn sim(options: FaultOptions) -> SimEnv {
    SimEnv::new(7, options).expect("valid fault options")
}

fn path(text: &str) -> &Path {
    Path::new(text)
}

/// Bytes 0x80..=0xBF: never zero and never equal to [`new_bytes`] at the same index.
fn old_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| 0x80 | (i % 64) as u8).collect()
}

/// Bytes 0x40..=0x7F.
fn new_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| 0x40 | (i % 64) as u8).collect()
}

/// Creates the file `name` holding `bytes`, with its data and its directory entry durable.
fn durable_file(env: &SimEnv, name: &str, bytes: &[u8]) -> SimFile {
    let file = env.open(path(name), OpenOptions::create()).expect("open");
    file.write_all_at(bytes, 0).expect("write");
    file.sync_data().expect("sync_data");
    env.sync_dir(path("/")).expect("sync_dir");
    file
}

/// A durable file of `sectors` old sectors with one pending write of as many new sectors.
fn pending_overwrite(options: FaultOptions, sectors: usize) -> (SimEnv, SimFile) {
    let env = sim(options);
    let file = durable_file(&env, "/f", &old_bytes(sectors * SECTOR));
    file.write_all_at(&new_bytes(sectors * SECTOR), 0).expect("write");
    (env, file)
}

/// The whole file, as a new handle reads it.
fn read_file(env: &SimEnv, name: &str) -> io::Result<Vec<u8>> {
    let file = env.open(path(name), OpenOptions::read_only())?;
    let mut buf = vec![0; file.len()? as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Restarts every image (each must have crashed) and reads `name` from it.
fn contents(images: &CrashImages, name: &str) -> Vec<Vec<u8>> {
    let read = |image: &SimEnv| {
        assert!(image.is_crashed(), "an image is handed out crashed");
        image.restart();
        read_file(image, name).expect("read the file from the image")
    };
    images.images.iter().map(read).collect()
}

/// What a sector of a torn write holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Sector {
    New,
    Old,
    Zero,
    Garbage,
}

fn classify(bytes: &[u8], new: &[u8], old: &[u8]) -> Sector {
    if bytes == new {
        Sector::New
    } else if bytes == old {
        Sector::Old
    } else if bytes.iter().all(|&b| b == 0) {
        Sector::Zero
    } else {
        assert!(bytes.iter().all(|&b| b != 0), "garbage is clearly non-zero: {bytes:?}");
        Sector::Garbage
    }
}

fn sectors_of(file: &[u8]) -> Vec<Sector> {
    let (new, old) = (new_bytes(file.len()), old_bytes(file.len()));
    let sectors = file.chunks(SECTOR).zip(new.chunks(SECTOR).zip(old.chunks(SECTOR)));
    sectors.map(|(bytes, (new, old))| classify(bytes, new, old)).collect()
}

#[test]
fn crash_images_of_a_two_sector_write_are_every_sector_combination() {
    // 18 runs of the rules: survive, lose, and a tear of 2 sectors that each hold new, old,
    // zero or garbage bytes (4 * 4). The tear with both sectors new is the surviving write and
    // the tear with both old is the lost one, so 16 distinct images: every combination.
    let (env, _file) = pending_overwrite(FaultOptions::default(), 2);
    let crashes = env.stats().crashes;
    let result = env.crash_images(64);
    assert!(result.exhaustive);
    assert_eq!(result.images.len(), 16);
    let seen: Vec<Vec<Sector>> = contents(&result, "/f").iter().map(|file| sectors_of(file)).collect();
    let distinct: BTreeSet<Vec<Sector>> = seen.iter().cloned().collect();
    assert_eq!(distinct.len(), 16, "every image is distinct: {seen:?}");
    let all = [Sector::New, Sector::Old, Sector::Zero, Sector::Garbage];
    let expected: BTreeSet<Vec<Sector>> =
        all.iter().flat_map(|&a| all.iter().map(move |&b| vec![a, b])).collect();
    assert_eq!(distinct, expected);
    for image in &result.images {
        assert_eq!(image.stats().crashes, crashes + 1, "each image counts its own crash");
        assert_eq!(image.stats().crash_images, 1);
    }
}

#[test]
fn crash_images_hold_exactly_the_bound_when_it_fits() {
    let (env, _file) = pending_overwrite(FaultOptions::default(), 2);
    let at_bound = env.crash_images(16);
    assert!(at_bound.exhaustive);
    assert_eq!(at_bound.images.len(), 16);
    let below = env.crash_images(15);
    assert!(!below.exhaustive);
    assert_eq!(below.images.len(), 15);
}

#[test]
fn crash_images_without_tears_are_the_write_kept_or_lost() {
    let options = FaultOptions {
        write_fate: WriteFateWeights { survive: 1, lose: 1, tear: 0 },
        ..FaultOptions::default()
    };
    let (env, _file) = pending_overwrite(options, 2);
    let result = env.crash_images(64);
    assert!(result.exhaustive);
    let files: BTreeSet<Vec<u8>> = contents(&result, "/f").into_iter().collect();
    assert_eq!(files, BTreeSet::from([new_bytes(2 * SECTOR), old_bytes(2 * SECTOR)]));
    assert_eq!(result.images.len(), 2);
}

/// A torn 100-byte write at the start of a durable old sector, whose unlanded bytes are zeros.
fn zeroing_tear_images(powersafe_overwrite: bool) -> BTreeSet<Vec<u8>> {
    let options = FaultOptions {
        write_fate: WriteFateWeights { survive: 0, lose: 0, tear: 1 },
        tear_fill: TearFillWeights { old: 0, zero: 1, garbage: 0 },
        powersafe_overwrite,
        ..FaultOptions::default()
    };
    let env = sim(options);
    let file = durable_file(&env, "/f", &old_bytes(SECTOR));
    file.write_all_at(&new_bytes(100), 0).expect("write");
    let result = env.crash_images(64);
    assert!(result.exhaustive);
    assert_eq!(result.images.len(), 2, "the sector landed or was zeroed");
    contents(&result, "/f").into_iter().collect()
}

#[test]
fn crash_images_respect_fill_weights_and_powersafe_overwrite() {
    let mut landed = old_bytes(SECTOR);
    landed[..100].copy_from_slice(&new_bytes(100));
    let mut zeroed_write = old_bytes(SECTOR);
    zeroed_write[..100].fill(0);
    assert_eq!(zeroing_tear_images(true), BTreeSet::from([landed.clone(), zeroed_write]));
    assert_eq!(zeroing_tear_images(false), BTreeSet::from([landed, vec![0; SECTOR]]));
}

/// The root listing of every image after two unsynced creates.
fn listings_after_two_creates(dir_ordering: DirOrdering) -> Vec<Vec<String>> {
    let env = sim(FaultOptions { dir_ordering, ..FaultOptions::default() });
    env.open(path("/a"), OpenOptions::create()).expect("create a");
    env.open(path("/b"), OpenOptions::create()).expect("create b");
    let result = env.crash_images(64);
    assert!(result.exhaustive);
    let list = |image: &SimEnv| {
        image.restart();
        image.list_dir(path("/")).expect("list")
    };
    result.images.iter().map(list).collect()
}

fn names(listings: &[&[&str]]) -> BTreeSet<Vec<String>> {
    listings.iter().map(|names| names.iter().map(|name| name.to_string()).collect()).collect()
}

#[test]
fn crash_images_of_two_creates_are_every_subset_when_independent() {
    let listings: BTreeSet<Vec<String>> =
        listings_after_two_creates(DirOrdering::Independent).into_iter().collect();
    assert_eq!(listings, names(&[&[], &["a"], &["b"], &["a", "b"]]));
}

#[test]
fn crash_images_of_two_creates_are_the_prefixes_when_ordered() {
    let listings = listings_after_two_creates(DirOrdering::Ordered);
    assert_eq!(listings.len(), 3);
    let listings: BTreeSet<Vec<String>> = listings.into_iter().collect();
    assert_eq!(listings, names(&[&[], &["a"], &["a", "b"]]));
}

#[test]
fn crash_images_with_nothing_pending_are_the_durable_state() {
    let env = sim(FaultOptions::default());
    let _file = durable_file(&env, "/f", &old_bytes(SECTOR));
    let result = env.crash_images(64);
    assert!(result.exhaustive);
    assert_eq!(contents(&result, "/f"), vec![old_bytes(SECTOR)]);
    assert_eq!(result.images[0].list_dir(path("/")).expect("list"), vec!["f".to_string()]);
}

#[test]
fn crash_images_of_a_crashed_machine_are_itself() {
    let (env, _file) = pending_overwrite(FaultOptions::default(), 2);
    env.crash();
    let expected = env.durable_contents(path("/f")).expect("path");
    let result = env.crash_images(64);
    assert!(result.exhaustive);
    assert_eq!(result.images.len(), 1);
    assert_eq!(result.images[0].stats(), env.stats(), "no second crash");
    assert_eq!(contents(&result, "/f"), vec![expected.expect("durable file")]);
}

#[test]
fn crash_images_past_the_bound_are_sampled_the_same_way_each_time() {
    // A tear of 4 sectors alone has 4^4 = 256 distinct images, far past the bound of 10.
    let (env, _file) = pending_overwrite(FaultOptions::default(), 4);
    let first = env.crash_images(10);
    let second = env.crash_images(10);
    assert!(!first.exhaustive);
    assert_eq!(first.images.len(), 10);
    assert_eq!(second.images.len(), 10);
    let hashes = |images: &CrashImages| images.images.iter().map(SimEnv::trace_hash).collect::<Vec<_>>();
    assert_eq!(hashes(&first), hashes(&second));
    assert_eq!(contents(&first, "/f"), contents(&second, "/f"));
    assert!(first.images.iter().all(|image| image.stats().crash_images == 1));
}

#[test]
fn crash_images_leave_the_original_untouched_and_forks_independent() {
    let (env, file) = pending_overwrite(FaultOptions::default(), 2);
    let (trace_hash, stats) = (env.trace_hash(), env.stats());
    let result = env.crash_images(64);
    assert!(!env.is_crashed());
    assert_eq!((env.trace_hash(), env.stats()), (trace_hash, stats));
    let mut buf = vec![0; 2 * SECTOR];
    file.read_exact_at(&mut buf, 0).expect("the original's handle still works");
    assert_eq!(buf, new_bytes(2 * SECTOR), "the pending write is still visible");
    assert_eq!(env.durable_contents(path("/f")).expect("path"), Some(old_bytes(2 * SECTOR)));

    let (one, other) = (&result.images[0], &result.images[1]);
    one.restart();
    other.restart();
    let written = durable_file(one, "/g", b"only in one fork");
    assert_eq!(read_file(one, "/g").expect("read"), b"only in one fork");
    for unseen in [other, &env] {
        assert!(!unseen.exists(path("/g")).expect("exists"), "a fork's write shows nowhere else");
    }
    drop(written);
    file.write_all_at(b"original", 0).expect("write");
    assert_ne!(&read_file(other, "/f").expect("read")[..8], b"original");
}

/// Writes, syncs and crashes through a faulty machine; the outcome of each call is traced.
fn faulty_script(env: &SimEnv) {
    for round in 0..40_u64 {
        if env.is_crashed() {
            env.restart();
        }
        let name = format!("/file-{}", round % 3);
        let Ok(file) = env.open(path(&name), OpenOptions::create()) else { continue };
        let _ = file.write_all_at(&new_bytes(300), round * 100);
        let _ = file.sync_data();
        let _ = env.sync_dir(path("/"));
    }
}

#[test]
fn fork_continues_the_fault_streams_and_trace_of_the_original() {
    let options = FaultOptions {
        crash: CrashMode::Random { probability: 0.05 },
        io_error_probability: 0.1,
        sync_failure_probability: 0.1,
        ..FaultOptions::default()
    };
    let env = sim(options);
    faulty_script(&env);
    let fork = env.fork();
    assert_eq!(fork.trace_hash(), env.trace_hash());
    faulty_script(&env);
    faulty_script(&fork);
    assert_eq!(fork.trace_hash(), env.trace_hash(), "the same calls draw the same faults");
    assert_eq!(fork.stats(), env.stats());
    assert_eq!(fork.schedule(), env.schedule());
    let stats = env.stats();
    assert!(stats.crashes > 0 && stats.io_errors > 0 && stats.sync_failures > 0, "faults hit: {stats:?}");
}
