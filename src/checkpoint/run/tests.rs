//! Unit tests of the packed run: empty and one-entry runs, entries across and beyond block
//! boundaries, binary-search edges, consuming from the front.

use std::ops::Bound::{Excluded, Included, Unbounded};

use super::*;

fn keys(iter: RunIter<'_>) -> Vec<Vec<u8>> {
    iter.map(|(k, _)| k.to_vec()).collect()
}

#[test]
fn an_empty_run_finds_nothing_in_either_direction() {
    let run = Run::new();
    assert!(run.is_empty());
    assert_eq!(run.get(b""), None);
    assert_eq!(run.get(b"a"), None);
    assert_eq!((run.lower_bound(b"a"), run.upper_bound(b"a")), (0, 0));
    assert_eq!(run.iter().next(), None);
    assert_eq!(run.iter().next_back(), None);
    assert_eq!(run.range(Included(b"a"), Excluded(b"z")).count(), 0);
    assert_eq!(run.allocated_bytes(), 0, "an empty run allocates nothing");
}

#[test]
fn one_entry_is_found_and_bounded_exactly() {
    let run: Run = [(&b"k"[..], &b"v"[..])].into_iter().collect();
    assert_eq!(run.len(), 1);
    assert_eq!(run.get(b"k"), Some(&b"v"[..]));
    assert_eq!(run.get(b"j"), None);
    assert_eq!(run.get(b"kk"), None);
    assert_eq!(run.get(b""), None);
    assert_eq!(keys(run.range(Included(b"k"), Included(b"k"))), [b"k".to_vec()]);
    assert_eq!(run.range(Excluded(b"k"), Unbounded).count(), 0);
    assert_eq!(run.range(Unbounded, Excluded(b"k")).count(), 0);
    assert_eq!(run.iter().next_back(), Some((&b"k"[..], &b"v"[..])));
    assert_eq!(run.live_bytes(), 2);
}

#[test]
fn an_empty_key_and_value_are_entries_like_any_other() {
    let run: Run = [(&b""[..], &b""[..]), (&b"a"[..], &b""[..])].into_iter().collect();
    assert_eq!(run.get(b""), Some(&b""[..]));
    assert_eq!(run.get(b"a"), Some(&b""[..]));
    assert_eq!(run.lower_bound(b""), 0);
    assert_eq!(run.upper_bound(b""), 1);
}

#[test]
fn binary_search_edges_match_a_sorted_vector() {
    let stored: Vec<Vec<u8>> = (0..200u32).map(|i| (i * 3).to_be_bytes().to_vec()).collect();
    let run: Run = stored.iter().map(|k| (k.as_slice(), k.as_slice())).collect();
    for probe in 0..=602u32 {
        let probe = probe.to_be_bytes();
        let lower = stored.partition_point(|k| k.as_slice() < &probe[..]);
        let upper = stored.partition_point(|k| k.as_slice() <= &probe[..]);
        assert_eq!((run.lower_bound(&probe), run.upper_bound(&probe)), (lower, upper), "{probe:?}");
        assert_eq!(run.get(&probe).is_some(), lower < upper);
        assert_eq!(run.lower_bound_from_front(&probe), lower, "galloping agrees: {probe:?}");
    }
    // Before the first and after the last key.
    assert_eq!(run.lower_bound(b""), 0);
    assert_eq!(run.lower_bound(&[0xff; 5]), 200);
    // An inverted range is empty, not a panic.
    assert_eq!(run.range(Included(&[0, 0, 0, 90][..]), Excluded(&[0, 0, 0, 3][..])).count(), 0);
    let (from, to) = (Excluded(&[0, 0, 0, 3][..]), Included(&[0, 0, 0, 12][..]));
    let backwards: Vec<Vec<u8>> = run.range(from, to).rev().map(|(k, _)| k.to_vec()).collect();
    let mut forwards = keys(run.range(from, to));
    forwards.reverse();
    assert_eq!(backwards, forwards, "next_back walks the same entries from the other end");
    assert_eq!(backwards, [[0, 0, 0, 12], [0, 0, 0, 9], [0, 0, 0, 6]].map(|k| k.to_vec()));
}

