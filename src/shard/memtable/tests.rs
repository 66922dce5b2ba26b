//! Unit tests of the arena memtable: forced hash collisions, growth, the key order after
//! interleaved inserts and reads, overwrites after the order was built, garbage accounting.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::*;

/// Every key hashes alike: every lookup walks one probe chain and compares whole keys.
struct Colliding;

impl KeyHash for Colliding {
    fn hash(_: [u64; 2], _: &[u8], _: &[u8]) -> u64 {
        0x5555_5555_0000_0007
    }
}

type Model = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

fn entries<'a>(range: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    range.map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect()
}

fn check<H: KeyHash>(table: &Memtable<H>, model: &Model) {
    for (key, value) in model {
        assert_eq!(table.get(key), Some(value.as_deref()), "get {key:?}");
    }
    let expected: Vec<(Vec<u8>, Option<Vec<u8>>)> =
        model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(entries(table.iter()), expected, "forward");
    let mut backwards = entries(table.iter().rev());
    backwards.reverse();
    assert_eq!(backwards, expected, "backward");
    assert_eq!(table.len(), model.len());
    assert_eq!(table.first_key(), model.keys().next().map(Vec::as_slice));
    assert_eq!(table.last_key(), model.keys().next_back().map(Vec::as_slice));
}

/// A deterministic stream of pseudo-random numbers (xorshift).
fn numbers(mut x: u64) -> impl Iterator<Item = u64> {
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    })
}

fn key_of(n: u64) -> Vec<u8> {
    // Lengths vary and many keys share their first 8 bytes, so the prefix ties are broken by
    // whole keys.
    let mut key = vec![0, b'k', b'e', b'y', b'-', b'-', b'-'];
    key.extend_from_slice(format!("{}", n % 5000).as_bytes());
    key
}

#[test]
fn colliding_hashes_keep_every_key_apart() {
    let mut table = Memtable::<Colliding>::new();
    let mut model = Model::new();
    for (i, n) in numbers(3).take(600).enumerate() {
        let key = format!("{}", n % 150).into_bytes();
        let value = (!i.is_multiple_of(5)).then(|| vec![i as u8; i % 9]);
        table.insert(&key, value.as_deref());
        model.insert(key, value);
    }
    check(&table, &model);
    assert_eq!(table.get(b"absent"), None);
    assert_eq!(table.get(b""), None, "the empty key is absent until inserted");
    table.insert(b"", Some(b"empty"));
    model.insert(Vec::new(), Some(b"empty".to_vec()));
    check(&table, &model);
}

#[test]
fn the_table_grows_keeping_its_load_and_every_key() {
    let mut table = Memtable::<SeededHash>::new();
    let mut model = Model::new();
    for n in 0..20_000u64 {
        // Scrambled (an odd multiplier mod 2^16), so few keys land above the last one.
        let key = (n.wrapping_mul(40_503) % 65_536 + (n / 65_536) * 65_536).to_be_bytes();
        table.insert_parts(&key[..1], &key[1..], Some(&key));
        model.insert(key.to_vec(), Some(key.to_vec()));
        assert!(table.slots.is_empty() || table.slots.len().is_power_of_two());
        assert!(4 * table.hashed_keys() <= 3 * table.slots.len(), "load <= 3/4 at {n}");
    }
    assert!(table.hashed_keys() > 19_000, "the test exercises the hash, not the ascending tail");
    check(&table, &model);
    for n in 70_000..71_000u64 {
        assert_eq!(table.get(&n.to_be_bytes()), None);
    }
}

