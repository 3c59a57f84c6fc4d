//! Which hits moka hears of.
//!
//! moka's admission compares how often keys were read. Telling it about every hit costs a
//! probe of its own table, a clock read and a logged read per request, more than the rest
//! of a hit; telling it about one hit in [`ONE_IN`], chosen at random, keeps the relative
//! frequencies of sessions (each is sampled at the same rate) for a thirty-second of that.
//! Misses are always told (see `SessionCache::record_miss`): a key's first reads are what
//! get it admitted.
//!
//! Random rather than every n-th: a fixed stride would always land on the same session of
//! two that a thread serves in turn.

use std::cell::Cell;

/// One hit in this many is recorded in moka.
pub(super) const ONE_IN: u32 = 32;

thread_local! {
    /// Per-thread xorshift state: no shared counter for threads to contend on.
    static STATE: Cell<u32> = const { Cell::new(0x9E37_79B9) };
}

/// Whether this hit is one moka should hear of.
pub(super) fn sampled() -> bool {
    STATE.with(|state| {
        // xorshift32: full period over the non-zero states, and the state is never zero.
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        state.set(x);
        x % ONE_IN == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_one_in_n_is_sampled() {
        let n = 320_000;
        let sampled = (0..n).filter(|_| sampled()).count();
        let expected = n / ONE_IN as usize;
        assert!(
            sampled > expected * 9 / 10 && sampled < expected * 11 / 10,
            "{sampled} of {n}"
        );
    }
}