#[test]
fn entries_never_span_blocks_and_oversized_ones_get_a_block_of_their_own() {
    // Entries that fill a block unevenly, then one larger than a block, then small again.
    let filler = vec![1u8; BLOCK_BYTES / 3];
    let huge = vec![2u8; 2 * BLOCK_BYTES + 5];
    let mut run = Run::new();
    run.push(b"a", &filler);
    run.push(b"b", &filler);
    run.push(b"c", &filler); // does not fit the first block's rest: starts the second
    run.push(b"d", &huge);
    run.push(b"e", b"small");
    let block_filler = BLOCK_BYTES - 1 - 1 - 3; // key length, key, a 3-byte value length
    assert_eq!(entry_bytes(1, block_filler as u32), BLOCK_BYTES);
    run.push(b"f", &vec![3u8; block_filler]); // exactly one block
    assert_eq!(run.blocks.len(), 5, "a+b | c | d (own) | e | f (exactly a block)");
    assert_eq!(
        run.blocks[2].capacity(),
        1 + 1 + 4 + huge.len(), // a 22-bit value length takes 4 varint bytes
        "an oversized entry's block fits it exactly"
    );
    assert_eq!(run.get(b"c"), Some(filler.as_slice()));
    assert_eq!(run.get(b"d"), Some(huge.as_slice()));
    assert_eq!(run.get(b"e"), Some(&b"small"[..]));
    assert_eq!(run.get(b"f").map(<[u8]>::len), Some(block_filler));
    let lengths: Vec<usize> = run.iter().rev().map(|(_, v)| v.len()).collect();
    assert_eq!(lengths, [block_filler, 5, huge.len(), filler.len(), filler.len(), filler.len()]);
}

#[test]
fn consuming_hides_the_front_and_frees_blocks_wholly_behind_it() {
    let value = vec![9u8; 1000];
    let keys_total = 3 * BLOCK_BYTES / 1000;
    let mut run: Run = (0..keys_total as u32).map(|i| (i.to_be_bytes(), value.clone())).collect();
    let before = run.allocated_bytes();
    run.consume(10);
    assert_eq!(run.allocated_bytes(), before, "the first block still holds live entries");
    assert_eq!(run.get(&9u32.to_be_bytes()), None, "a consumed entry is gone");
    assert_eq!(run.entry(0).0, 10u32.to_be_bytes());
    assert_eq!(run.lower_bound(&0u32.to_be_bytes()), 0);
    assert_eq!(run.lower_bound_from_front(&10u32.to_be_bytes()), 0);
    assert_eq!(run.lower_bound_from_front(&77u32.to_be_bytes()), 67, "galloping counts live entries");
    assert_eq!(run.lower_bound_from_front(&u32::MAX.to_be_bytes()), run.len());
    run.consume(BLOCK_BYTES / 1000 + 10);
    assert!(run.allocated_bytes() <= before - BLOCK_BYTES, "the first block is freed");
    let left = run.len();
    run.consume(left);
    assert!(run.is_empty());
    assert_eq!(run.iter().next(), None);
    assert_eq!(run.allocated_bytes(), 0, "every block and index chunk is freed");
    assert_eq!(run.live_bytes(), 0);
}

