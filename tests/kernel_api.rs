//! The embedder's papercuts of issue #15: the limits the README states are the ones the code
//! enforces, the empty key is accepted, `get_counter` reads what `increment` writes, and
//! `open_existing` opens with the creation config and never creates a store.

use std::path::Path;

use stormhold::env::Env;
use stormhold::env::sim::{FaultOptions, SimEnv};
use stormhold::{
    Config, DOCUMENT_ID_BYTES_MAX, Durability, KEY_BYTES_MAX, Kernel, KernelError, Router, ShardError,
    TRANSACTION_BYTES_MAX, VALUE_BYTES_MAX,
};

fn kernel(env: &SimEnv) -> Kernel<SimEnv> {
    let config = Config::for_simulation().shards(3).router(Router::Prefix { len_bytes: 1 }).build().unwrap();
    Kernel::open(env.clone(), Path::new("/db"), config).unwrap()
}

/// The simulation preset with another shard count and router than the store's.
fn sim_options() -> Config {
    Config::for_simulation().shards(1).build().unwrap()
}

#[test]
fn the_stated_limits_are_the_enforced_ones() {
    assert_eq!((KEY_BYTES_MAX, VALUE_BYTES_MAX), (16 * 1024, 8 * 1024 * 1024));
    assert_eq!((TRANSACTION_BYTES_MAX, DOCUMENT_ID_BYTES_MAX), (16 * 1024 * 1024, 1024));
    let env = SimEnv::new(1, FaultOptions::default()).unwrap();
    let kernel = kernel(&env);
    let invalid =
        |r: Result<u64, KernelError>| assert!(matches!(r, Err(KernelError::InvalidInput(_))), "{r:?}");
    kernel.put(&vec![b'k'; KEY_BYTES_MAX], b"v", Durability::None).unwrap();
    invalid(kernel.put(&vec![b'k'; KEY_BYTES_MAX + 1], b"v", Durability::None));
    invalid(kernel.put(b"k", &vec![0; VALUE_BYTES_MAX + 1], Durability::None));
    assert!(matches!(kernel.begin_document(""), Err(KernelError::InvalidInput(_))));
    assert!(matches!(
        kernel.begin_document(&"d".repeat(DOCUMENT_ID_BYTES_MAX + 1)),
        Err(KernelError::InvalidInput(_))
    ));
    kernel.begin_document(&"d".repeat(DOCUMENT_ID_BYTES_MAX)).unwrap().commit().unwrap();
    // TRANSACTION_BYTES_MAX is the WAL's record payload limit, which shard::ops checks before
    // any I/O (16 MiB of values would cost seconds here in a debug build).
}

#[test]
fn the_empty_key_is_a_key_like_any_other_and_survives_a_reopen() {
    let env = SimEnv::new(2, FaultOptions::default()).unwrap();
    let kernel = kernel(&env);
    kernel.put(b"", b"empty", Durability::Data).unwrap();
    assert_eq!(kernel.get(b"").unwrap(), Some(b"empty".to_vec()));
    assert_eq!(kernel.scan_prefix(b"").unwrap(), vec![(Vec::new(), b"empty".to_vec())]);
    kernel.close().unwrap();
    let kernel = Kernel::open_existing_with(env.clone(), Path::new("/db"), sim_options()).unwrap();
    assert_eq!(kernel.get(b"").unwrap(), Some(b"empty".to_vec()));
    kernel.delete(b"", Durability::Data).unwrap();
    assert_eq!(kernel.get(b"").unwrap(), None);
}

#[test]
fn get_counter_reads_what_increment_writes_and_refuses_what_is_not_a_counter() {
    let env = SimEnv::new(3, FaultOptions::default()).unwrap();
    let kernel = kernel(&env);
    assert_eq!(kernel.get_counter(b"c").unwrap(), None);
    assert_eq!(kernel.increment(b"c", 41, Durability::None).unwrap(), 41);
    assert_eq!(kernel.get_counter(b"c").unwrap(), Some(41));
    let mut txn = kernel.begin();
    txn.increment(b"c", 1).unwrap();
    assert_eq!(txn.get_counter(b"c").unwrap(), Some(42), "the transaction sees its own increment");
    txn.commit(Durability::Data).unwrap();
    assert_eq!(kernel.get_counter(b"c").unwrap(), Some(42));
    kernel.put(b"text", b"hello", Durability::None).unwrap();
    let error = kernel.get_counter(b"text").unwrap_err();
    assert!(
        matches!(error, KernelError::Shard { error: ShardError::NotACounter { len_bytes: 5, .. }, .. }),
        "{error}"
    );
}

#[test]
fn open_existing_uses_the_creation_config_and_never_creates_a_store() {
    let env = SimEnv::new(4, FaultOptions::default()).unwrap();
    kernel(&env).close().unwrap();
    let kernel = Kernel::open_existing_with(env.clone(), Path::new("/db"), sim_options()).unwrap();
    assert_eq!((kernel.config().shards(), kernel.config().router()), (3, Router::Prefix { len_bytes: 1 }));
    drop(kernel);
    env.create_dir(Path::new("/empty")).unwrap();
    for dir in ["/empty", "/missing"] {
        let error = Kernel::open_existing(env.clone(), Path::new(dir)).unwrap_err();
        assert!(matches!(error, KernelError::NoStore { .. }), "{dir}: {error}");
        assert!(!env.exists(&Path::new(dir).join("KERNEL")).unwrap());
    }
}
