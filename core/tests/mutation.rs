//! A seeded mutation test over every record kind: each mutant (bit flips, byte and field
//! overwrites with boundary values, residues pushed out of range, cuts, insertions, deletions) has
//! its checksums, payload length and fingerprint recomputed most of the time, so that it reaches
//! the checks behind them. Every mutant must decode to a value or a typed error, never panic, and
//! never make the decoder allocate above its limit. The corpus must reach the deep checks.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::alloc::peak_of;
use common::fixup::fix;
use common::records::{header_len, records, small_params};
use hetune_core::rlwe::{Context, SecretKey};
use hetune_core::wire::{read_object, Limits};
use hetune_core::Error;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Mutants per record kind (12 kinds, each decoded by its reader and, for server-side kinds,
/// by `read_object` too).
const MUTANTS: usize = 1500;

const BOUNDARY: [u64; 10] = [0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0xffff_ffff, u64::MAX / 2, u64::MAX];

fn mutate(rec: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut m = rec.to_vec();
    let head = header_len(rec);
    let pick = |rng: &mut ChaCha20Rng, len: usize| (rng.next_u64() % len.max(1) as u64) as usize;
    let rounds = 1 + rng.next_u32() % 3;
    for _ in 0..rounds {
        // Half of the mutations land in the header, where the parsing is.
        let at = if rng.next_u32().is_multiple_of(2) { pick(rng, head) } else { pick(rng, m.len()) };
        if m.is_empty() {
            break;
        }
        let at = at.min(m.len() - 1);
        match rng.next_u32() % 9 {
            0 => m[at] ^= 1 << (rng.next_u32() % 8),
            1 => m[at] = rng.next_u32() as u8,
            2 => {
                // A header field (kind, payload length, extension length, an extension word)
                // set to a boundary value.
                let (off, width) =
                    [(6, 2), (40, 8), (48, 2), (50, 1), (51, 1), (52, 1), (53, 1), (50, 8), (58, 8)][pick(rng, 9)];
                let v = BOUNDARY[pick(rng, BOUNDARY.len())].to_le_bytes();
                if off + width <= m.len() {
                    m[off..off + width].copy_from_slice(&v[..width]);
                }
            }
            3 => {
                // A run of set bits in the payload: residues at or above their modulus.
                let start = head + pick(rng, m.len().saturating_sub(head + 8));
                let end = (start + 1 + pick(rng, 16)).min(m.len());
                m[start.min(end)..end].iter_mut().for_each(|b| *b = 0xff);
            }
            4 => m.truncate(at),
            5 => {
                let extra: Vec<u8> = (0..1 + pick(rng, 64)).map(|_| rng.next_u32() as u8).collect();
                m.splice(at..at, extra);
            }
            6 => {
                let end = (at + 1 + pick(rng, 64)).min(m.len());
                m.drain(at..end);
            }
            7 => {
                let end = (at + 1 + pick(rng, 64)).min(m.len());
                let copy = m[at..end].to_vec();
                m.splice(end..end, copy);
            }
            _ => {
                let len = m.len();
                m.extend((0..1 + pick(rng, len)).map(|_| rng.next_u32() as u8));
            }
        }
    }
    m
}

type Reader<'a> = dyn Fn(&[u8]) -> Result<(), Error> + 'a;

fn class(r: &Result<(), Error>) -> String {
    match r {
        Ok(()) => "Ok".into(),
        Err(e) => {
            let s = format!("{e:?}");
            s.split(['(', ' ']).next().unwrap_or("").to_string()
        }
    }
}

#[test]
fn mutants_of_every_record_kind_fail_typed_within_their_limit() {
    let ctx = Context::new(small_params()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(0x6d75_7461);
    let sk = SecretKey::generate(ctx.params(), &mut rng);
    let limits = Limits::for_params(ctx.params());
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let mut executions = 0usize;
    for rec in records(&ctx, &sk, &mut rng) {
        let server_side = !matches!(rec.name, "parameters" | "secret key");
        let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..MUTANTS {
            let mut m = mutate(&rec.bytes, &mut rng);
            if rng.next_u32() % 8 != 0 {
                fix(&mut m, rng.next_u32() % 4 != 0, Some(ctx.fingerprint()));
            }
            let own = |b: &[u8]| (rec.decode)(b, &limits);
            let any = |b: &[u8]| read_object(&mut &b[..], &ctx, &limits).map(drop);
            let readers: &[&Reader] = if server_side { &[&own, &any] } else { &[&own] };
            for read in readers.iter() {
                let (res, peak) = peak_of(|| catch_unwind(AssertUnwindSafe(|| read(&m))));
                let res = res.unwrap_or_else(|_| panic!("{}: mutant {i} panicked: {m:02x?}", rec.name));
                assert!(peak <= limits.max_bytes, "{}: mutant {i} allocated {peak}", rec.name);
                *per_kind.entry(class(&res)).or_default() += 1;
                executions += 1;
            }
        }
        // Every kind's mutants get past the checksums to its own checks.
        assert!(per_kind.keys().any(|k| k == "Malformed" || k == "ResidueOutOfRange"), "{}: {per_kind:?}", rec.name);
        for (k, v) in per_kind {
            *classes.entry(k).or_default() += v;
        }
    }
    println!("{executions} mutant decodings: {classes:?}");
    for deep in ["Ok", "Malformed", "ResidueOutOfRange", "ChecksumMismatch", "Truncated", "LimitExceeded", "WrongKind"]
    {
        assert!(classes.contains_key(deep), "no mutant reached {deep}: {classes:?}");
    }
}