#[test]
fn a_run_consumed_to_nothing_takes_new_entries_like_a_new_one() {
    // The merge takes a base it consumed whole as its new base and pushes after it.
    for (consumed, how) in [(3usize, "consume"), (INDEX_CHUNK_SLOTS + 5, "consume"), (3, "move")] {
        let mut run: Run = (0..consumed as u32).map(|i| (i.to_be_bytes(), [1u8])).collect();
        if how == "consume" {
            run.consume(consumed);
        } else {
            run.move_front_into(consumed, &mut Run::new());
        }
        assert!(run.is_empty(), "{consumed} {how}");
        for i in 0..5u32 {
            run.push(&(u32::MAX - 4 + i).to_be_bytes(), &[i as u8; 3]);
        }
        let expected: Vec<Vec<u8>> = (0..5u32).map(|i| (u32::MAX - 4 + i).to_be_bytes().to_vec()).collect();
        assert_eq!(keys(run.iter()), expected, "{consumed} {how}");
        for i in 0..5u32 {
            assert_eq!(
                run.get(&(u32::MAX - 4 + i).to_be_bytes()),
                Some(&[i as u8; 3][..]),
                "{consumed} {how}"
            );
        }
        assert_eq!((run.len(), run.live_bytes()), (5, 5 * 7), "{consumed} {how}");
    }
}

#[test]
fn lengths_are_varints_of_one_to_five_bytes_and_round_trip() {
    for (n, bytes) in
        [(0u32, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3), (1 << 21, 4), (1 << 28, 5), (u32::MAX, 5)]
    {
        assert_eq!(varint_bytes(n), bytes, "{n}");
        let mut out = vec![0xaa];
        put_varint(&mut out, n);
        assert_eq!(out.len(), 1 + bytes, "{n}");
        assert_eq!(get_varint(&out, 1), (n as usize, 1 + bytes), "{n}");
    }
    // A 16-byte key and a 100-byte value (namespaced: 17) cost 2 bytes of lengths.
    assert_eq!(entry_bytes(17, 100), 119);
}

#[test]
fn entries_round_trip_at_every_length_edge_of_the_one_byte_path() {
    // `push` writes lengths under 128 as one byte without the varint loop: every pairing of
    // lengths either side of that edge reads back whole, in one block, packed back to back.
    let lengths = [0usize, 1, 126, 127, 128, 129, 255, 256, 16_383, 16_384];
    let mut entries = Vec::new();
    for (i, &key_len) in lengths.iter().enumerate() {
        for (j, &value_len) in lengths.iter().enumerate() {
            let mut key = vec![(i * lengths.len() + j) as u8];
            key.resize(key_len.max(1), 0x5a);
            entries.push((key, vec![j as u8; value_len]));
        }
    }
    let run: Run = entries.iter().map(|(k, v)| (k, v)).collect();
    assert_eq!(run.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect::<Vec<_>>(), entries);
    let packed: usize = entries.iter().map(|(k, v)| entry_bytes(k.len() as u32, v.len() as u32)).sum();
    assert_eq!(run.blocks.iter().map(Vec::len).sum::<usize>(), packed, "entries are packed back to back");
}

#[test]
fn the_index_spans_chunks_and_consuming_frees_them() {
    let entries = 2 * INDEX_CHUNK_SLOTS + 7;
    let mut run: Run = (0..entries as u32).map(|i| (i.to_be_bytes(), [1u8])).collect();
    assert_eq!(run.index.chunks.len(), 3);
    for i in [0, INDEX_CHUNK_SLOTS - 1, INDEX_CHUNK_SLOTS, INDEX_CHUNK_SLOTS + 1, entries - 1] {
        let key = (i as u32).to_be_bytes();
        assert_eq!((run.lower_bound(&key), run.upper_bound(&key)), (i, i + 1), "slot {i}");
        assert_eq!(run.lower_bound_from_front(&key), i, "slot {i}");
        assert_eq!(run.get(&key), Some(&[1u8][..]));
    }
    let index_bytes = run.index.allocated_bytes();
    run.consume(INDEX_CHUNK_SLOTS + 1);
    assert_eq!(run.index.allocated_bytes(), index_bytes - INDEX_CHUNK_SLOTS * 8, "the first chunk is freed");
    let key = ((INDEX_CHUNK_SLOTS + 1) as u32).to_be_bytes();
    assert_eq!(run.iter().next().map(|(k, _)| k), Some(&key[..]));
    assert_eq!(run.iter().next_back().map(|(k, _)| k), Some(&((entries - 1) as u32).to_be_bytes()[..]));
}