#[test]
fn ascending_keys_form_a_tail_without_slots_hashed_in_steps_once_closed_or_read() {
    let mut table = Memtable::<SeededHash>::new();
    let mut model = Model::new();
    let insert = |table: &mut Memtable<SeededHash>, model: &mut Model, key: &[u8], value: Option<&[u8]>| {
        table.insert(key, value);
        model.insert(key.to_vec(), value.map(<[u8]>::to_vec));
    };
    for n in (0..30_000u64).map(|n| 2 * n) {
        insert(&mut table, &mut model, &n.to_be_bytes(), Some(&n.to_be_bytes()[4..]));
    }
    assert_eq!((table.tail.clone(), table.slots.len()), (0..30_000, 0), "ascending keys are never hashed");
    assert_eq!(table.get(&1u64.to_be_bytes()), None, "a key between two of the tail's");
    assert_eq!(table.get(&u64::MAX.to_be_bytes()), None, "a key above the tail's");
    assert_eq!(table.get(&40_000u64.to_be_bytes()), Some(Some(&40_000u64.to_be_bytes()[4..])));
    assert!(table.tail_read.load(AtomicOrdering::Relaxed), "a long tail was searched");
    *table.tail_read.get_mut() = false;
    // A new key among the tail's keys is hashed and closes the tail; a lookup of it searches
    // the tail, then the slots.
    insert(&mut table, &mut model, &20_001u64.to_be_bytes(), Some(b"odd"));
    assert_eq!(table.get(&20_001u64.to_be_bytes()), Some(Some(&b"odd"[..])));
    assert_eq!((table.tail.clone(), table.hashed_keys()), (0..30_000, 1));
    // Overwrites in the tail (same length: in place; other lengths; tombstones) while the
    // closed tail is hashed from its front, 4 keys per insert.
    for n in (0..30_000u64).step_by(14) {
        let value = match n % 3 {
            0 => Some(vec![1; 4]),
            1 => Some(vec![2; 9]),
            _ => None,
        };
        insert(&mut table, &mut model, &n.to_be_bytes(), value.as_deref());
    }
    assert_eq!(table.tail, 4 * 2143..30_000, "each of the 2,143 inserts hashed 4 tail keys");
    check(&table, &model);
    insert(&mut table, &mut model, b"", Some(b"empty key"));
    // Keys above the last: hashed while the closed tail is (about 5,400 inserts), then a
    // new tail.
    for n in (30_000..40_000u64).map(|n| 2 * n) {
        insert(&mut table, &mut model, &n.to_be_bytes(), Some(b"late"));
    }
    assert_eq!(table.tail.end, table.len(), "a new, open tail");
    assert!(table.tail.len() > 3000 && 4 * table.hashed_keys() <= 3 * table.slots.len());
    check(&table, &model);
    for n in [7u64, 9, 80_001] {
        insert(&mut table, &mut model, &n.to_be_bytes(), Some(b"last"));
    }
    check(&table, &model);
    assert_eq!(table.hashed_keys() + table.tail.len(), table.len());
}

#[test]
fn the_hash_depends_on_the_seed_and_stores_draw_different_seeds() {
    // HashDoS guard: keys chosen to share a home slot under one seed must not under another,
    // so the seed has to reach the hash.
    let (a, b) = (Memtable::<SeededHash>::with_seed(1), Memtable::<SeededHash>::with_seed(2));
    let keys: Vec<Vec<u8>> = (0..1000u64).map(key_of).collect();
    let hashes = |table: &Memtable<SeededHash>| -> Vec<u64> {
        keys.iter()
            .map(|k| {
                let (prefix, rest) = split(k);
                table.hash_of(prefix, rest)
            })
            .collect()
    };
    let (ha, hb) = (hashes(&a), hashes(&b));
    assert_eq!(ha, hashes(&Memtable::<SeededHash>::with_seed(1)), "one seed, one function");
    let alike = ha.iter().zip(&hb).filter(|(x, y)| x == y).count();
    assert!(alike < 5, "{alike} of 1000 keys hash alike under seeds 1 and 2");
    // Keys that collide in 16 slots under seed 1 spread under seed 2.
    let home = |h: &u64| h & 15;
    let chain: Vec<usize> = (0..1000).filter(|&i| home(&ha[i]) == home(&ha[0])).collect();
    assert!(chain.len() > 30);
    let spread: std::collections::BTreeSet<u64> = chain.iter().map(|&i| home(&hb[i])).collect();
    assert!(spread.len() > 8, "the colliding keys of seed 1 land in {} slots under seed 2", spread.len());
    // Stores and shards draw different seeds; one store and shard always the same one.
    assert_eq!(seed_for_store(0xabc, 1), seed_for_store(0xabc, 1));
    let seeds: std::collections::BTreeSet<u64> =
        [(0xabc, 0), (0xabc, 1), (0xabd, 0), (0, 0), (0, 1)].map(|(s, i)| seed_for_store(s, i)).into();
    assert_eq!(seeds.len(), 5);
}

