//! Every evaluator operation against an f64 complex reference, with the precision asserted in
//! bits; rotations, conjugation and hoisting; and the error cases.

use std::sync::Arc;

use hetune_core::ckks::{encrypt_pk, encrypt_sk, Ciphertext, Complex, Encoder};
use hetune_core::ring::RnsPoly;
use hetune_core::rlwe::{Context, PublicKey};
use hetune_engine::evaluator::{Evaluator, KeyRequest};
use hetune_engine::owner::PkEncryptor;
use hetune_engine::Error;
use hetune_testkit::{owner, Owner, PrecisionStats};
use rand_chacha::ChaCha20Rng;

struct Fx {
    owner: &'static Owner,
    ctx: Arc<Context>,
    pk: &'static PublicKey,
    ev: Evaluator,
    rng: ChaCha20Rng,
}

/// The preset's owner, an evaluator with the (cached) keys of `spec`, and a data generator.
fn fixture(preset: &str, spec: &KeyRequest, seed: u64) -> Fx {
    let owner = owner(preset);
    Fx { owner, ctx: owner.ctx.clone(), pk: &owner.pk, ev: owner.evaluator(spec), rng: owner.rng(seed) }
}

fn values(slots: usize, salt: f64) -> Vec<Complex> {
    (0..slots).map(|j| Complex::new((j as f64 * 0.37 + salt).sin(), (j as f64 * 1.91 - salt).cos() * 0.9)).collect()
}

impl Fx {
    fn log_slots(&self) -> u32 {
        self.ctx.params().log_n() - 1
    }
    fn top(&self) -> usize {
        self.ctx.params().max_level()
    }
    fn encrypt_at(&mut self, v: &[Complex], level: usize, scale: f64) -> Ciphertext {
        self.owner.encrypt_complex_at(v, level, scale, &mut self.rng)
    }
    fn encrypt(&mut self, v: &[Complex], level: usize) -> Ciphertext {
        let s = self.ctx.params().scale();
        self.encrypt_at(v, level, s)
    }
    fn decrypt(&self, ct: &Ciphertext) -> Vec<Complex> {
        self.owner.decrypt_complex(ct)
    }
    /// Precision in bits of `ct` against `want`: -log2 of the largest error of a real or
    /// imaginary part.
    fn bits(&self, ct: &Ciphertext, want: &[Complex]) -> f64 {
        PrecisionStats::complex(&self.decrypt(ct), want).unwrap().min_bits()
    }
}

fn cmul(a: Complex, b: Complex) -> Complex {
    Complex::new(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re)
}
fn cadd(a: Complex, b: Complex) -> Complex {
    Complex::new(a.re + b.re, a.im + b.im)
}
fn csub(a: Complex, b: Complex) -> Complex {
    Complex::new(a.re - b.re, a.im - b.im)
}
fn rot(v: &[Complex], step: i64) -> Vec<Complex> {
    let n = v.len() as i64;
    (0..n).map(|j| v[(j + step).rem_euclid(n) as usize]).collect()
}

#[track_caller]
fn assert_bits(got: f64, min: f64, what: &str) {
    eprintln!("{what}: {got:.1} bits (min {min})");
    assert!(got >= min, "{what}: {got:.1} bits < {min}");
}

fn n12(spec: &KeyRequest, seed: u64) -> Fx {
    fixture("test-n12", spec, seed)
}

