//! Stable hashes for names and checksums (cache keys, worktree names,
//! spool files); none is for anything secret.

/// A checksum in FNV-1a's manner but a word (8 bytes) at a time, each
/// step rotated so high bits reach the low ones, and the length last:
/// stable across builds, and about eight times faster over the hundreds
/// of megabytes of a large site's caches. Not for anything secret.
pub fn hash_words(bytes: &[u8]) -> u64 {
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    let step = |h: u64, w: u64| (h ^ w).wrapping_mul(0x100_0000_01b3).rotate_left(29);
    let h = words.fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
        step(h, u64::from_le_bytes(w.try_into().expect("8 bytes")))
    });
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    step(step(h, u64::from_le_bytes(last)), bytes.len() as u64)
}

/// FNV-1a: a stable, short, collision-unlikely name part (cache dirs,
/// worktree names, spool files, cache keys); not for anything secret.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}