#[test]
fn the_key_order_follows_inserts_interleaved_with_reads_past_the_recent_bound() {
    let mut table = Memtable::<SeededHash>::new();
    let mut model = Model::new();
    let mut rng = numbers(11);
    for round in 0..60 {
        // Batches of new keys and overwrites, read in between: the unsorted tail, `recent`
        // and its merges into `sorted` all serve reads.
        for _ in 0..150 {
            let n = rng.next().expect("endless");
            let value = (!n.is_multiple_of(7)).then(|| n.to_le_bytes()[..(n % 5) as usize].to_vec());
            table.insert(&key_of(n), value.as_deref());
            model.insert(key_of(n), value);
        }
        let (a, b) = (key_of(rng.next().expect("endless")), key_of(rng.next().expect("endless")));
        let (lo, hi) = (a.clone().min(b.clone()), a.max(b));
        let bounds = (Bound::Excluded(lo.as_slice()), Bound::Included(hi.as_slice()));
        let want: Vec<_> = model.range::<[u8], _>(bounds).map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(entries(table.range(bounds.0, bounds.1)), want, "round {round}");
        let want_rev: Vec<_> = want.iter().rev().cloned().collect();
        assert_eq!(entries(table.range(bounds.0, bounds.1).rev()), want_rev, "round {round}, reversed");
        if round % 10 == 9 {
            check(&table, &model);
        }
    }
    let order = table.order.read().expect("not poisoned");
    assert!(!order.sorted.is_empty(), "the test reaches the long list");
}

#[test]
fn an_overwrite_after_the_order_was_built_reads_its_new_value() {
    // Regression guard for a stale index: the order holds key numbers, so the overwrite
    // (which only repoints the key's slot) is seen by the next range read.
    let mut table = Memtable::<SeededHash>::new();
    table.insert(b"a", Some(b"1"));
    table.insert(b"b", Some(b"1"));
    assert_eq!(entries(table.iter()).len(), 2);
    table.insert(b"a", Some(b"2"));
    table.insert(b"b", None);
    let expected = vec![(b"a".to_vec(), Some(b"2".to_vec())), (b"b".to_vec(), None)];
    assert_eq!(entries(table.iter()), expected);
    assert_eq!(table.get(b"a"), Some(Some(&b"2"[..])));
}

#[test]
fn overwrites_count_their_garbage_and_large_values_get_blocks_of_their_own() {
    let mut table = Memtable::<SeededHash>::new();
    table.insert(b"k", Some(b"12345"));
    assert_eq!(table.garbage_bytes(), 0);
    table.insert(b"k", None);
    assert_eq!(table.garbage_bytes(), 1 + 1 + 1 + 5, "the first entry: lengths, key, tag, value");
    let huge = vec![9u8; BLOCK_BYTES + 7];
    table.insert(b"huge", Some(&huge));
    table.insert(b"after", Some(b"x"));
    assert_eq!(table.get(b"huge"), Some(Some(huge.as_slice())));
    assert_eq!(table.get(b"after"), Some(Some(&b"x"[..])));
    assert_eq!(table.get(b"k"), Some(None));
    assert!(table.allocated_bytes() >= BLOCK_BYTES + 7);
}

#[test]
fn an_overwrite_of_the_same_length_is_written_in_place() {
    let mut table = Memtable::<SeededHash>::new();
    table.insert(b"counter", Some(&1u64.to_le_bytes()));
    let bytes = table.allocated_bytes();
    for n in 2..10_000u64 {
        table.insert(b"counter", Some(&n.to_le_bytes()));
    }
    assert_eq!(table.get(b"counter"), Some(Some(&9_999u64.to_le_bytes()[..])));
    assert_eq!((table.garbage_bytes(), table.allocated_bytes()), (0, bytes), "no garbage, no growth");
}