#[test]
fn add_sub_neg_match_the_reference_and_meet_at_the_lower_level() {
    let mut fx = n12(&KeyRequest::default(), 1);
    let slots = 1 << fx.log_slots();
    let (a, b) = (values(slots, 0.1), values(slots, 2.3));
    let top = fx.top();
    let ca = fx.encrypt(&a, top);
    let cb = fx.encrypt(&b, 3);
    let sum = fx.ev.add(&ca, &cb).unwrap();
    assert_eq!(sum.level, 3);
    assert_bits(fx.bits(&sum, &a.iter().zip(&b).map(|(x, y)| cadd(*x, *y)).collect::<Vec<_>>()), 26.0, "add");
    let diff = fx.ev.sub(&ca, &cb).unwrap();
    assert_bits(fx.bits(&diff, &a.iter().zip(&b).map(|(x, y)| csub(*x, *y)).collect::<Vec<_>>()), 26.0, "sub");
    let neg = fx.ev.neg(&ca).unwrap();
    assert_eq!(neg.level, top);
    assert_bits(fx.bits(&neg, &a.iter().map(|x| Complex::new(-x.re, -x.im)).collect::<Vec<_>>()), 26.0, "neg");
    let mut acc = cb.clone();
    fx.ev.add_assign(&mut acc, &ca).unwrap();
    fx.ev.sub_assign(&mut acc, &cb).unwrap();
    assert_bits(fx.bits(&acc, &a), 25.0, "add_assign then sub_assign");
    // A public-key ciphertext adds as well.
    let pt = Encoder::new(&fx.ctx).encode_complex(&b, fx.log_slots(), top, fx.ctx.params().scale()).unwrap();
    let cpk = encrypt_pk(&fx.ctx, fx.pk, &pt, &mut fx.rng).unwrap();
    let s2 = fx.ev.add(&ca, &cpk).unwrap();
    assert_bits(fx.bits(&s2, &a.iter().zip(&b).map(|(x, y)| cadd(*x, *y)).collect::<Vec<_>>()), 21.0, "add pk");
}

#[test]
fn host_public_key_encryption_is_the_cores_bit_for_bit() {
    // The host's encryptor (limbs in parallel, the key's uniform half expanded once) against
    // the core's (one limb at a time) on the same random stream, at the top and a lower level,
    // on two threads; then it decrypts to its message.
    let fx = n12(&KeyRequest::default(), 9);
    let enc = Encoder::new(&fx.ctx);
    let host = PkEncryptor::new(&fx.ctx, fx.pk).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let a = values(1 << fx.log_slots(), 0.9);
    for level in [fx.top(), 2] {
        let pt = enc.encode_complex(&a, fx.log_slots(), level, fx.ctx.params().scale()).unwrap();
        let (mut r1, mut r2) = (fx.owner.rng(77), fx.owner.rng(77));
        let core = encrypt_pk(&fx.ctx, fx.pk, &pt, &mut r1).unwrap();
        let ours = pool.install(|| host.encrypt(&pt, &mut r2)).unwrap();
        assert_eq!((ours.level, ours.scale, ours.log_slots), (core.level, core.scale, core.log_slots));
        assert!(ours.c.iter().zip(&core.c).all(|(x, y)| x.as_slice() == y.as_slice()), "level {level}");
        assert_bits(fx.bits(&ours, &a), 21.0, "host encrypt_pk");
    }
    // A key of another parameter set is refused.
    let other = owner("test-n12-deep");
    assert!(PkEncryptor::new(&fx.ctx, &other.pk).is_err());
}

