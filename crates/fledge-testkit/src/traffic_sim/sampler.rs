//! The simulator's source of chance: a seeded SplitMix64, so a run is reproducible.

/// A small, fast, seeded generator of uniform numbers.
#[derive(Debug, Clone)]
pub struct Sampler(u64);

impl Sampler {
    /// A generator that always yields the same sequence for the same seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number, uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // The top 53 bits fill an f64 mantissa exactly.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::Sampler;

    #[test]
    fn uniform_draws_are_in_range_and_spread_evenly() {
        let mut s = Sampler::new(7);
        let draws: Vec<f64> = (0..10_000).map(|_| s.uniform()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below_a_fifth = draws.iter().filter(|d| **d < 0.2).count();
        assert!((1_850..2_150).contains(&below_a_fifth), "{below_a_fifth}");
        assert_eq!(
            Sampler::new(7).uniform().to_bits(),
            draws[0].to_bits(),
            "same seed, same sequence"
        );
    }
}
