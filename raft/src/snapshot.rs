//! The snapshot blob: the state machine's data as length-prefixed pairs, and its storage in
//! chunks under a sequence number (see the crate docs).
//!
//! ```text
//! per pair: key u32 LE length + bytes, value u32 LE length + bytes
//! ```
//!
//! Decoding bounds every length by the bytes left and names the offset of the first problem.

/// Bytes of one stored snapshot chunk (one kernel value).
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// Encodes pairs into a snapshot blob.
pub(crate) fn encode(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in pairs {
        for part in [key, value] {
            let len = u32::try_from(part.len()).expect("keys and values are bounded by the kernel");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

/// Decodes a snapshot blob; the error names the offset.
pub(crate) fn decode(bytes: &[u8]) -> Result<stormhold::Entries, String> {
    let mut at = 0;
    let take = |at: &mut usize| -> Result<Vec<u8>, String> {
        let len_bytes: [u8; 4] = bytes
            .get(*at..*at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("snapshot offset {at}: truncated length"))?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        let part = bytes.get(*at + 4..*at + 4 + len).ok_or_else(|| {
            format!("snapshot offset {at}: {len} bytes announced, {} left", bytes.len() - *at - 4)
        })?;
        *at += 4 + len;
        Ok(part.to_vec())
    };
    let mut out = Vec::new();
    while at < bytes.len() {
        let key = take(&mut at)?;
        let value = take(&mut at)?;
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncations_are_errors() {
        let pairs = vec![(b"a".to_vec(), b"1".to_vec()), (b"bb".to_vec(), Vec::new())];
        let blob = encode(&pairs);
        assert_eq!(decode(&blob), Ok(pairs.clone()));
        // Every prefix but the one ending at the pair boundary (10 bytes: 4 + 1 + 4 + 1) is
        // truncated mid-pair.
        for len in 1..blob.len() {
            if len == 10 {
                assert_eq!(decode(&blob[..len]), Ok(pairs[..1].to_vec()));
            } else {
                assert!(decode(&blob[..len]).is_err(), "prefix {len} decoded");
            }
        }
        assert!(decode(&[9, 0, 0, 0, 1]).unwrap_err().starts_with("snapshot offset 0"));
    }
}
