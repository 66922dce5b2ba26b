//! Embedding stormhold: open a kernel on the real OS, write with each durability, commit a
//! transaction and a document, checkpoint, close, reopen (a full recovery), read back, and
//! print what recovery did and the state of every shard.
//!
//! Run: `cargo run --example embedded [DIR]` (default: a fresh temporary directory).

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use stormhold::env::OsEnv;
use stormhold::{Config, Durability, Kernel, KernelError, Router};

/// Keys with the same first 5 bytes (`user:`, `cart:`, `ordr:`) live in the same shard, so a
/// transaction or a document may span them. Shard count and router are fixed at creation.
fn config() -> Result<Config, KernelError> {
    Config::builder().shards(4).router(Router::Prefix { len_bytes: 5 }).build()
}

fn write(kernel: &Kernel<OsEnv>) -> Result<(), KernelError> {
    // None: appended; survives a crash of this process, but a power cut only once synced
    // (by a tick, a later durable commit of the same shard, or `sync`).
    kernel.put(b"user:ada", b"Ada Lovelace", Durability::None)?;
    // Data: returns after fdatasync. All: after fsync (file metadata too).
    kernel.put(b"user:alan", b"Alan Turing", Durability::Data)?;
    kernel.increment(b"user:count", 2, Durability::All)?;

    // A transaction is atomic within one shard; a key of another shard is refused.
    let mut txn = kernel.begin();
    txn.put(b"cart:ada", b"notebook")?;
    txn.increment(b"cart:items", 1)?;
    if let Err(refused) = txn.put(b"user:eve", b"x") {
        println!("refused: {refused}");
    }
    txn.commit(Durability::Data)?;

    // A document import: durable chunks, then a commit that marks it complete. After a
    // crash, import it again from the start: that is idempotent.
    let mut doc = kernel.begin_document("order-1")?;
    doc.insert(b"ordr:1:line1", b"2 x notebook")?;
    doc.commit_chunk()?;
    doc.insert(b"ordr:1:line2", b"1 x pen")?;
    doc.commit()?;
    Ok(())
}

/// Text as text; a counter (8 bytes, little-endian) as a number.
fn show(value: &[u8]) -> String {
    match (std::str::from_utf8(value), <[u8; 8]>::try_from(value)) {
        (Ok(text), _) if !text.chars().any(char::is_control) => format!("{text:?}"),
        (_, Ok(counter)) => u64::from_le_bytes(counter).to_string(),
        _ => format!("{value:?}"),
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args_os().nth(1).map_or_else(|| temp.path().join("store"), PathBuf::from);

    let kernel = Arc::new(Kernel::open(OsEnv::new(), &dir, config()?)?);
    // The kernel starts no thread; a ticker runs its background work (epoch checkpoints,
    // syncing `None` commits) until dropped.
    let ticker = Kernel::spawn_ticker(Arc::clone(&kernel), Duration::from_millis(10));
    write(&kernel)?;
    println!("checkpointed (shard, id): {:?}", kernel.checkpoint()?);
    kernel.put(b"user:grace", b"Grace Hopper", Durability::Data)?; // replayed from the WAL
    drop(ticker);
    Arc::into_inner(kernel).ok_or("the ticker still holds the kernel")?.close()?;

    // Reopening recovers every shard: its latest checkpoint plus the WAL after it. Dropping
    // a kernel without `close`, or a killed process, reopens the same way.
    let kernel = Kernel::open(OsEnv::new(), &dir, config()?)?;
    for (shard, report) in kernel.recovery_reports().iter().enumerate() {
        match report {
            Some(report) => println!("shard {shard} recovered: {report}"),
            None => println!("shard {shard} failed to recover"),
        }
    }
    for status in kernel.shard_status() {
        let health = status.failed.map_or("serving".to_string(), |f| format!("failed: {f}"));
        println!(
            "shard {}: {health}, sync {:?}, last lsn {}, durable lsn {}, checkpoint {:?}",
            status.shard, status.sync, status.last_lsn, status.durable_lsn, status.last_checkpoint
        );
    }
    for (key, value) in kernel.scan::<&[u8]>(..)? {
        println!("{} = {}", String::from_utf8_lossy(&key), show(&value));
    }
    println!("user:count as a counter: {:?}", kernel.get_counter(b"user:count")?);
    println!("complete documents: {:?}", kernel.completed_documents()?);
    kernel.close()?;
    Ok(())
}

/// Errors are printed with `Display`, which names the shard, file and offset involved.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