#[test]
fn plaintext_and_constant_operations_at_chosen_scales() {
    let mut fx = n12(&KeyRequest::default(), 2);
    let ls = fx.log_slots();
    let slots = 1 << ls;
    let top = fx.top();
    let (a, b) = (values(slots, 0.4), values(slots, 1.7));
    let ca = fx.encrypt(&a, top);
    let enc = Encoder::new(&fx.ctx);
    let scale = fx.ctx.params().scale();

    let pb = enc.encode_complex(&b, ls, top, scale).unwrap();
    let r = fx.ev.add_plain(&ca, &pb).unwrap();
    assert_bits(fx.bits(&r, &a.iter().zip(&b).map(|(x, y)| cadd(*x, *y)).collect::<Vec<_>>()), 26.0, "add_plain");
    let r = fx.ev.sub_plain(&ca, &pb).unwrap();
    assert_bits(fx.bits(&r, &a.iter().zip(&b).map(|(x, y)| csub(*x, *y)).collect::<Vec<_>>()), 26.0, "sub_plain");

    // Plaintext product at the rescale scale: the scale is back to the ciphertext's after rescale.
    let pm = enc.encode_complex(&b, ls, top, fx.ev.rescale_scale(top)).unwrap();
    let r = fx.ev.rescale(&fx.ev.mul_plain(&ca, &pm).unwrap()).unwrap();
    assert_eq!(r.level, top - 1);
    assert!((r.scale / ca.scale - 1.0).abs() < 1e-12, "scale {} vs {}", r.scale, ca.scale);
    let prod: Vec<Complex> = a.iter().zip(&b).map(|(x, y)| cmul(*x, *y)).collect();
    assert_bits(fx.bits(&r, &prod), 25.0, "mul_plain + rescale");
    // ... and at an arbitrary chosen scale (2^30): the scales multiply.
    let pm = enc.encode_complex(&b, ls, 4, 2f64.powi(30)).unwrap();
    let r = fx.ev.mul_plain(&ca, &pm).unwrap();
    assert_eq!(r.level, 4);
    assert_eq!(r.scale, ca.scale * 2f64.powi(30));
    assert_bits(fx.bits(&r, &prod), 23.0, "mul_plain at 2^30");

    let c = Complex::new(0.75, -1.25);
    let r = fx.ev.add_const(&ca, c).unwrap();
    assert_bits(fx.bits(&r, &a.iter().map(|x| cadd(*x, c)).collect::<Vec<_>>()), 26.0, "add_const complex");
    let r = fx.ev.add_const_real(&ca, -3.5).unwrap();
    assert_bits(
        fx.bits(&r, &a.iter().map(|x| Complex::new(x.re - 3.5, x.im)).collect::<Vec<_>>()),
        26.0,
        "add_const real",
    );
    let r = fx.ev.rescale(&fx.ev.mul_const(&ca, c, fx.ev.rescale_scale(top)).unwrap()).unwrap();
    assert!((r.scale / ca.scale - 1.0).abs() < 1e-12);
    assert_bits(fx.bits(&r, &a.iter().map(|x| cmul(*x, c)).collect::<Vec<_>>()), 25.0, "mul_const complex");
    let r = fx.ev.rescale(&fx.ev.mul_const_real(&ca, 0.3, 2f64.powi(35)).unwrap()).unwrap();
    assert_bits(
        fx.bits(&r, &a.iter().map(|x| Complex::new(0.3 * x.re, 0.3 * x.im)).collect::<Vec<_>>()),
        22.0,
        "mul_const real at 2^35",
    );
    let r = fx.ev.mul_integer(&ca, -7).unwrap();
    assert_eq!(r.scale, ca.scale);
    assert_bits(
        fx.bits(&r, &a.iter().map(|x| Complex::new(-7.0 * x.re, -7.0 * x.im)).collect::<Vec<_>>()),
        23.0,
        "mul_integer",
    );
}

#[test]
fn a_sum_of_plaintext_products_is_the_sum_of_the_products_bit_for_bit() {
    let mut fx = n12(&KeyRequest::default(), 3);
    let ls = fx.log_slots();
    let slots = 1 << ls;
    let top = fx.top();
    let cts: Vec<_> = (0..3).map(|k| fx.encrypt(&values(slots, 0.3 + k as f64), top)).collect();
    let enc = Encoder::new(&fx.ctx);
    let low = fx.ev.drop_level(&cts[2], top - 1).unwrap();
    let pts: Vec<_> = (0..3)
        .map(|k| enc.encode_complex(&values(slots, 2.1 + k as f64), ls, top, fx.ev.rescale_scale(top)).unwrap())
        .collect();
    // Modular arithmetic is exact: one pass equals the products added one by one, at the
    // lowest operand level.
    let terms = [(&cts[0], &pts[0]), (&cts[1], &pts[1]), (&low, &pts[2])];
    let got = fx.ev.mul_plain_sum(&terms).unwrap();
    let mut want = fx.ev.mul_plain(&cts[0], &pts[0]).unwrap();
    for (c, p) in &terms[1..] {
        want = fx.ev.add(&want, &fx.ev.mul_plain(c, p).unwrap()).unwrap();
    }
    assert_eq!(got.level, top - 1);
    assert_eq!(got.c, want.c);
    assert_eq!(got.scale, want.scale);
    // Terms of different product scales, or none, are refused.
    let other = enc.encode_complex(&values(slots, 5.0), ls, top, 2f64.powi(30)).unwrap();
    assert!(matches!(fx.ev.mul_plain_sum(&[(&cts[0], &pts[0]), (&cts[1], &other)]), Err(Error::ScaleMismatch { .. })));
    assert!(matches!(fx.ev.mul_plain_sum(&[]), Err(Error::InvalidArgument(_))));
}