#[test]
fn garbage_past_the_newest_entries_compacts_the_arena() {
    // 3,000 keys of about 1 KiB, a third of them overwritten each round with alternating
    // lengths, the first 100 never: 60 MiB appended, about 3 MiB newest, spread over blocks.
    let mut table = Memtable::<SeededHash>::new();
    let mut model = Model::new();
    for round in 0..60u32 {
        for k in (0..3000u32).filter(|k| round == 0 || (*k >= 100 && (k + round) % 3 == 0)) {
            let value = vec![(round + k) as u8; 1000 + (round % 2) as usize];
            let value = (k % 97 != round % 97).then_some(value);
            table.insert(&k.to_be_bytes(), value.as_deref());
            model.insert(k.to_be_bytes().to_vec(), value);
        }
        let newest = model.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum::<usize>();
        assert!(table.garbage_bytes() <= (COMPACT_GARBAGE_BYTES_MIN as usize).max(2 * newest) as u64);
        assert!(table.allocated_bytes() < 2 * COMPACT_GARBAGE_BYTES_MIN as usize, "round {round}");
        if round % 8 == 7 {
            check(&table, &model);
        }
    }
    check(&table, &model);
}

#[test]
fn an_inverted_or_empty_range_is_empty() {
    let mut table = Memtable::<SeededHash>::new();
    for key in [b"a", b"b", b"c"] {
        table.insert(key, Some(key));
    }
    assert_eq!(table.range(Bound::Included(b"c"), Bound::Excluded(b"a")).count(), 0);
    assert_eq!(table.range(Bound::Excluded(b"b"), Bound::Excluded(b"b")).count(), 0);
    assert_eq!(table.range(Bound::Included(b"b"), Bound::Included(b"b")).count(), 1);
    assert_eq!(Memtable::<SeededHash>::new().iter().count(), 0);
}

#[test]
fn a_packed_copy_holds_the_newest_entries_in_key_order_and_in_its_tail_alone() {
    // Random keys with overwrites of other lengths and tombstones: the original's arena is
    // in commit order, with garbage; the copy's is in key order, without.
    let mut table = Memtable::<SeededHash>::with_seed(9);
    let mut model = Model::new();
    for (i, n) in numbers(77).take(20_000).enumerate() {
        let key = vec![b'k', (n % 251) as u8, (n >> 8) as u8 % 64];
        let value = (i % 5 != 0).then(|| vec![i as u8; (n % 90) as usize]);
        table.insert(&key, value.as_deref());
        model.insert(key, value);
    }
    let packed = table.packed();
    check(&packed, &model);
    assert_eq!(packed.seed(), table.seed(), "the seed carries over");
    assert_eq!(packed.tail, 0..model.len(), "every key in the tail, none hashed");
    assert!(packed.slots.is_empty());
    assert_eq!(packed.garbage_bytes(), 0);
    // Front to back: each entry sits after the one before it in key order.
    let positions: Vec<u64> =
        (0..packed.len() as u32).map(|n| packed.keys[n as usize] & !TOMBSTONE).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "the arena is in key order");
    for (key, value) in &model {
        assert_eq!(packed.get(key), Some(value.as_deref()), "a point read of {key:?}");
    }
}

