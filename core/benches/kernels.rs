//! Criterion benchmarks of the ring kernels a key switch spends its time in, at N = 2^16 with
//! `n16-boot`'s primes: one NTT (fast and portable backends side by side), the two phases of a
//! ModUp-shaped basis conversion (7 limbs to one) and the key inner product of one limb
//! (4 digits, with and without a permutation). The vector kernels run unless
//! `HETUNE_FORCE_SCALAR=1`: run the bench twice to compare them with the scalar path.
//! `cargo bench -p hetune-core --features simd --bench kernels`.

use criterion::{criterion_group, criterion_main, Criterion};
use hetune_core::ring::dot::{key_inner_product, KeyDigits};
use hetune_core::ring::montgomery::Montgomery;
use hetune_core::ring::{BasisConverter, Modulus, NttTable};
use hetune_core::{Parameters, Security};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn residues(rng: &mut ChaCha8Rng, q: &Modulus, n: usize) -> Vec<u64> {
    (0..n).map(|_| rng.next_u64() % q.value()).collect()
}

fn slices(v: &[Vec<u64>]) -> Vec<&[u64]> {
    v.iter().map(|l| &l[..]).collect()
}

fn kernels(c: &mut Criterion) {
    let params = Parameters::preset("n16-boot", Security::Require128Bits).unwrap();
    let n = params.n();
    let q: Vec<Modulus> = params.q_moduli().collect();
    let p: Vec<Modulus> = params.p_moduli().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let path = if hetune_core::ring::simd::active() { "vector" } else { "scalar" };
    let mut g = c.benchmark_group(format!("kernels/n16-boot/{path}"));
    g.sample_size(20);

    // One prime of each size class: 42 bits (IFMA), 58 bits, 61 bits (special).
    for m in [q[1], q[13], p[0]] {
        let bits = m.bits();
        let fast = NttTable::new(n, m).unwrap();
        let portable = NttTable::new_portable(n, m).unwrap();
        let mut x = residues(&mut rng, &m, n);
        g.bench_function(format!("ntt_forward_{bits}bit_fast"), |b| b.iter(|| fast.forward(&mut x)));
        g.bench_function(format!("ntt_forward_{bits}bit_portable"), |b| b.iter(|| portable.forward(&mut x)));
        g.bench_function(format!("ntt_inverse_{bits}bit_fast"), |b| b.iter(|| fast.inverse(&mut x)));
        g.bench_function(format!("ntt_inverse_{bits}bit_portable"), |b| b.iter(|| portable.inverse(&mut x)));
    }

    // ModUp of the first digit (q_0..q_6) to the first special prime.
    let from = &q[..7];
    let conv = BasisConverter::new(from, &p[..1]);
    let x: Vec<u64> = from.iter().flat_map(|m| residues(&mut rng, m, n)).collect();
    let mut ys = vec![0u64; 7 * n];
    let mut out = vec![0u64; n];
    let mut u = vec![0u64; n];
    g.bench_function("basis_scale_input_7_limbs", |b| {
        b.iter(|| {
            for (i, (xi, yi)) in x.chunks(n).zip(ys.chunks_mut(n)).enumerate() {
                conv.scale_input_limb(i, xi, yi);
            }
        })
    });
    g.bench_function("basis_accumulate_7_to_1", |b| b.iter(|| conv.accumulate_output_limb(0, &ys, &mut out)));
    g.bench_function("basis_rounding_quotients_7", |b| b.iter(|| conv.rounding_quotients(&ys, &mut u)));
    g.bench_function("basis_accumulate_centered_7_to_1", |b| {
        b.iter(|| conv.accumulate_output_limb_centered(0, &ys, &u, &mut out))
    });

    // Key inner product on one 61-bit limb with 4 digits.
    let m = p[0];
    let mont = Montgomery::new(&m);
    let digits: Vec<Vec<u64>> = (0..4).map(|_| residues(&mut rng, &m, n)).collect();
    let kb: Vec<Vec<u64>> = (0..4).map(|_| residues(&mut rng, &m, n)).collect();
    let ka: Vec<Vec<u64>> = (0..4).map(|_| residues(&mut rng, &m, n)).collect();
    let (xs, kbs, kas) = (slices(&digits), slices(&kb), slices(&ka));
    let perm: Vec<u32> = (0..n as u32).map(|t| (t * 5 + 17) % n as u32).collect();
    let (mut o0, mut o1) = (vec![0u64; n], vec![0u64; n]);
    let plain = KeyDigits { x: &xs, perm: None, kb: &kbs, ka: &kas };
    let permuted = KeyDigits { perm: Some(&perm), ..plain };
    g.bench_function("key_inner_product_4_digits", |b| {
        b.iter(|| key_inner_product(&m, &mont, &plain, 0, &mut o0, &mut o1))
    });
    g.bench_function("key_inner_product_4_digits_permuted", |b| {
        b.iter(|| key_inner_product(&m, &mont, &permuted, 0, &mut o0, &mut o1))
    });
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