#[test]
fn monomials_and_i_are_exact() {
    let mut fx = n12(&KeyRequest::default(), 3);
    let slots = 1 << fx.log_slots();
    let n = fx.ctx.n();
    let a = values(slots, 0.9);
    let ca = fx.encrypt(&a, 5);
    let r = fx.ev.mul_by_i(&ca).unwrap();
    assert_eq!((r.level, r.scale), (ca.level, ca.scale));
    let i = Complex::new(0.0, 1.0);
    assert_bits(fx.bits(&r, &a.iter().map(|x| cmul(*x, i)).collect::<Vec<_>>()), 26.0, "mul_by_i");
    // X^(N/2) is i; X^N is -1; a general X^k multiplies slot j by exp(i pi k 5^j / N).
    assert_eq!(fx.ev.mul_monomial(&ca, n / 2).unwrap(), r);
    let minus = fx.ev.mul_monomial(&ca, n).unwrap();
    assert_eq!(minus, fx.ev.neg(&ca).unwrap());
    for k in [1usize, 3, 1000, 2 * n - 1] {
        let r = fx.ev.mul_monomial(&ca, k).unwrap();
        let mut pow5 = 1usize;
        let want: Vec<Complex> = a
            .iter()
            .map(|x| {
                let ang = std::f64::consts::PI * ((k * pow5) % (2 * n)) as f64 / n as f64;
                pow5 = pow5 * 5 % (2 * n);
                cmul(*x, Complex::new(ang.cos(), ang.sin()))
            })
            .collect();
        assert_bits(fx.bits(&r, &want), 26.0, &format!("mul_monomial X^{k}"));
    }
}

#[test]
fn mul_relin_and_rescale_at_test_n12() {
    let mut fx = n12(&KeyRequest { relinearization: true, ..Default::default() }, 4);
    let slots = 1 << fx.log_slots();
    let (a, b) = (values(slots, 0.2), values(slots, 0.5));
    let top = fx.top();
    let ca = fx.encrypt(&a, top);
    let cb = fx.encrypt(&b, top - 2);
    let prod: Vec<Complex> = a.iter().zip(&b).map(|(x, y)| cmul(*x, *y)).collect();
    let m = fx.ev.mul_relin(&ca, &cb).unwrap();
    assert_eq!(m.level, top - 2);
    assert_eq!(m.c.len(), 2);
    assert_eq!(m.scale, ca.scale * cb.scale);
    let r = fx.ev.rescale(&m).unwrap();
    assert_eq!(r.level, top - 3);
    assert_bits(fx.bits(&r, &prod), 25.0, "mul_relin + rescale");
    // Without relinearisation the degree-2 ciphertext decrypts too (rescaling it would multiply
    // the rounding error by s^2); relinearising it gives the same ciphertext as the fused product.
    let d = fx.ev.mul(&ca, &cb).unwrap();
    assert_eq!(d.c.len(), 3);
    assert_bits(fx.bits(&d, &prod), 25.0, "mul (degree 2)");
    assert_eq!(fx.ev.relinearize(&d).unwrap(), m);
    let sq = fx.ev.rescale(&fx.ev.square_relin(&ca).unwrap()).unwrap();
    assert_bits(fx.bits(&sq, &a.iter().map(|x| cmul(*x, *x)).collect::<Vec<_>>()), 25.0, "square");
    // Independent products in parallel give the same ciphertexts.
    let pairs = vec![(ca.clone(), cb.clone()), (cb.clone(), ca.clone())];
    let par = fx.ev.map_par(&pairs, |ev, (x, y)| ev.mul_relin(x, y)).unwrap();
    assert_eq!(par[0], m);
    assert_bits(fx.bits(&fx.ev.rescale(&par[1]).unwrap(), &prod), 25.0, "map_par product");
}