#[test]
fn a_packed_copy_is_the_same_whether_the_order_is_whole_or_has_recent_keys() {
    // Enough random keys that the first indexing sorts them all into one list (the path that
    // loads a group at a time), then a few more that the next indexing keeps in `recent`
    // (the merge).
    fn insert(table: &mut Memtable, model: &mut Model, i: usize, n: u64) {
        let key = n.to_le_bytes()[..5].to_vec();
        let value = (!i.is_multiple_of(7)).then(|| vec![i as u8; (n % 40) as usize]);
        table.insert(&key, value.as_deref());
        model.insert(key, value);
    }
    let mut table = Memtable::<SeededHash>::with_seed(21);
    let mut model = Model::new();
    let mut keys = numbers(31).enumerate();
    // Not a multiple of the group: the last group is a short one.
    for (i, n) in keys.by_ref().take(3 * RECENT_MIN + PACK_GROUP_KEYS / 2 + 1) {
        insert(&mut table, &mut model, i, n);
    }
    table.build_order();
    assert!(table.order.read().unwrap().recent.is_empty(), "one sorted list");
    assert_ne!(table.len() % PACK_GROUP_KEYS, 0, "a short last group");
    let whole = table.packed();
    check(&whole, &model);
    for (i, n) in keys.take(RECENT_MIN / 8) {
        insert(&mut table, &mut model, i, n);
    }
    table.build_order();
    assert!(!table.order.read().unwrap().recent.is_empty(), "recent keys beside the sorted list");
    let merged = table.packed();
    check(&merged, &model);
    assert!(merged.in_key_order() && whole.in_key_order());
    assert_eq!(whole.len() + RECENT_MIN / 8, merged.len(), "the later keys are all new");
}

#[test]
fn keys_indexed_from_the_ascending_tail_go_after_the_sorted_list_unsorted() {
    let mut table = Memtable::<SeededHash>::with_seed(5);
    let mut model = Model::new();
    let mut insert = |table: &mut Memtable, n: u64| {
        table.insert(&n.to_be_bytes(), Some(&n.to_le_bytes()[..3]));
        model.insert(n.to_be_bytes().to_vec(), Some(n.to_le_bytes()[..3].to_vec()));
    };
    let order = |table: &Memtable| {
        let order = table.order.read().unwrap();
        (order.sorted.clone(), order.recent.clone())
    };
    for n in 0..10_000 {
        insert(&mut table, 3 * n);
    }
    table.build_order();
    assert_eq!(order(&table), ((0..10_000).collect(), vec![]), "the tail's numbers are the order");
    // A long tail searched: inserts now hash it from its front, so the tail starts later,
    // still at or below the first key not yet indexed.
    assert_eq!(table.get(&9u64.to_be_bytes()), Some(Some(&9u64.to_le_bytes()[..3])));
    for n in 10_000..11_000 {
        insert(&mut table, 3 * n);
    }
    assert!(table.tail.start > 0 && table.tail.end == table.len(), "tail {:?}", table.tail);
    table.build_order();
    assert_eq!(order(&table), ((0..11_000).collect(), vec![]), "appended, not kept in `recent`");
    // A key below the last closes the tail: the next keys are sorted and merged.
    for n in [1, 29_998, 40_000, 2] {
        insert(&mut table, n);
    }
    table.build_order();
    assert_eq!(order(&table).1, vec![11_000, 11_003, 11_001, 11_002], "sorted into `recent`");
    check(&table, &model);
}

#[test]
fn warming_slots_loads_only_past_its_threshold_and_changes_nothing() {
    let mut table: Memtable = Memtable::with_seed(11);
    let mut model = Model::new();
    let mut keys = numbers(5).map(|n| n.to_be_bytes());
    while table.slots.len() < WARM_SLOTS_MIN {
        assert!(!table.warms(), "{} slots: small tables are not warmed", table.slots.len());
        let key = keys.next().expect("endless");
        table.insert_parts(&key[..1], &key[1..], Some(b"v"));
        model.insert(key.to_vec(), Some(b"v".to_vec()));
    }
    assert!(table.warms(), "past the threshold");
    let batch: Vec<[u8; 8]> = keys.by_ref().take(WARM_GROUP_KEYS).collect();
    let known: Vec<Vec<u8>> = model.keys().take(WARM_GROUP_KEYS).cloned().collect();
    table
        .warm_slots(batch.iter().map(|k| (&k[..1], &k[1..])).chain(known.iter().map(|k| (&k[..1], &k[1..]))));
    check(&table, &model);
    for key in &batch {
        assert_eq!(table.get(key), None, "a warmed key is not inserted");
    }
}

