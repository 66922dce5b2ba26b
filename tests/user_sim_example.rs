//! The guide's example: crash-testing *your own* code built on a `Kernel`, on `SimEnv`.
//!
//! The user code here is a small ledger: a deposit adds to an account's balance and writes a
//! journal line, in one transaction. The test counts the Env calls of a run without crash,
//! then runs it again with a crash at every Nth call of those (each crash is a power cut:
//! whatever was not synced may be lost or torn), restarts the simulated machine, reopens the
//! store and
//! checks the ledger's two promises: every acknowledged deposit survived, and each balance is
//! the sum of its journal (the transaction was atomic). Copy it, put your own store in place of
//! `Ledger`, and your own promises in place of `check`.
//!
//! Needs `stormhold = { version = "...", features = ["sim"] }` in your dev-dependencies.
//! Debug-build runtime: see the README ("Crash-testing your own code").

use std::collections::BTreeMap;
use std::path::Path;

use stormhold::env::sim::{CrashMode, FaultOptions, SimEnv};
use stormhold::{Config, Durability, Kernel, KernelError, Router};

/// The user's store: accounts and a journal, kept in one shard per account prefix.
struct Ledger {
    kernel: Kernel<SimEnv>,
}

impl Ledger {
    fn open(env: &SimEnv) -> Result<Self, KernelError> {
        // `for_simulation`: small WAL segments and short epochs, so the test takes milliseconds
        // and still reaches checkpoints and segment rotation. The prefix router keeps an
        // account's balance and journal (`acct:N...`) in one shard, so one transaction holds both.
        let config = Config::for_simulation().router(Router::Prefix { len_bytes: 6 }).build()?;
        Ok(Self { kernel: Kernel::open(env.clone(), Path::new("/ledger"), config)? })
    }

    /// Adds `amount` to `account`, journaled; durable once it returns `Ok`.
    fn deposit(&self, account: u8, seq: u32, amount: u64) -> Result<(), KernelError> {
        let mut txn = self.kernel.begin();
        txn.increment(format!("acct:{account}:balance").as_bytes(), amount)?;
        txn.put(format!("acct:{account}:journal:{seq:08}").as_bytes(), &amount.to_le_bytes())?;
        txn.commit(Durability::Data)?;
        if seq.is_multiple_of(16) {
            self.kernel.tick(); // background work: epoch checkpoints
        }
        Ok(())
    }

    /// Checks the ledger's promises against the deposits acknowledged before the crash.
    fn check(&self, acknowledged: &BTreeMap<u32, (u8, u64)>) -> Result<(), String> {
        for (&seq, &(account, amount)) in acknowledged {
            let key = format!("acct:{account}:journal:{seq:08}");
            let found = self.kernel.get(key.as_bytes()).map_err(|e| e.to_string())?;
            if found != Some(amount.to_le_bytes().to_vec()) {
                return Err(format!("acknowledged deposit {seq} lost: {key} is {found:?}"));
            }
        }
        for account in 0..3u8 {
            let journal = self.kernel.scan_prefix(format!("acct:{account}:journal:").as_bytes());
            let sum: u64 = journal
                .map_err(|e| e.to_string())?
                .iter()
                .map(|(_, v)| u64::from_le_bytes(v.as_slice().try_into().expect("8-byte amounts")))
                .sum();
            let balance = self.kernel.get_counter(format!("acct:{account}:balance").as_bytes());
            let balance = balance.map_err(|e| e.to_string())?.unwrap_or(0);
            if balance != sum {
                return Err(format!("account {account}: balance {balance}, journal sums to {sum}"));
            }
        }
        Ok(())
    }
}

/// Deposits of one run.
const DEPOSITS: u32 = 32;
/// Crash points tried, spread evenly over the Env calls of a run.
const CRASH_POINTS: u64 = 24;

/// One run with `crash` (Off: none), then a restart and the check. Returns the number of Env
/// calls the run made before the restart.
fn run(crash: CrashMode) -> u64 {
    let env = SimEnv::new(7, FaultOptions { crash, ..FaultOptions::default() }).expect("valid options");
    let mut acknowledged = BTreeMap::new();
    // Until the crash, every call may fail; an error is the crash (no other fault is on).
    if let Ok(ledger) = Ledger::open(&env) {
        for seq in 0..DEPOSITS {
            let (account, amount) = ((seq % 3) as u8, u64::from(seq) + 1);
            match ledger.deposit(account, seq, amount) {
                Ok(()) => drop(acknowledged.insert(seq, (account, amount))),
                Err(_) => break,
            }
        }
    }
    let calls = env.stats().calls;
    // No crash during recovery and the check (the simulator's own sweeps crash there too).
    env.set_faults_enabled(false);
    env.restart();
    let ledger = Ledger::open(&env).unwrap_or_else(|e| panic!("{crash:?}: reopen: {e}"));
    if let Err(broken) = ledger.check(&acknowledged) {
        panic!("{crash:?}: {broken}");
    }
    calls
}

#[test]
fn the_ledger_keeps_its_promises_across_a_crash_at_every_nth_env_call() {
    let started = std::time::Instant::now();
    let calls = run(CrashMode::Off);
    let every = (calls / CRASH_POINTS).max(1);
    for call in (1..=calls).step_by(every as usize) {
        // Before the call takes effect, or after: both are crashes a disk can see.
        run(CrashMode::AtCall { call, after: call % 2 == 0 });
    }
    eprintln!("{calls} Env calls, a crash every {every}: checked in {:?}", started.elapsed());
}