#[test]
fn chain_of_ten_multiplications_keeps_20_bits() {
    let mut fx = fixture("test-n12-deep", &KeyRequest { relinearization: true, ..Default::default() }, 5);
    let slots = 1 << fx.log_slots();
    let top = fx.top();
    assert!(top >= 10);
    // Factors in [0.8, 1.2] so the product neither vanishes nor explodes.
    let factor = |k: usize| -> Vec<Complex> {
        (0..slots).map(|j| Complex::new(1.0 + 0.2 * ((j * (k + 3)) as f64 * 0.011).sin(), 0.0)).collect()
    };
    let mut want = factor(0);
    let mut ct = fx.encrypt(&want, top);
    for k in 1..=10 {
        let f = factor(k);
        let cf = fx.encrypt(&f, ct.level);
        ct = fx.ev.mul_relin_rescale(&ct, &cf).unwrap();
        want = want.iter().zip(&f).map(|(x, y)| cmul(*x, *y)).collect();
    }
    assert_eq!(ct.level, top - 10);
    assert_bits(fx.bits(&ct, &want), 20.0, "10 multiplications");
}

#[test]
fn scales_are_reconciled_or_refused() {
    let mut fx = n12(&KeyRequest { relinearization: true, ..Default::default() }, 6);
    let slots = 1 << fx.log_slots();
    let top = fx.top();
    let s = fx.ctx.params().scale();
    let (a, b) = (values(slots, 0.3), values(slots, 0.8));
    let ca = fx.encrypt(&a, top);
    let cb = fx.encrypt(&b, top);
    // Integer ratio: scale 2s against s is exact.
    let c2 = fx.encrypt_at(&b, top, 2.0 * s);
    let r = fx.ev.add(&ca, &c2).unwrap();
    assert_eq!(r.scale, 2.0 * s);
    assert_bits(fx.bits(&r, &a.iter().zip(&b).map(|(x, y)| cadd(*x, *y)).collect::<Vec<_>>()), 25.0, "add 2s + s");
    // After a product and a rescale the scale is s^2 / q: adding a fresh ciphertext is refused.
    let p = fx.ev.mul_relin_rescale(&ca, &cb).unwrap();
    let fresh = fx.encrypt(&a, p.level);
    match fx.ev.add(&p, &fresh) {
        Err(Error::ScaleMismatch { left, right }) => assert_eq!((left, right), (p.scale, fresh.scale)),
        other => panic!("expected a scale mismatch, got {other:?}"),
    }
    // ... until one is brought to the other's scale (one level).
    let moved = fx.ev.set_scale(&fresh, p.scale).unwrap();
    assert_eq!(moved.level, p.level - 1);
    let r = fx.ev.add(&p, &moved).unwrap();
    let want: Vec<Complex> = a.iter().zip(&b).map(|(x, y)| cadd(cmul(*x, *y), *x)).collect();
    assert_bits(fx.bits(&r, &want), 24.0, "add after set_scale");
    // A plaintext at a mismatched scale is refused too.
    let pt = Encoder::new(&fx.ctx).encode_complex(&a, fx.log_slots(), top, s * 1.5).unwrap();
    assert!(matches!(fx.ev.add_plain(&ca, &pt), Err(Error::ScaleMismatch { .. })));
}

fn rotation_fixture(seed: u64) -> Fx {
    n12(&KeyRequest::power_of_two(11), seed)
}

