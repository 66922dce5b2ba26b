//! The whole-open-path target: build a real small store (`store::build`), damage its files at
//! rest, reopen it with `Kernel::open`, and compare what it serves with the model of the
//! acknowledged commits.
//!
//! The contract checked (DESIGN.md rules 14-16): per shard, either exact recovery of every
//! acknowledged commit, or a failed shard that says durable data was lost (`data_loss`); or
//! `Kernel::open` refuses with an error that names the damage (`Corrupt`, `ConfigMismatch`).
//! Anything in between is a [`Finding`]: a serving shard that lost or invented a value, a scan
//! that disagrees with `get`, a failed shard that claims nothing was lost, another error.
//!
//! Invariant: the damage kinds applied are the caller's ([`Damage::CI`] for the runs that must
//! pass on today's kernel, [`Damage::ALL`] to look for bugs); every damage is synced, so it is
//! the disk's state at rest, not a crash image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stormhold::env::sim::SimEnv;
use stormhold::env::{Env, EnvFile, OpenOptions};
use stormhold::wal::format::parse_segment_file_name;
use stormhold::{Kernel, KernelError};

use crate::Choices;
use crate::store::{self, KEYS, STORE_DIR};

/// A kind of damage to a file at rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Damage {
    /// One bit flips in a file other than a shard's newest WAL segment.
    FlipBit,
    /// One bit flips in a shard's newest WAL segment: rot in its last record, which a torn
    /// write would look like, is told apart by the `FLOOR` marker written at close.
    FlipBitNewestSegment,
    /// The file is cut short (possibly to zero bytes).
    Truncate,
    /// The file is deleted.
    Delete,
    /// A range of the file is overwritten with zeros.
    Zero,
    /// The file is swapped with the file of the same name in another shard's directory.
    SwapShards,
    /// The file is extended with a sparse run of zeros (1 MiB).
    SparseExtend,
    /// An empty checkpoint directory `ckpt-ffffffffffffffff` appears in a shard's store.
    HugeCheckpointDir,
}

impl Damage {
    /// Every damage kind.
    pub const ALL: [Damage; 8] = [
        Damage::FlipBit,
        Damage::FlipBitNewestSegment,
        Damage::Truncate,
        Damage::Delete,
        Damage::Zero,
        Damage::SwapShards,
        Damage::SparseExtend,
        Damage::HugeCheckpointDir,
    ];

    /// The kinds today's kernel handles within the contract, applied by the runs CI makes.
    /// Left out: [`Damage::Delete`], since deleting a WAL's `FLOOR` marker together with its
    /// newest segment (two files) is a loss no durable fact contradicts (the documented
    /// `undetectable` limit of `stormhold::wal`; `tests/fuzz_whole_open.rs` finds it).
    pub const CI: [Damage; 7] = [
        Damage::FlipBit,
        Damage::FlipBitNewestSegment,
        Damage::Truncate,
        Damage::Zero,
        Damage::SwapShards,
        Damage::SparseExtend,
        Damage::HugeCheckpointDir,
    ];
}

/// Where a damage landed (for the report of a finding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The kind.
    pub damage: Damage,
    /// The file (or directory) it hit.
    pub path: PathBuf,
    /// Kind-specific detail (offset, length, the other file).
    pub detail: String,
}

/// A result between "exact" and "reported loss": a bug of the kernel (or of this target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The class: `silent-loss`, `invented-value`, `scan-disagrees`, `failed-without-data-loss`,
    /// `open-error`, `build-failed`.
    pub class: &'static str,
    /// What exactly.
    pub detail: String,
    /// The damage applied.
    pub damages: Vec<Applied>,
}

/// What the reopen did, when it was within the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every shard serves exactly the acknowledged state.
    Exact,
    /// Some shards failed, each reporting data loss; the others serve exactly.
    ReportedLoss,
    /// `Kernel::open` refused with an error naming the damage.
    Refused,
}

