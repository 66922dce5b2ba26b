//! `crash_child`: a process for `testkit/tests/os_crash.rs` to kill with SIGKILL.
//!
//! Usage: `crash_child DIR SEED [--ops N] [--ack-before-sync]`
//!
//! It opens a [`Kernel`] on the real OS in `DIR`, finds the highest sequence number there (every
//! value it puts is `s<seq>`), and commits a mix drawn from `SEED` (single puts, transactions of
//! one key group, increments, deletes, document chunks and completions, checkpoints, ticks),
//! printing one flushed line per event on stdout:
//!
//! - `OPEN`: the kernel is about to be opened (created or recovered);
//! - `READY <next seq>`: recovery is done;
//! - `W <seq> <shard> <op>...`: a commit is about to start; each op is `put:<key>=<value>`,
//!   `del:<key>`, `add:<key>+<n>`, `doc:<id>:chunk` or `doc:<id>:complete`;
//! - `A <seq> [<counter>]`: that commit returned `Ok` with `Durability::Data` or `All` (a
//!   single increment also prints the counter's new value);
//! - `C checkpoint` / `C tick`: background work, for information;
//! - `DONE`: `N` operations done and the kernel closed (default: run until killed).
//!
//! One commit at a time, so at most one `W` lacks its `A` when the process dies.
//! `--ack-before-sync` commits with `Durability::None` and acknowledges before any sync (the
//! shards are synced later, now and then and by `tick`): a lie about durability that only a
//! machine crash can expose, since a killed process's writes stay in the OS page cache.
//!
//! The kernel is reached only through `OsEnv` and the `Kernel` API; randomness is a xorshift
//! of the seed, so a seed and a starting state give the same operations.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use stormhold::env::OsEnv;
use stormhold::{Config, Document, Durability, EpochConfig, Kernel, KernelError, Router};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Key groups `g0`..: a group is a two-byte prefix, so all its keys share a shard.
const GROUPS: u64 = 8;
/// Plain keys per group (`g3:k0`..).
const KEYS_PER_GROUP: u64 = 6;
/// Document keys per group (`g3:d0`..), rewritten with SET semantics by each document.
const DOC_KEYS_PER_GROUP: u64 = 4;
/// Operations when `--ops` is not given: more than any test waits for.
const OPS_DEFAULT: u64 = 1_000_000;

/// The kernel's config; `testkit/tests/os_crash.rs` repeats it (the shard count and router are
/// checked at open, so a mismatch fails loudly).
fn config() -> Result<Config, KernelError> {
    let epochs = EpochConfig {
        ops_max: 40,
        wal_bytes_max: 16 * 1024,
        duration_max_ms: 50,
        ..EpochConfig::low_latency()
    };
    Config::builder()
        .shards(4)
        .router(Router::Prefix { len_bytes: 2 })
        .segment_size_bytes(64 * 1024)
        .epochs(epochs)
        .build()
}

struct Args {
    dir: PathBuf,
    seed: u64,
    ops: u64,
    ack_before_sync: bool,
}

fn parse_args() -> Result<Args> {
    let usage = "usage: crash_child DIR SEED [--ops N] [--ack-before-sync]";
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let seed = args.next().ok_or(usage)?.parse()?;
    let mut parsed = Args { dir, seed, ops: OPS_DEFAULT, ack_before_sync: false };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--ops" => parsed.ops = args.next().ok_or(usage)?.parse()?,
            "--ack-before-sync" => parsed.ack_before_sync = true,
            _ => return Err(format!("unknown argument {flag:?}; {usage}").into()),
        }
    }
    Ok(parsed)
}

/// xorshift64*, seeded through splitmix64 so that nearby seeds diverge at once.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// One write of a commit, as printed.
enum Op {
    Put(String, String),
    Del(String),
    Add(String, u64),
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Put(key, _) | Op::Del(key) | Op::Add(key, _) => key,
        }
    }

    fn token(&self) -> String {
        match self {
            Op::Put(key, value) => format!("put:{key}={value}"),
            Op::Del(key) => format!("del:{key}"),
            Op::Add(key, by) => format!("add:{key}+{by}"),
        }
    }
}