#[test]
fn rotations_by_every_step_in_a_set_and_conjugation() {
    let mut fx = rotation_fixture(7);
    let ls = fx.log_slots();
    let slots = 1usize << ls;
    let a = values(slots, 1.1);
    let ca = fx.encrypt(&a, 4);
    for step in [1i64, 2, 3, 5, 7, 16, 100, 1000, 1024, 2047, -1, -5, -1000, 2048, 0] {
        let r = fx.ev.rotate(&ca, step).unwrap();
        assert_eq!((r.level, r.scale), (ca.level, ca.scale));
        assert_bits(fx.bits(&r, &rot(&a, step)), 25.0, &format!("rotate {step}"));
    }
    // Direct keys cost one key switch, compositions the fewest keyed steps.
    assert_eq!(fx.ev.rotation_cost(1024, ls).unwrap(), 1);
    assert_eq!(fx.ev.rotation_cost(3, ls).unwrap(), 2);
    assert_eq!(fx.ev.rotation_cost(2047, ls).unwrap(), 11);
    assert_eq!(fx.ev.rotation_cost(0, ls).unwrap(), 0);
    // Composition is exact to the noise: rotating by 3 twice equals rotating by 6.
    let r33 = fx.ev.rotate(&fx.ev.rotate(&ca, 3).unwrap(), 3).unwrap();
    assert_bits(fx.bits(&r33, &rot(&a, 6)), 25.0, "rotate 3 then 3");
    let conj = fx.ev.conjugate(&ca).unwrap();
    assert_bits(fx.bits(&conj, &a.iter().map(|x| Complex::new(x.re, -x.im)).collect::<Vec<_>>()), 25.0, "conjugate");
    // Sparse packing: steps are taken modulo the slot count.
    let small = values(16, 0.6);
    let cs = fx.encrypt(&small, 3);
    for step in [1i64, 3, 15, -2, 17] {
        assert_bits(
            fx.bits(&fx.ev.rotate(&cs, step).unwrap(), &rot(&small, step)),
            25.0,
            &format!("sparse rotate {step}"),
        );
    }
}

#[test]
fn hoisted_rotations_equal_plain_rotations() {
    let mut fx = rotation_fixture(8);
    let slots = 1usize << fx.log_slots();
    let a = values(slots, 2.2);
    let top = fx.top();
    let ca = fx.encrypt(&a, top);
    let steps = [1i64, 2, 4, 8, 3, -1, 0, 512];
    let hoisted = fx.ev.rotate_hoisted(&ca, &steps).unwrap();
    assert_eq!(hoisted.len(), steps.len());
    for (h, &step) in hoisted.iter().zip(&steps) {
        assert_eq!(*h, fx.ev.rotate(&ca, step).unwrap(), "step {step}");
        assert_bits(fx.bits(h, &rot(&a, step)), 25.0, &format!("hoisted {step}"));
    }
}

#[test]
fn rotate_and_sum_helpers() {
    let mut fx = rotation_fixture(9);
    let slots = 1usize << fx.log_slots();
    let a: Vec<Complex> = values(slots, 0.7).into_iter().map(|x| Complex::new(x.re * 0.01, x.im * 0.01)).collect();
    let ca = fx.encrypt(&a, 5);
    for (stride, count) in [(1i64, 8usize), (4, 16), (3, 5), (-2, 7)] {
        let r = fx.ev.inner_sum(&ca, stride, count).unwrap();
        let want: Vec<Complex> = (0..slots as i64)
            .map(|i| {
                (0..count as i64)
                    .fold(Complex::default(), |s, k| cadd(s, a[(i + k * stride).rem_euclid(slots as i64) as usize]))
            })
            .collect();
        assert_bits(fx.bits(&r, &want), 24.0, &format!("inner_sum stride {stride} count {count}"));
    }
    let total = a.iter().fold(Complex::default(), |s, x| cadd(s, *x));
    let r = fx.ev.sum_slots(&ca).unwrap();
    assert_bits(fx.bits(&r, &vec![total; slots]), 22.0, "sum_slots");
    // Replication of slot 0 into 8 slots 4 apart.
    let mut one = vec![Complex::default(); slots];
    one[0] = Complex::new(0.5, -0.25);
    let c1 = fx.encrypt(&one, 5);
    let r = fx.ev.replicate(&c1, 4, 8).unwrap();
    let want: Vec<Complex> =
        (0..slots).map(|i| if i % 4 == 0 && i / 4 < 8 { one[0] } else { Complex::default() }).collect();
    assert_bits(fx.bits(&r, &want), 25.0, "replicate");
}