/// The target: `data` chooses the store, the damages (1 to 3, of the kinds in `kinds`) and
/// where they land.
pub fn run(data: &[u8], kinds: &[Damage]) -> Result<Verdict, Finding> {
    let mut choices = Choices::new(data);
    let built = store::build(&mut choices).map_err(|detail| Finding {
        class: "build-failed",
        detail,
        damages: Vec::new(),
    })?;
    let dir = Path::new(STORE_DIR);
    let mut damages = Vec::new();
    for _ in 0..1 + choices.byte() % 3 {
        let kind = kinds[choices.below(kinds.len())];
        damages.extend(apply(&built.env, dir, kind, &mut choices));
    }
    let opened = Kernel::open(built.env.clone(), dir, built.config.clone());
    open_verdict(opened, &built.model).map_err(|(class, detail)| Finding { class, detail, damages })
}

/// The verdict on what `Kernel::open` returned for a damaged store whose acknowledged commits
/// are `model`: [`check`] on a kernel, or the verdict on its error.
pub fn open_verdict(
    opened: Result<Kernel<SimEnv>, KernelError>,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<Verdict, (&'static str, String)> {
    match opened {
        Ok(kernel) => check(&kernel, model),
        Err(
            KernelError::Corrupt { .. }
            | KernelError::ConfigMismatch { .. }
            | KernelError::KernelFileMissing { .. },
        ) => Ok(Verdict::Refused),
        // Every shard failed (the default `min_serving_shards`): each must report its loss.
        Err(KernelError::TooFewShardsServing { failures, .. }) => {
            match failures.iter().find(|(_, failure)| !failure.data_loss) {
                Some((shard, failure)) => {
                    Err(("failed-without-data-loss", format!("shard {shard}: {failure}")))
                }
                None => Ok(Verdict::ReportedLoss),
            }
        }
        Err(error) => Err(("open-error", error.to_string())),
    }
}

/// `run` for cargo-fuzz: a finding is a panic, which libFuzzer reports as a crash.
pub fn fuzz(data: &[u8], kinds: &[Damage]) {
    if let Err(finding) = run(data, kinds) {
        panic!("{}: {} after {:?}", finding.class, finding.detail, finding.damages);
    }
}

/// Compares what `kernel` serves with `model`: the verdict, or the finding class and detail.
pub fn check(
    kernel: &Kernel<SimEnv>,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<Verdict, (&'static str, String)> {
    let status = kernel.shard_status();
    for shard in &status {
        if let Some(failure) = &shard.failed
            && !failure.data_loss
        {
            return Err(("failed-without-data-loss", format!("shard {}: {}", shard.shard, failure)));
        }
    }
    for index in 0..KEYS {
        let key = store::key(index);
        let shard = kernel.shard_of(&key) as usize;
        let serving = status.get(shard).is_some_and(|s| s.failed.is_none());
        match (kernel.get(&key), serving) {
            (Ok(got), true) if got.as_ref() == model.get(&key) => {}
            (Ok(got), true) => {
                let class = if got.is_none() { "silent-loss" } else { "invented-value" };
                let detail = format!(
                    "shard {shard} serves {:?} = {got:?}, acknowledged {:?}",
                    show(&key),
                    model.get(&key)
                );
                return Err((class, detail));
            }
            (Err(error), true) => {
                return Err(("serving-shard-errs", format!("get {:?}: {error}", show(&key))));
            }
            (_, false) => {}
        }
    }
    let all_serving = status.iter().all(|s| s.failed.is_none());
    match (kernel.scan::<&[u8]>(..), all_serving) {
        (Ok(entries), true) => {
            let expected: Vec<(Vec<u8>, Vec<u8>)> =
                model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            if entries != expected {
                return Err((
                    "scan-disagrees",
                    format!("scan gives {} entries, model {}", entries.len(), expected.len()),
                ));
            }
            Ok(Verdict::Exact)
        }
        (Ok(_), false) => {
            Err(("scan-skips-failed-shard", "a scan of every shard succeeded with one failed".into()))
        }
        (Err(error), true) => Err(("serving-shard-errs", format!("scan: {error}"))),
        (Err(_), false) => Ok(Verdict::ReportedLoss),
    }
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Applies one damage of `kind`; `None` when the store has nothing it applies to.
fn apply(env: &SimEnv, dir: &Path, kind: Damage, choices: &mut Choices<'_>) -> Option<Applied> {
    let all = store::files(env, dir);
    let files: Vec<PathBuf> = match kind {
        Damage::FlipBit => all.iter().filter(|f| !is_newest_segment(f, &all)).cloned().collect(),
        Damage::FlipBitNewestSegment => all.iter().filter(|f| is_newest_segment(f, &all)).cloned().collect(),
        _ => all.clone(),
    };
    let path = files.get(choices.below(files.len()))?.clone();
    let applied = |detail: String| Some(Applied { damage: kind, path: path.clone(), detail });
    match kind {
        Damage::FlipBit | Damage::FlipBitNewestSegment => {
            let bytes = store::read(env, &path);
            let at = choices.below(bytes.len().max(1)) as u64;
            let bit = choices.byte() % 8;
            let byte = bytes.get(at as usize).copied()? ^ (1 << bit);
            write_synced(env, &path, &[byte], at)?;
            applied(format!("bit {bit} of byte {at}"))
        }
        Damage::Truncate => {
            let len = store::read(env, &path).len();
            let to = choices.below(len.max(1)) as u64;
            set_len_synced(env, &path, to)?;
            applied(format!("to {to} of {len} bytes"))
        }
        Damage::Delete => {
            env.remove_file(&path).ok()?;
            env.sync_dir(path.parent()?).ok()?;
            applied(String::new())
        }
        Damage::Zero => {
            let len = store::read(env, &path).len();
            let at = choices.below(len.max(1));
            let count = 1 + choices.below(4096).min(len.saturating_sub(at + 1));
            write_synced(env, &path, &vec![0; count], at as u64)?;
            applied(format!("{count} bytes at {at}"))
        }
        Damage::SwapShards => swap_shards(env, dir, &path, &all),
        Damage::SparseExtend => {
            let len = store::read(env, &path).len() as u64;
            set_len_synced(env, &path, len + (1 << 20))?;
            applied(format!("from {len} by 1 MiB"))
        }
        Damage::HugeCheckpointDir => {
            let ckpt = path.ancestors().find(|p| p.file_name().is_some_and(|n| n == "ckpt"))?.to_path_buf();
            let huge = ckpt.join("ckpt-ffffffffffffffff");
            env.create_dir(&huge).ok()?;
            env.sync_dir(&ckpt).ok()?;
            Some(Applied { damage: kind, path: huge, detail: String::new() })
        }
    }
}

/// Whether `path` is the WAL segment with the highest id in its directory.
fn is_newest_segment(path: &Path, files: &[PathBuf]) -> bool {
    let segment = |p: &Path| p.file_name().and_then(|n| parse_segment_file_name(&n.to_string_lossy()));
    let Some(id) = segment(path) else { return false };
    !files.iter().any(|f| f.parent() == path.parent() && segment(f).is_some_and(|other| other > id))
}

/// Swaps `path` with the file of the same relative path in another shard, if there is one.
fn swap_shards(env: &SimEnv, dir: &Path, path: &Path, files: &[PathBuf]) -> Option<Applied> {
    let relative = path.strip_prefix(dir).ok()?;
    let mut parts = relative.components();
    let shard = parts.next()?.as_os_str().to_owned();
    let rest = parts.as_path().to_path_buf();
    let other = files.iter().find(|f| {
        f.strip_prefix(dir).ok().is_some_and(|r| {
            let mut c = r.components();
            c.next().is_some_and(|s| s.as_os_str() != shard) && c.as_path() == rest
        })
    })?;
    let mine = store::read(env, path);
    let theirs = store::read(env, other);
    replace_synced(env, path, &theirs)?;
    replace_synced(env, other, &mine)?;
    Some(Applied {
        damage: Damage::SwapShards,
        path: path.to_path_buf(),
        detail: format!("with {}", other.display()),
    })
}

fn write_synced(env: &SimEnv, path: &Path, bytes: &[u8], at: u64) -> Option<()> {
    let file = env.open(path, OpenOptions::read_write()).ok()?;
    file.write_all_at(bytes, at).ok()?;
    file.sync_all().ok()
}

fn set_len_synced(env: &SimEnv, path: &Path, len: u64) -> Option<()> {
    let file = env.open(path, OpenOptions::read_write()).ok()?;
    file.set_len(len).ok()?;
    file.sync_all().ok()
}

fn replace_synced(env: &SimEnv, path: &Path, bytes: &[u8]) -> Option<()> {
    let file = env.open(path, OpenOptions::read_write()).ok()?;
    file.set_len(0).ok()?;
    file.write_all_at(bytes, 0).ok()?;
    file.sync_all().ok()
}
