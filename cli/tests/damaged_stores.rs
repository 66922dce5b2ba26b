//! The `stormhold` binary on stores built and damaged here: a shard whose WAL was cut before
//! its checkpoint's lsn is salvaged whole; verify names the damaged file and offset and exits
//! 2; dump escapes bytes; inspect and dump work on a read-only directory and change nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use stormhold::env::OsEnv;
use stormhold::wal::WalOptions;
use stormhold::{Config, Durability, Kernel, Router};

fn stormhold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stormhold")).args(args).output().expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn config() -> Config {
    let wal = WalOptions { segment_size_bytes: 64 * 1024, ..WalOptions::default() };
    Config::builder().shards(2).router(Router::Prefix { len_bytes: 1 }).wal_options(wal).build().unwrap()
}

/// Keys `a0..a49` and `b0..b49` (`a` and `b` route to different shards), checkpointed, then
/// `b50..b59` after the checkpoint. Returns the shard of `a` and every key with its value.
fn build(dir: &Path) -> (u32, BTreeMap<Vec<u8>, Vec<u8>>) {
    let kernel = Kernel::open(OsEnv::new(), dir, config()).unwrap();
    assert_ne!(kernel.shard_of(b"a"), kernel.shard_of(b"b"));
    let mut all = BTreeMap::new();
    for i in 0..50 {
        for p in ["a", "b"] {
            let (key, value) = (format!("{p}{i}").into_bytes(), vec![i as u8, 0xff, b'"']);
            kernel.put(&key, &value, Durability::Data).unwrap();
            all.insert(key, value);
        }
    }
    kernel.checkpoint().unwrap();
    for i in 50..60 {
        let key = format!("b{i}").into_bytes();
        kernel.put(&key, b"late", Durability::Data).unwrap();
        all.insert(key, b"late".to_vec());
    }
    let shard = kernel.shard_of(b"a");
    kernel.close().unwrap();
    (shard, all)
}

fn wal_dir(dir: &Path, shard: u32) -> PathBuf {
    dir.join(format!("shard-{shard:04}")).join("wal")
}

