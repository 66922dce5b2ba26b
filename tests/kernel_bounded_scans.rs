//! `Kernel::scan_range`, `scan_range_rev` and `last_in_range`: bounded and reverse scans,
//! merged across shards, against a model on random contents.

use std::collections::BTreeMap;
use std::ops::Bound;

use stormhold::env::OsEnv;
use stormhold::{Config, Durability, Kernel, Router};

fn open(dir: &std::path::Path, router: Router) -> Kernel<OsEnv> {
    let config = Config::builder().shards(4).router(router).build().expect("valid config");
    Kernel::open(OsEnv::new(), dir, config).unwrap()
}

#[test]
fn bounded_and_reverse_scans_match_a_model_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = open(dir.path(), Router::Hash);
    let mut model = BTreeMap::new();
    let mut x: u64 = 7;
    for _ in 0..300 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let key = format!("k{:03}", (x >> 33) % 500).into_bytes();
        kernel.put(&key, &x.to_le_bytes(), Durability::None).unwrap();
        model.insert(key, x.to_le_bytes().to_vec());
    }
    for (start, end, limit) in
        [("k000", "k999", 10), ("k100", "k200", 3), ("k250", "k251", 5), ("k3", "k2", 4), ("k000", "k999", 0)]
    {
        let range = (Bound::Included(start.as_bytes().to_vec()), Bound::Excluded(end.as_bytes().to_vec()));
        let expect: Vec<_> = if start <= end {
            model.range(range.clone()).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect()
        } else {
            Vec::new()
        };
        assert_eq!(kernel.scan_range(range.clone(), limit).unwrap(), expect, "{start}..{end} limit {limit}");
        let expect_rev: Vec<_> = if start <= end {
            model.range(range.clone()).rev().take(limit).map(|(k, v)| (k.clone(), v.clone())).collect()
        } else {
            Vec::new()
        };
        assert_eq!(kernel.scan_range_rev(range.clone(), limit).unwrap(), expect_rev);
        let last = if start <= end {
            model.range(range.clone()).next_back().map(|(k, v)| (k.clone(), v.clone()))
        } else {
            None
        };
        assert_eq!(kernel.last_in_range(range).unwrap(), last);
    }
    assert_eq!(kernel.last_in_range::<&[u8]>(..).unwrap().map(|e| e.0), model.keys().next_back().cloned());
}

#[test]
fn a_range_under_one_prefix_reads_one_shard() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = open(dir.path(), Router::Prefix { len_bytes: 3 });
    for i in 0..50u32 {
        kernel.put(format!("g01{i:04}").as_bytes(), b"v", Durability::None).unwrap();
        kernel.put(format!("g02{i:04}").as_bytes(), b"v", Durability::None).unwrap();
    }
    let before: Vec<u64> = kernel.stats().shards.iter().map(|s| s.reads).collect();
    let last = kernel.last_in_range(b"g010000".as_slice()..b"g019999".as_slice()).unwrap();
    assert_eq!(last.unwrap().0, b"g010049");
    let after: Vec<u64> = kernel.stats().shards.iter().map(|s| s.reads).collect();
    let read: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    assert_eq!(read, 1, "one shard read: {before:?} -> {after:?}");
}