#[test]
fn errors_name_what_is_missing() {
    let fx = owner("test-n12");
    let (ctx, sk, mut rng) = (fx.ctx.clone(), &fx.sk, fx.rng(10));
    let spec = KeyRequest { relinearization: false, rotations: vec![4], conjugation: false, encapsulation: None };
    let keys = fx.eval_keys(&spec);

    // Keys of another parameter set.
    let deep = owner("test-n12-deep").ctx.clone();
    match Evaluator::new(deep, keys.clone()) {
        Err(Error::ParameterMismatch(why)) => assert!(why.contains("digit") || why.contains("limb"), "{why}"),
        other => panic!("expected a parameter mismatch, got {other:?}"),
    }

    let ev = Evaluator::new(ctx.clone(), keys).unwrap();
    let ls = ctx.params().log_n() - 1;
    let v = values(1 << ls, 0.0);
    let pt = Encoder::new(&ctx).encode_complex(&v, ls, 0, ctx.params().scale()).unwrap();
    let ct0 = encrypt_sk(&ctx, sk, &pt, &mut rng).unwrap().expand(&ctx);

    // Missing rotation key names the step; 4 and its multiples compose, 3 does not.
    assert!(ev.rotate(&ct0, 8).is_ok());
    let err = ev.rotate(&ct0, 3).unwrap_err();
    assert!(matches!(err, Error::MissingRotationKey { step: 3, slots: 2048 }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("step 3"), "{msg}");
    assert!(matches!(ev.rotate_hoisted(&ct0, &[4, -6]), Err(Error::MissingRotationKey { step: -6, .. })));
    assert!(matches!(ev.conjugate(&ct0), Err(Error::MissingConjugationKey)));
    let pt2 = Encoder::new(&ctx).encode_complex(&v, ls, 2, ctx.params().scale()).unwrap();
    let ct2 = encrypt_sk(&ctx, sk, &pt2, &mut rng).unwrap().expand(&ctx);
    assert!(matches!(ev.mul_relin(&ct2, &ct2), Err(Error::MissingRelinearizationKey)));

    // Level exhausted: no rescale at level 0, and a product at level 0 would overflow q_0.
    assert!(matches!(ev.rescale(&ct0), Err(Error::LevelExhausted { op: "rescale", level: 0 })));
    assert!(matches!(ev.mul(&ct0, &ct0), Err(Error::ScaleOverflow { .. })));
    assert!(matches!(ev.set_scale(&ct0, 1e6), Err(Error::LevelExhausted { .. })));
    assert!(ev.drop_level(&ct0, 1).is_err());

    // Ciphertexts and plaintexts of another shape.
    let mut wrong_n = ct0.clone();
    wrong_n.c = vec![RnsPoly::zero(2048, 1), RnsPoly::zero(2048, 1)];
    assert!(matches!(ev.add(&ct0, &wrong_n), Err(Error::ParameterMismatch(_))));
    let mut wrong_limbs = ct0.clone();
    wrong_limbs.level = 2;
    assert!(matches!(ev.neg(&wrong_limbs), Err(Error::ParameterMismatch(_))));
    let mut bad_pt = pt.clone();
    bad_pt.poly = RnsPoly::zero(ctx.n(), 3);
    assert!(matches!(ev.mul_plain(&ct0, &bad_pt), Err(Error::ParameterMismatch(_))));
    let sparse = Encoder::new(&ctx).encode_complex(&v[..16], 4, 0, ctx.params().scale()).unwrap();
    let cs = encrypt_sk(&ctx, sk, &sparse, &mut rng).unwrap().expand(&ctx);
    assert!(matches!(ev.add(&ct0, &cs), Err(Error::SlotCountMismatch { left: 11, right: 4 })));
}

#[test]
fn n16_boot_mul_relin_then_rescale_keeps_25_bits() {
    let mut fx = fixture("n16-boot", &KeyRequest { relinearization: true, ..Default::default() }, 11);
    let slots = 1 << fx.log_slots();
    let (a, b) = (values(slots, 0.15), values(slots, 1.35));
    // The computation levels (the top ones are bootstrapping primes of 56-60 bits).
    let level = fx.ctx.params().default_level();
    assert!(fx.ctx.params().scale() >= 2f64.powi(40));
    let ca = fx.encrypt(&a, level);
    let cb = fx.encrypt(&b, level);
    let r = fx.ev.mul_relin_rescale(&ca, &cb).unwrap();
    assert_eq!(r.level, level - 1);
    let prod: Vec<Complex> = a.iter().zip(&b).map(|(x, y)| cmul(*x, *y)).collect();
    assert_bits(fx.bits(&r, &prod), 25.0, "n16-boot mul_relin + rescale");
}

#[test]
fn a_key_memory_budget_evicts_the_least_recently_used_and_changes_no_result() {
    // test-n12: rotations by five steps, each with its own key, under a budget of two keys.
    let steps = vec![1i64, 2, 3, 5, 8];
    let spec = KeyRequest { relinearization: true, rotations: steps.clone(), conjugation: false, encapsulation: None };
    let mut fx = fixture("test-n12", &spec, 41);
    let keys = Arc::new(fx.owner.eval_keys(&spec));
    let n = fx.ctx.n();
    let limbs = fx.ctx.qp().len();
    let key_bytes = 2 * fx.ctx.params().dnum() * limbs * n * 8 + n * 4;
    let budgeted = Evaluator::with_store_within(fx.ctx.clone(), keys.clone(), 2 * key_bytes + key_bytes / 2).unwrap();
    let unbounded = Evaluator::with_store(fx.ctx.clone(), keys).unwrap();
    assert!(unbounded.key_budget_use().is_none());
    assert_eq!(budgeted.key_budget_use(), Some((0, 0, 0)));
    let v = values(1 << fx.log_slots(), 0.3);
    let ct = fx.encrypt_at(&v, fx.top(), fx.ctx.params().scale());
    // Two rounds over every step: the second round finds each key evicted and reloads it.
    for round in 0..2 {
        for &s in &steps {
            let a = budgeted.rotate(&ct, s).unwrap();
            let b = unbounded.rotate(&ct, s).unwrap();
            assert_eq!(a.c, b.c, "rotation by {s}, round {round}: bit for bit");
            let (held, bytes, _) = budgeted.key_budget_use().unwrap();
            assert!(held <= 2 && bytes == held * key_bytes, "{held} keys held, {bytes} bytes");
        }
    }
    let (_, _, reloads) = budgeted.key_budget_use().unwrap();
    assert_eq!(reloads, steps.len() as u64, "each key loaded again once in the second round");
    // The most recent key stays: rotating by it again loads nothing.
    budgeted.rotate(&ct, 8).unwrap();
    assert_eq!(budgeted.key_budget_use().unwrap().2, steps.len() as u64);
    // Hoisted rotations hold all their keys at once: the budget is exceeded for that call only,
    // and the results still agree.
    let hb = budgeted.rotate_hoisted(&ct, &steps).unwrap();
    let hu = unbounded.rotate_hoisted(&ct, &steps).unwrap();
    for (a, b) in hb.iter().zip(&hu) {
        assert_eq!(a.c, b.c);
    }
    // Back under the budget with the next key used.
    budgeted.rotate(&ct, 1).unwrap();
    assert!(budgeted.key_budget_use().unwrap().0 <= 2, "{:?}", budgeted.key_budget_use());
}
