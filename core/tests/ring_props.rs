//! Property tests: RNS arithmetic against a big-integer reference.

use hetune_core::ckks::encoder::CrtReconstructor;
use hetune_core::ring::primes::{is_prime, ntt_primes, PrimePlacement};
use hetune_core::ring::{BasisConverter, Modulus, NttTable, Rescaler};
use num_bigint::{BigInt, BigUint};
use proptest::prelude::*;

const N: usize = 16;

fn primes(bits: u32, count: usize, exclude: &[u64]) -> Vec<u64> {
    let mut v = Vec::new();
    ntt_primes(bits, N, count, PrimePlacement::Below, exclude, &mut v).unwrap();
    v
}

fn product(ms: &[Modulus]) -> BigUint {
    ms.iter().fold(BigUint::from(1u32), |acc, q| acc * q.value())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn modulus_ops_match_bigint(a in any::<u64>(), b in any::<u64>(), hi in any::<u64>(), bits in 20u32..=62) {
        let q = primes(bits, 1, &[])[0];
        let m = Modulus::new(q);
        let (ra, rb) = (a % q, b % q);
        prop_assert_eq!(m.reduce(a), ra);
        let x = ((hi as u128) << 64) | a as u128;
        prop_assert_eq!(m.reduce_u128(x) as u128, x % q as u128);
        prop_assert_eq!(m.mul(ra, rb) as u128, ra as u128 * rb as u128 % q as u128);
        prop_assert_eq!(m.add(ra, rb) as u128, (ra as u128 + rb as u128) % q as u128);
        prop_assert_eq!(m.sub(ra, rb) as u128, (ra as u128 + q as u128 - rb as u128) % q as u128);
        let w = m.shoup(rb);
        prop_assert_eq!(m.mul_shoup(ra, rb, w), m.mul(ra, rb));
        prop_assert_eq!(m.neg(ra), (q - ra) % q);
        let c = m.center(ra);
        prop_assert!(c > -((q / 2) as i64 + 1) && c <= (q / 2) as i64 && (c as i128 - ra as i128) % q as i128 == 0);
        if ra != 0 {
            prop_assert_eq!(m.mul(ra, m.inv(ra).unwrap()), 1);
        }
        let signed = a as i64;
        let want = BigInt::from(signed).modpow(&BigInt::from(1), &BigInt::from(q));
        let want = ((want % BigInt::from(q)) + BigInt::from(q)) % BigInt::from(q);
        prop_assert_eq!(BigInt::from(m.reduce_i64(signed)), want);
    }

    #[test]
    fn reduce_f64_is_exact_for_huge_integers(mant in 1u64..(1u64 << 53), exp in 0u32..200, neg in any::<bool>()) {
        let q = primes(60, 1, &[])[0];
        let m = Modulus::new(q);
        let x = (mant as f64) * 2f64.powi(exp as i32) * if neg { -1.0 } else { 1.0 };
        let big = BigInt::from(mant) << exp;
        let big = if neg { -big } else { big };
        let qb = BigInt::from(q);
        let want = ((big % &qb) + &qb) % &qb;
        prop_assert_eq!(BigInt::from(m.reduce_f64(x)), want);
    }

    #[test]
    fn basis_conversion_is_x_plus_small_multiple_of_b(seed in any::<u64>(), k in 1usize..6, l in 1usize..6) {
        let from: Vec<Modulus> = primes(50, k, &[]).into_iter().map(Modulus::new).collect();
        let used: Vec<u64> = from.iter().map(|m| m.value()).collect();
        let to: Vec<Modulus> = primes(61, l, &used).into_iter().map(Modulus::new).collect();
        let conv = BasisConverter::new(&from, &to);
        let b = product(&from);
        // Random residues of a random x in [0, B).
        let mut state = seed | 1;
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
        let xs: Vec<BigUint> = (0..N).map(|_| {
            let mut v = BigUint::from(0u32);
            for _ in 0..k { v = (v << 64) + next(); }
            v % &b
        }).collect();
        let mut input = vec![0u64; k * N];
        for (i, q) in from.iter().enumerate() {
            for t in 0..N {
                input[i * N + t] = (&xs[t] % q.value()).iter_u64_digits().next().unwrap_or(0);
            }
        }
        let mut out = vec![0u64; l * N];
        let mut scratch = vec![0u64; k * N];
        conv.convert(&input, &mut out, &mut scratch);
        for t in 0..N {
            // Some u in [0, k) makes every output limb equal x + u B.
            let ok = (0..k as u64).any(|u| {
                let v = &xs[t] + &b * u;
                to.iter().enumerate().all(|(j, c)| (&v % c.value()) == BigUint::from(out[j * N + t]))
            });
            prop_assert!(ok, "coefficient {}", t);
        }
    }

    #[test]
    fn crt_reconstruction_matches_bigint(x in any::<i64>(), y in any::<i64>()) {
        let ms: Vec<Modulus> = primes(50, 3, &[]).into_iter().map(Modulus::new).collect();
        let v = BigInt::from(x) * BigInt::from(y);
        let crt = CrtReconstructor::new(&ms);
        let res: Vec<u64> = ms.iter().map(|m| {
            let mb = BigInt::from(m.value());
            (((&v % &mb) + &mb) % &mb).to_u64_digits().1.first().copied().unwrap_or(0)
        }).collect();
        let got = crt.reconstruct(|i| res[i]);
        let want = x as f64 * y as f64;
        prop_assert!((got - want).abs() <= want.abs() * 1e-15, "{} vs {}", got, want);
    }

    #[test]
    fn centered_conversion_is_exact(seed in any::<u64>(), k in 1usize..8) {
        let from: Vec<Modulus> = primes(61, k, &[]).into_iter().map(Modulus::new).collect();
        let used: Vec<u64> = from.iter().map(|m| m.value()).collect();
        let to: Vec<Modulus> = primes(42, 3, &used).into_iter().map(Modulus::new).collect();
        let conv = BasisConverter::new(&from, &to);
        let b = product(&from);
        let mut state = seed | 1;
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
        let xs: Vec<BigInt> = (0..N).map(|_| {
            let mut v = BigUint::from(0u32);
            for _ in 0..k { v = (v << 64) + next(); }
            BigInt::from(v % &b) - BigInt::from(&b / 2u32)
        }).collect();
        let res = |x: &BigInt, m: u64| -> u64 {
            let mb = BigInt::from(m);
            (((x % &mb) + &mb) % &mb).to_u64_digits().1.first().copied().unwrap_or(0)
        };
        let mut ys = vec![0u64; k * N];
        for (i, q) in from.iter().enumerate() {
            let x: Vec<u64> = xs.iter().map(|x| res(x, q.value())).collect();
            conv.scale_input_limb(i, &x, &mut ys[i * N..(i + 1) * N]);
        }
        let mut u = vec![0u64; N];
        conv.rounding_quotients(&ys, &mut u);
        for (j, c) in to.iter().enumerate() {
            let mut out = vec![0u64; N];
            conv.accumulate_output_limb_centered(j, &ys, &u, &mut out);
            for t in 0..N {
                prop_assert_eq!(out[t], res(&xs[t], c.value()), "coefficient {} limb {}", t, j);
            }
        }
    }

    #[test]
    fn rescale_rounds_exactly(seed in any::<u64>(), limbs in 2usize..6, ntt in any::<bool>()) {
        let ms: Vec<Modulus> = primes(45, limbs, &[]).into_iter().map(Modulus::new).collect();
        let q = product(&ms);
        let ql = ms[limbs - 1].value();
        let mut state = seed | 1;
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
        // Centered x in (-Q/2, Q/2).
        let xs: Vec<BigInt> = (0..N).map(|_| {
            let mut v = BigUint::from(0u32);
            for _ in 0..limbs { v = (v << 64) + next(); }
            BigInt::from(v % &q) - BigInt::from(&q / 2u32)
        }).collect();
        let mut limb: Vec<Vec<u64>> = ms.iter().map(|m| {
            xs.iter().map(|x| {
                let r = ((x % BigInt::from(m.value())) + BigInt::from(m.value())) % BigInt::from(m.value());
                r.to_u64_digits().1.first().copied().unwrap_or(0)
            }).collect()
        }).collect();
        let tables: Vec<NttTable> = ms.iter().map(|m| NttTable::new(N, *m).unwrap()).collect();
        let r = Rescaler::new(&ms);
        let mut last = limb[limbs - 1].clone();
        r.prepare_last(&mut last);
        let mut tmp = vec![0u64; N];
        for i in 0..limbs - 1 {
            if ntt { tables[i].forward(&mut limb[i]); }
            let table = if ntt { Some(&tables[i]) } else { None };
            r.rescale_limb(i, &ms[i], &mut limb[i], &last, &mut tmp, table);
            if ntt { tables[i].inverse(&mut limb[i]); }
        }
        for t in 0..N {
            // round(x / q_l), ties up: floor((x + (q_l - 1)/2) / q_l) as computed.
            let num = &xs[t] + BigInt::from((ql - 1) / 2);
            let qlb = BigInt::from(ql);
            let mut want = &num / &qlb;
            if (&num % &qlb) < BigInt::from(0) { want -= 1; }
            for (i, m) in ms[..limbs - 1].iter().enumerate() {
                let mb = BigInt::from(m.value());
                let r = ((&want % &mb) + &mb) % &mb;
                prop_assert_eq!(r, BigInt::from(limb[i][t]), "coefficient {} limb {}", t, i);
            }
        }
    }
}

#[test]
fn ntt_multiplication_is_negacyclic_convolution() {
    let q = Modulus::new(primes(55, 1, &[])[0]);
    let t = NttTable::new(N, q).unwrap();
    let a: Vec<u64> = (0..N as u64).map(|i| (i * 123456789 + 7) % q.value()).collect();
    let b: Vec<u64> = (0..N as u64).map(|i| (i * i * 987654321 + 3) % q.value()).collect();
    let mut want = vec![0u64; N];
    for i in 0..N {
        for j in 0..N {
            let p = q.mul(a[i], b[j]);
            if i + j < N {
                want[i + j] = q.add(want[i + j], p);
            } else {
                want[i + j - N] = q.sub(want[i + j - N], p);
            }
        }
    }
    let (mut fa, mut fb) = (a.clone(), b.clone());
    t.forward(&mut fa);
    t.forward(&mut fb);
    t.mul_assign(&mut fa, &fb);
    t.inverse(&mut fa);
    assert_eq!(fa, want);
    assert!(is_prime(q.value()));
}