#[test]
fn a_value_overwritten_in_place_is_read_back_and_nothing_else_changes() {
    // Entries across several blocks, an oversized one among them.
    let big = vec![7u8; BLOCK_BYTES + 3];
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> =
        (0..3000u32).map(|i| (format!("k{i:05}").into_bytes(), vec![(i % 251) as u8; 400])).collect();
    entries.insert(1500, (b"k01499z".to_vec(), big.clone()));
    let mut run: Run = entries.iter().map(|(k, v)| (k, v)).collect();
    let live_bytes = run.live_bytes();
    for (n, (key, value)) in entries.iter_mut().enumerate().step_by(7) {
        assert_eq!(run.position(key), Some(n));
        for byte in value.iter_mut() {
            *byte ^= 0x5a;
        }
        run.overwrite_value(n, value);
    }
    let got: Vec<(Vec<u8>, Vec<u8>)> = run.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    assert_eq!(got, entries, "only the overwritten values changed");
    assert_eq!(run.live_bytes(), live_bytes);
    assert_eq!(run.position(b"k"), None);
    assert_eq!(run.position(b"k99999"), None);
    // After consuming from the front, positions count from the first live entry.
    run.consume(10);
    assert_eq!(run.position(b"k00010"), Some(0));
    run.overwrite_value(0, &[1u8; 400]);
    assert_eq!(run.get(b"k00010"), Some(&[1u8; 400][..]));
    assert_eq!(run.get(b"k00009"), None);
}

#[test]
#[should_panic(expected = "keeps the value's length")]
fn an_overwrite_of_another_length_is_refused() {
    let mut run: Run = [(&b"k"[..], &b"vv"[..])].into_iter().collect();
    run.overwrite_value(0, b"v");
}

#[test]
fn a_tried_overwrite_of_another_length_changes_nothing_and_one_of_the_same_length_lands() {
    let mut run: Run =
        [(&b"a"[..], &b"vv"[..]), (&b"b"[..], &b"ww"[..]), (&b"c"[..], &b""[..])].into_iter().collect();
    for (n, value) in [(0, &b"v"[..]), (0, b"vvv"), (1, b""), (2, b"x")] {
        assert!(!run.try_overwrite_value(n, value), "entry {n} keeps its length");
    }
    let got: Vec<(Vec<u8>, Vec<u8>)> = run.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let want =
        [(b"a".to_vec(), b"vv".to_vec()), (b"b".to_vec(), b"ww".to_vec()), (b"c".to_vec(), Vec::new())];
    assert_eq!(got, want, "a refused overwrite changes nothing");
    assert!(run.try_overwrite_value(1, b"WW"));
    assert!(run.try_overwrite_value(2, b""));
    assert_eq!(run.get(b"b"), Some(&b"WW"[..]));
    assert_eq!(run.get(b"a"), Some(&b"vv"[..]));
}

