//! The one hash of the code base: a fast 64-bit checksum the state files carry to tell a
//! whole record from one a crash cut short or someone edited by hand.

/// Eight bytes a step. Enough against torn and hand-edited files (their writers hold a lock or
/// write whole records, so nothing else tears them); not a defence against a forger, who can
/// write any file in the state directory anyway.
pub fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        hash = (hash ^ word).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    (hash ^ u64::from_le_bytes(tail))
        .wrapping_mul(K)
        .rotate_left(29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_and_the_length_count() {
        let text = b"10.0.0.1 * 1700000000000 2000 - 0 - 75%\n";
        assert_eq!(checksum(text), checksum(text));
        for i in 0..text.len() {
            let mut changed = text.to_vec();
            changed[i] ^= 1;
            assert_ne!(checksum(&changed), checksum(text), "byte {i}");
        }
        assert_ne!(checksum(b""), checksum(b"\0"));
        assert_ne!(checksum(b"abcdefgh"), checksum(b"abcdefgh\0"));
    }
}