#[test]
fn salvage_recovers_every_key_of_a_shard_whose_wal_was_cut_before_its_checkpoint() {
    let temp = tempfile::tempdir().unwrap();
    let (dir, new) = (temp.path().join("store"), temp.path().join("new"));
    let (cut, all) = build(&dir);
    // Cut shard `cut`'s WAL: every segment gone, so it ends before the checkpoint's lsn.
    for entry in std::fs::read_dir(wal_dir(&dir, cut)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let verify = stormhold(&["verify", dir.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(2), "{}", text(&verify));
    // The WAL's FLOOR marker names the newest segment, so its absence is named as a loss.
    assert!(text(&verify).contains("is missing") && text(&verify).contains("FLOOR"), "{}", text(&verify));
    let normal = Kernel::open(OsEnv::new(), &dir, config()).unwrap();
    assert!(normal.shard_status()[cut as usize].failed.is_some(), "a normal open fails the cut shard");
    drop(normal);
    let output = stormhold(&["salvage", dir.to_str().unwrap(), "--to", new.to_str().unwrap()]);
    let out = text(&output);
    // Nothing the checkpoint held is lost; whether records followed it is unknowable.
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains(&format!("shard {cut}: normal open: FAILED")), "{out}");
    assert!(out.contains(&format!("shard {cut}: LOST UNKNOWN: the WAL ends at lsn 0")), "{out}");
    assert_eq!(out.matches("LOST").count(), 1, "{out}");
    let salvaged = Kernel::open_existing(OsEnv::new(), &new).unwrap();
    let got: BTreeMap<Vec<u8>, Vec<u8>> = salvaged.scan::<&[u8]>(..).unwrap().into_iter().collect();
    assert_eq!(got, all, "every key of the checkpoint and of the other shard's WAL");
    // A second salvage into the same place is refused.
    let again = stormhold(&["salvage", dir.to_str().unwrap(), "--to", new.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
}

#[test]
fn salvage_prints_exactly_what_damage_in_the_wal_lost() {
    let temp = tempfile::tempdir().unwrap();
    let (dir, new) = (temp.path().join("store"), temp.path().join("new"));
    let (a, all) = build(&dir);
    let b = 1 - a;
    // Rot in the record of `b55`, written after the checkpoint, in shard b's WAL.
    let segment = std::fs::read_dir(wal_dir(&dir, b))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.windows(3).position(|w| w == b"b55").expect("the record of b55");
    bytes[at + 1] ^= 0x55;
    std::fs::write(&segment, bytes).unwrap();
    let output = stormhold(&["salvage", dir.to_str().unwrap(), "--to", new.to_str().unwrap()]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains(&format!("shard {b}: LOST every record from lsn")), "{out}");
    assert!(out.contains(segment.file_name().unwrap().to_str().unwrap()), "{out}");
    let salvaged = Kernel::open_existing(OsEnv::new(), &new).unwrap();
    let got: BTreeMap<Vec<u8>, Vec<u8>> = salvaged.scan::<&[u8]>(..).unwrap().into_iter().collect();
    let checkpointed = |k: &Vec<u8>| !k.starts_with(b"b5") || k.len() == 2;
    assert!(all.iter().filter(|(k, _)| checkpointed(k)).all(|(k, v)| got.get(k) == Some(v)), "{out}");
    assert!(got.len() < all.len(), "the records after the damage are gone");
}

#[test]
fn verify_names_the_damaged_file_and_offset_and_exits_2() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let (a, _) = build(&dir);
    let clean = stormhold(&["verify", dir.to_str().unwrap()]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    // Rot in the first WAL record of shard a (vouched for by every later record).
    let segment = std::fs::read_dir(wal_dir(&dir, a))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let first = 4096 + 40;
    bytes[first] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let damaged = stormhold(&["verify", dir.to_str().unwrap()]);
    let out = text(&damaged);
    assert_eq!(damaged.status.code(), Some(2), "{out}");
    assert!(out.contains(&format!("DAMAGE {} offset", segment.display())), "{out}");
    // Rot in a checkpoint data file.
    bytes[first] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let ckpt = dir.join(format!("shard-{a:04}")).join("ckpt");
    let data =
        walk(&ckpt).into_iter().find(|p| p.file_name().unwrap() != "META" && p.parent() != Some(&ckpt));
    let data = data.expect("a checkpoint data file");
    let mut bytes = std::fs::read(&data).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&data, bytes).unwrap();
    let damaged = stormhold(&["verify", dir.to_str().unwrap()]);
    let out = text(&damaged);
    assert_eq!(damaged.status.code(), Some(2), "{out}");
    assert!(out.contains(data.parent().unwrap().file_name().unwrap().to_str().unwrap()), "{out}");
    let missing = stormhold(&["verify", temp.path().to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert_eq!(stormhold(&["verify"]).status.code(), Some(64));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn image(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk(dir).into_iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect()
}

fn chmod(dir: &Path, dirs: u32, files: u32) {
    use std::os::unix::fs::PermissionsExt;
    for path in walk(dir) {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(files)).unwrap();
    }
    let mut dirs_of: Vec<PathBuf> =
        walk(dir).iter().filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
    dirs_of.push(dir.to_path_buf());
    dirs_of.sort();
    dirs_of.dedup();
    for d in dirs_of {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(dirs)).unwrap();
    }
}

#[test]
fn inspect_and_dump_read_a_read_only_directory_and_change_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    build(&dir);
    let before = image(&dir);
    chmod(&dir, 0o555, 0o444);
    let inspect = stormhold(&["inspect", dir.to_str().unwrap()]);
    let out = text(&inspect);
    assert_eq!(inspect.status.code(), Some(0), "{out}");
    assert!(
        out.contains("2 shards") && out.contains("Full epoch") && out.contains("recovery (dry run)"),
        "{out}"
    );
    let dump = stormhold(&["dump", dir.to_str().unwrap(), "--prefix", "a4"]);
    assert_eq!(dump.status.code(), Some(0), "{}", text(&dump));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(dump.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 11, "a4 and a40..a49");
    assert_eq!(lines[0], serde_json::json!({"key": "a4", "value": "\\x04\\xff\\\""}));
    chmod(&dir, 0o755, 0o644);
    assert_eq!(image(&dir), before);
}
