//! Deterministic primality testing and generation of NTT-friendly primes `q = 1 mod 2N`.

use super::modulus::MAX_MODULUS_BITS;

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (a as u128 * b as u128 % m as u128) as u64
}

fn pow_mod(mut a: u64, mut e: u64, m: u64) -> u64 {
    let mut r = 1u64 % m;
    a %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, a, m);
        }
        a = mul_mod(a, a, m);
        e >>= 1;
    }
    r
}

/// Deterministic Miller-Rabin: the first twelve primes as bases decide every n < 3.3 * 10^24.
pub fn is_prime(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for &p in &BASES {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'witness: for &a in &BASES {
        let mut x = pow_mod(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod(x, x, n);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// How a prime is placed relative to `2^bits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrimePlacement {
    /// The largest admissible primes below `2^bits` (first prime, special primes).
    Below,
    /// Primes as close to `2^bits` as possible, alternating above and below, so that a chain of
    /// rescalings by them keeps the scale close to `2^bits` (scaling primes).
    Closest,
}

/// Finds `count` distinct primes `q = 1 mod 2n` of about `bits` bits, none in `exclude`,
/// deterministically. Returns them in the order found; `None` if `bits` is out of range or the
/// search space runs out.
pub fn ntt_primes(
    bits: u32,
    n: usize,
    count: usize,
    placement: PrimePlacement,
    exclude: &[u64],
    out: &mut impl Extend<u64>,
) -> Option<()> {
    if !(20..=MAX_MODULUS_BITS).contains(&bits) || !n.is_power_of_two() {
        return None;
    }
    let m = 2 * n as u64;
    let center = 1u64 << bits;
    let mut found = 0usize;
    let mut chosen: [u64; 64] = [0; 64];
    if count > chosen.len() {
        return None;
    }
    let ok = |q: u64, chosen: &[u64]| is_prime(q) && !exclude.contains(&q) && !chosen.contains(&q);
    match placement {
        PrimePlacement::Below => {
            let mut q = center - m + 1; // largest value = 1 mod m below 2^bits
            while found < count {
                if q <= m {
                    return None;
                }
                if ok(q, &chosen[..found]) {
                    chosen[found] = q;
                    found += 1;
                }
                q -= m;
            }
        }
        PrimePlacement::Closest => {
            let mut up = center + 1;
            let mut down = center - m + 1;
            let max = 1u64 << MAX_MODULUS_BITS;
            while found < count {
                // Take whichever candidate is closer to 2^bits next.
                let take_up = up < max && (center - down) >= (up - center);
                let q = if take_up { up } else { down };
                if take_up {
                    up += m;
                } else {
                    if down <= m {
                        return None;
                    }
                    down -= m;
                }
                if ok(q, &chosen[..found]) {
                    chosen[found] = q;
                    found += 1;
                }
            }
        }
    }
    out.extend(chosen[..found].iter().copied());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_primes_and_carmichael_numbers() {
        let primes: [u64; 8] = [2, 3, 5, 97, 7919, 1_000_000_007, 0x1fff_ffff_ffff_ffff, 4611686018427387847];
        for p in primes {
            assert!(is_prime(p), "{p}");
        }
        for c in [0u64, 1, 4, 561, 1105, 1729, 2465, 3_215_031_751, 1_000_000_007 * 3] {
            assert!(!is_prime(c), "{c}");
        }
    }

    #[test]
    fn generated_primes_are_ntt_friendly_and_distinct() {
        let mut v: heapless::Vec<u64, 16> = heapless::Vec::new();
        ntt_primes(40, 1 << 12, 6, PrimePlacement::Closest, &[], &mut v).unwrap();
        ntt_primes(60, 1 << 12, 3, PrimePlacement::Below, &v.clone(), &mut v).unwrap();
        for (i, &q) in v.iter().enumerate() {
            assert!(is_prime(q));
            assert_eq!(q % (2 << 12), 1);
            assert!(!v[..i].contains(&q));
        }
        for &q in &v[..6] {
            let dist = (q as f64 / (1u64 << 40) as f64 - 1.0).abs();
            assert!(dist < 1e-3, "scaling prime {q} too far from 2^40");
        }
    }
}