#[test]
fn first_and_last_hold_when_keys_tie_on_their_first_eight_bytes_or_end_in_zeros() {
    // The kept 8-byte heads order most keys; these tie on them or differ only in padding.
    let keys: [&[u8]; 10] =
        [b"abcdefgh2", b"a", b"abcdefgh", b"a\0", b"abcdefgh1", b"", b"a\0\x01", b"abcdefgh10", b"\0", b"zz"];
    for (step, start) in [(1, 0), (3, 1), (7, 4), (9, 0)] {
        let mut table: Memtable = Memtable::with_seed(3);
        let mut model = Model::new();
        for n in 0..keys.len() {
            let key = keys[(n * step + start) % keys.len()];
            table.insert(key, Some(b"v"));
            model.insert(key.to_vec(), Some(b"v".to_vec()));
            check(&table, &model);
        }
    }
}

#[test]
fn a_layer_of_ascending_keys_without_tombstones_or_garbage_hands_its_arena_to_a_run() {
    // Lengths across the varint boundaries, an empty value, an entry larger than a block,
    // and a same-length overwrite in place (no garbage).
    let mut table = Memtable::<SeededHash>::with_seed(5);
    let mut model = BTreeMap::new();
    let lengths = [0usize, 1, 100, 126, 127, 128, 129, 16_383, 16_384, BLOCK_BYTES + 7, 3, 200];
    for i in 0..3000usize {
        let key = format!("key{i:05}").into_bytes();
        let value = vec![i as u8; lengths[i % lengths.len()] % (if i < 12 { usize::MAX } else { 300 })];
        table.insert(&key, Some(&value));
        model.insert(key, value);
    }
    table.insert(b"key00002", Some(&[9u8; 100]));
    model.insert(b"key00002".to_vec(), vec![9u8; 100]);
    let addresses = table.block_addresses();
    assert!(table.is_run(), "a run already");
    let parts = table.into_run_parts();
    let payload: usize = model.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(parts.payload_bytes, payload as u64);
    let parts_addresses: Vec<usize> = parts.blocks.iter().map(|b| b.as_ptr() as usize).collect();
    assert_eq!(parts_addresses, addresses, "the blocks themselves, none copied");
    let mut run = crate::checkpoint::run::Run::new();
    run.push(b"aaa", b"before");
    run.adopt_blocks(parts.blocks, &parts.positions, parts.payload_bytes);
    run.push(b"zzz", b"after");
    let got: Vec<(Vec<u8>, Vec<u8>)> = run.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let mut expected: Vec<(Vec<u8>, Vec<u8>)> = vec![(b"aaa".to_vec(), b"before".to_vec())];
    expected.extend(model);
    expected.push((b"zzz".to_vec(), b"after".to_vec()));
    assert_eq!(got, expected);
    assert_eq!(run.live_bytes(), (payload + 3 + 6 + 3 + 5) as u64);
}

#[test]
fn a_layer_with_a_tombstone_garbage_or_keys_out_of_order_is_no_run() {
    let ascending = || {
        let mut table = Memtable::<SeededHash>::with_seed(5);
        for i in 0..100u32 {
            table.insert(format!("k{i:03}").as_bytes(), Some(b"value"));
        }
        table
    };
    assert!(ascending().is_run(), "the layer the cases change is one");
    let mut tombstone = ascending();
    tombstone.insert(b"k100", None);
    let mut garbage = ascending();
    garbage.insert(b"k050", Some(b"a longer value"));
    let mut out_of_order = ascending();
    out_of_order.insert(b"a", Some(b"value"));
    // Garbage compacted away, but the overwritten key's entry now sits after the others.
    let mut reordered = ascending();
    reordered.insert(b"k000", Some(b"a longer value"));
    reordered.compact();
    assert_eq!(reordered.garbage_bytes(), 0);
    for (case, table) in
        [("tombstone", tombstone), ("garbage", garbage), ("order", out_of_order), ("arena", reordered)]
    {
        assert!(!table.is_run(), "{case}");
    }
}