#[test]
fn a_search_by_fences_finds_what_a_plain_search_finds() {
    // Runs whose keys share a long prefix (as the realistic store's do), none, or differ only
    // past the fence's 8 bytes, with zero bytes and keys that are prefixes of others.
    let mut runs: Vec<Vec<Vec<u8>>> = Vec::new();
    runs.push((0..2000u64).map(|n| [&b"\0realist:"[..], &(n * 3).to_be_bytes()].concat()).collect());
    runs.push((0..700u32).map(|n| format!("{n}").into_bytes()).collect());
    runs.push(
        (0..500u32).map(|n| [&[7u8; 12][..], &(n / 7).to_be_bytes(), &[(n % 7) as u8]].concat()).collect(),
    );
    runs.push((0..300u32).flat_map(|n| [vec![n as u8, 0], vec![n as u8, 0, 0], vec![n as u8, 1]]).collect());
    runs.push(vec![b"only".to_vec()]);
    runs.push(Vec::new());
    for mut keys in runs {
        keys.sort();
        keys.dedup();
        let mut run: Run = keys.iter().map(|k| (k, b"v")).collect();
        for consumed in [0, 17] {
            let consumed = consumed.min(run.len());
            run.consume(consumed);
            let mut fences = run.fences();
            let mut probes: Vec<Vec<u8>> = keys.clone();
            for key in &keys {
                let mut longer = key.clone();
                longer.push(0);
                probes.push(longer);
                probes.push(key[..key.len() - 1].to_vec());
                let mut bumped = key.clone();
                *bumped.last_mut().expect("a key") ^= 1;
                probes.push(bumped);
            }
            probes.extend([Vec::new(), vec![0xff; 20], b"\0realis".to_vec()]);
            // In key order (as replay mostly goes), backwards, and strided: the gallop from
            // the previous lookup finds the same entry from any hint.
            let strided = (0..probes.len()).map(|i| &probes[(i * 7919) % probes.len()]);
            for probe in probes.iter().chain(probes.iter().rev()).chain(strided) {
                assert_eq!(run.position_with(&mut fences, probe), run.position(probe), "probe {probe:?}");
            }
        }
    }
}

#[test]
fn a_gallop_from_any_hint_finds_the_partition_point() {
    let samples: Vec<u64> = [0, 0, 1, 3, 3, 3, 4, 9, 9, 10, 12, 12, 12, 12, 12, 13, 20].to_vec();
    for len in 0..=samples.len() {
        let samples = &samples[..len];
        for fence in 0..=21 {
            for hint in 0..=len + 2 {
                let below = super::gallop_partition(samples, hint, |f| f < fence);
                assert_eq!(below, samples.partition_point(|&f| f < fence), "{samples:?} {fence} {hint}");
                let equal = super::gallop_partition(&samples[below..], hint, |f| f == fence);
                assert_eq!(equal, samples[below..].partition_point(|&f| f == fence), "{samples:?} {fence}");
            }
        }
    }
}

#[test]
fn moving_entries_at_the_edge_of_two_byte_lengths_counts_their_payload() {
    // Entries of 129 to 135 bytes: the smallest with a two-byte length is 131 (a 128-byte
    // key, an empty value), and its payload is its bytes less 3, not less 2.
    let shapes = [(127, 0), (128, 0), (128, 1), (2, 127), (2, 128), (3, 128), (126, 1), (129, 0)];
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..64usize)
        .map(|i| {
            let (key_len, value_len) = shapes[i % shapes.len()];
            // Two bytes of position first, so the keys ascend (and shorter keys take 2).
            let mut key = vec![b'k'; key_len.max(2)];
            key[..2].copy_from_slice(&(i as u16).to_be_bytes());
            (key, vec![b'v'; value_len])
        })
        .collect();
    let mut sorted = entries;
    sorted.sort();
    for group in 1..6 {
        let mut source: Run = sorted.iter().cloned().collect();
        let mut into = Run::new();
        while !source.is_empty() {
            source.move_front_into(group.min(source.len()), &mut into);
            let rest: u64 = source.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
            assert_eq!(source.live_bytes(), rest, "group {group}: payload left");
        }
        let moved: u64 = sorted.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        assert_eq!(into.live_bytes(), moved, "group {group}: payload moved");
    }
}

/// `compare_keys` agrees with the slices' own order, at every length around an 8-byte word's
/// boundary and every byte that could differ.
#[test]
fn the_word_at_a_time_order_agrees_with_byte_order() {
    let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
    for len in [1, 7, 8, 9, 15, 16, 17, 24, 25] {
        for differ_at in 0..len {
            for byte in [0u8, 1, 0x7f, 0x80, 0xfe, 0xff] {
                let mut key = vec![0x61; len];
                key[differ_at] = byte;
                keys.push(key);
            }
        }
    }
    for a in &keys {
        for b in &keys {
            assert_eq!(compare_keys(a, b), a.cmp(b), "{a:?} vs {b:?}");
        }
    }
}