/// The driver's state; the kernel is passed to each call, so a document can borrow it while
/// the driver prints.
struct Child {
    rng: Rng,
    out: io::StdoutLock<'static>,
    next_seq: u64,
    ack_before_sync: bool,
}

impl Child {
    fn line(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    fn group(&mut self) -> String {
        format!("g{}", self.rng.below(GROUPS))
    }

    fn durability(&mut self) -> Durability {
        match (self.ack_before_sync, self.rng.percent(50)) {
            (true, _) => Durability::None,
            (false, true) => Durability::Data,
            (false, false) => Durability::All,
        }
    }

    /// Prints the `W` line of commit `seq`; nothing of it may reach the kernel before.
    fn intent(&mut self, k: &Kernel<OsEnv>, seq: u64, ops: &[Op], doc: Option<(&str, bool)>) -> Result<()> {
        let shard = k.shard_of(ops[0].key().as_bytes());
        let mut line = format!("W {seq} {shard}");
        for op in ops {
            write!(line, " {}", op.token())?;
        }
        if let Some((id, complete)) = doc {
            write!(line, " doc:{id}:{}", if complete { "complete" } else { "chunk" })?;
        }
        Ok(self.line(&line)?)
    }

    /// Prints the `A` line of commit `seq`, which returned `Ok`.
    fn ack(&mut self, k: &Kernel<OsEnv>, seq: u64, counter: Option<u64>) -> Result<()> {
        let line = counter.map_or_else(|| format!("A {seq}"), |n| format!("A {seq} {n}"));
        self.line(&line)?;
        if self.ack_before_sync && self.rng.percent(25) {
            k.sync(Durability::Data)?;
        }
        Ok(())
    }

    fn step(&mut self, k: &Kernel<OsEnv>) -> Result<()> {
        match self.rng.below(100) {
            0..35 => self.put(k),
            35..60 => self.transaction(k),
            60..75 => self.increment(k),
            75..83 => self.delete(k),
            83..90 => self.document(k),
            90..95 => {
                k.checkpoint()?;
                Ok(self.line("C checkpoint")?)
            }
            _ => self.tick(k),
        }
    }

    fn put(&mut self, k: &Kernel<OsEnv>) -> Result<()> {
        let seq = self.take_seq();
        let key = format!("{}:k{}", self.group(), self.rng.below(KEYS_PER_GROUP));
        let value = format!("s{seq}");
        let durability = self.durability();
        self.intent(k, seq, &[Op::Put(key.clone(), value.clone())], None)?;
        k.put(key.as_bytes(), value.as_bytes(), durability)?;
        self.ack(k, seq, None)
    }

    fn increment(&mut self, k: &Kernel<OsEnv>) -> Result<()> {
        let seq = self.take_seq();
        let (key, by) = (format!("{}:n", self.group()), 1 + self.rng.below(9));
        let durability = self.durability();
        self.intent(k, seq, &[Op::Add(key.clone(), by)], None)?;
        let counter = k.increment(key.as_bytes(), by, durability)?;
        self.ack(k, seq, Some(counter))
    }

    fn delete(&mut self, k: &Kernel<OsEnv>) -> Result<()> {
        let seq = self.take_seq();
        let group = self.group();
        let key = match self.rng.below(KEYS_PER_GROUP + 1) {
            KEYS_PER_GROUP => format!("{group}:n"),
            i => format!("{group}:k{i}"),
        };
        let durability = self.durability();
        self.intent(k, seq, &[Op::Del(key.clone())], None)?;
        k.delete(key.as_bytes(), durability)?;
        self.ack(k, seq, None)
    }

    /// Two to four distinct keys of one group, at most one increment (of the group counter).
    fn transaction(&mut self, k: &Kernel<OsEnv>) -> Result<()> {
        let seq = self.take_seq();
        let group = self.group();
        let mut indices: Vec<u64> = (0..KEYS_PER_GROUP).collect();
        let mut ops = Vec::new();
        for _ in 0..2 + self.rng.below(3) {
            let i = indices.swap_remove(self.rng.below(indices.len() as u64) as usize);
            let key = format!("{group}:k{i}");
            ops.push(if self.rng.percent(80) { Op::Put(key, format!("s{seq}")) } else { Op::Del(key) });
        }
        if self.rng.percent(40) {
            ops.push(Op::Add(format!("{group}:n"), 1 + self.rng.below(9)));
        }
        let durability = self.durability();
        self.intent(k, seq, &ops, None)?;
        let mut txn = k.begin();
        for op in &ops {
            match op {
                Op::Put(key, value) => txn.put(key.as_bytes(), value.as_bytes())?,
                Op::Del(key) => txn.delete(key.as_bytes())?,
                Op::Add(key, by) => txn.increment(key.as_bytes(), *by)?,
            }
        }
        txn.commit(durability)?;
        self.ack(k, seq, None)
    }

    fn doc_inserts(&mut self, group: &str, seq: u64) -> Vec<Op> {
        let first = self.rng.below(DOC_KEYS_PER_GROUP);
        let count = 1 + self.rng.below(2);
        (first..first + count)
            .map(|i| Op::Put(format!("{group}:d{}", i % DOC_KEYS_PER_GROUP), format!("s{seq}")))
            .collect()
    }

    /// A durable chunk, then (mostly) the completing commit; each is a commit of its own.
    fn document(&mut self, k: &Kernel<OsEnv>) -> Result<()> {
        let group = self.group();
        let id = format!("{group}-doc-{}", self.next_seq);
        let mut doc = k.begin_document(&id)?;
        if doc.already_complete() {
            return Err(format!("document {id} is complete before it was written").into());
        }
        let seq = self.document_part(k, &mut doc, &group, false)?;
        doc.commit_chunk()?;
        self.ack(k, seq, None)?;
        if self.rng.percent(30) {
            return Ok(()); // an abandoned import: the chunk stays, the document is incomplete
        }
        let seq = self.document_part(k, &mut doc, &group, true)?;
        doc.commit()?;
        self.ack(k, seq, None)
    }

    /// Prints the intent of the document's next commit and inserts its keys; returns its seq.
    fn document_part(
        &mut self,
        k: &Kernel<OsEnv>,
        doc: &mut Document<'_, OsEnv>,
        group: &str,
        complete: bool,
    ) -> Result<u64> {
        let seq = self.take_seq();
        let ops = self.doc_inserts(group, seq);
        self.intent(k, seq, &ops, Some((doc.id(), complete)))?;
        for op in &ops {
            if let Op::Put(key, value) = op {
                doc.insert(key.as_bytes(), value.as_bytes())?;
            }
        }
        Ok(seq)
    }

    fn tick(&mut self, k: &Kernel<OsEnv>) -> Result<()> {
        let report = k.tick();
        if let Some((shard, error)) = report.failed.first() {
            return Err(format!("tick failed shard {shard}: {error}").into());
        }
        Ok(self.line("C tick")?)
    }
}

/// One more than the highest `s<seq>` value in the store (1 in an empty one).
fn resume_seq(kernel: &Kernel<OsEnv>) -> Result<u64> {
    let mut highest = 0;
    for (_, value) in kernel.scan::<&[u8]>(..)? {
        let seq = value
            .strip_prefix(b"s")
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| digits.parse::<u64>().ok());
        highest = highest.max(seq.unwrap_or(0));
    }
    Ok(highest + 1)
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let mut child = Child {
        rng: Rng::new(args.seed),
        out: io::stdout().lock(),
        next_seq: 0,
        ack_before_sync: args.ack_before_sync,
    };
    child.line("OPEN")?;
    let kernel = Kernel::open(OsEnv::new(), &args.dir, config()?)?;
    if let Some(status) = kernel.shard_status().into_iter().find(|s| s.failed.is_some()) {
        return Err(format!("shard {} failed at open: {:?}", status.shard, status.failed).into());
    }
    child.next_seq = resume_seq(&kernel)?;
    child.line(&format!("READY {}", child.next_seq))?;
    for _ in 0..args.ops {
        child.step(&kernel)?;
    }
    kernel.close()?;
    Ok(child.line("DONE")?)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crash_child: {error}");
            ExitCode::from(2)
        }
    }
}
