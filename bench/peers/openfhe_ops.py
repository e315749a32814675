#!/usr/bin/env python3
"""Times the operations of `hetune bench ops` with OpenFHE (PyPI `openfhe`, CPython 3.10) at the
same ring degree, limb count and number of key-switching digits as a hetune preset, and prints
JSON in the same shape as `hetune bench ops --json`.

Setup (see shared notes, peers.md):
    "$(pyenv root)/versions/3.10.13/bin/python" -m venv ofhe-venv
    ofhe-venv/bin/pip install openfhe
Run:
    ofhe-venv/bin/python bench/peers/openfhe_ops.py --log-n 16 --limbs 25 --dnum 4 --threads 1

The thread count goes to OMP_NUM_THREADS before OpenFHE is imported. OpenFHE chooses its own
primes: a 60-bit first prime and 50-bit scaling primes (its native 64-bit word arithmetic), so the
limb count and dnum match hetune's preset while the prime sizes differ slightly; every residue is
one 64-bit word in both libraries. The PyPI build has no Intel HEXL.
"""

import argparse
import json
import os
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-n", type=int, default=16, help="log2 of the ring degree (default 16)")
    p.add_argument("--limbs", type=int, default=25, help="ciphertext limbs at the top level (default 25)")
    p.add_argument("--dnum", type=int, default=4, help="key-switching digits (default 4, as n16-boot)")
    p.add_argument("--threads", type=int, default=1, help="OpenMP threads (default 1)")
    p.add_argument("--budget-ms", type=float, default=1500.0, help="time budget per operation and level")
    p.add_argument("--scaling-bits", type=int, default=50, help="bits of the scaling primes (default 50)")
    return p.parse_args()


ARGS = parse_args()
# OpenMP reads this when the library loads.
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import openfhe as ofhe  # noqa: E402  (after OMP_NUM_THREADS)

OPS = [
    "encode",
    "encrypt_sk",
    "encrypt_pk",
    "decrypt",
    "add",
    "mul_plain",
    "mul_relin",
    "rescale",
    "rotate",
    "hoisted_rotate_8",
    "conjugate",
]


def timed(budget_ms, f):
    """One untimed run, then 3 to 15 timed runs filling about budget_ms; (median, min, runs)."""
    t0 = time.perf_counter()
    f()
    first = (time.perf_counter() - t0) * 1e3
    runs = max(3, min(15, int(budget_ms / max(first, 1e-3))))
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples), min(samples), runs


def main():
    n = 1 << ARGS.log_n
    slots = n // 2
    depth = ARGS.limbs - 1
    params = ofhe.CCParamsCKKSRNS()
    params.SetRingDim(n)
    params.SetMultiplicativeDepth(depth)
    params.SetScalingModSize(ARGS.scaling_bits)
    params.SetFirstModSize(60)
    params.SetScalingTechnique(ofhe.FIXEDMANUAL)
    params.SetKeySwitchTechnique(ofhe.HYBRID)
    params.SetNumLargeDigits(ARGS.dnum)
    params.SetBatchSize(slots)
    params.SetSecurityLevel(ofhe.HEStd_128_classic if ARGS.log_n >= 15 else ofhe.HEStd_NotSet)
    cc = ofhe.GenCryptoContext(params)
    for feature in (ofhe.PKE, ofhe.KEYSWITCH, ofhe.LEVELEDSHE):
        cc.Enable(feature)
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    steps = list(range(1, 9))
    cc.EvalRotateKeyGen(keys.secretKey, steps)
    conj_index = 2 * n - 1
    conj_keys = cc.EvalAutomorphismKeyGen(keys.secretKey, [conj_index])

    values = [0.5 * ((j * 0.001) % 1.0) for j in range(slots)]
    top = ARGS.limbs - 1
    results = []
    for level in ([top, 3] if top > 3 else [top]):
        # OpenFHE counts levels consumed from the top; hetune counts limbs above the first.
        consumed = top - level
        pt = cc.MakeCKKSPackedPlaintext(values, 1, consumed)
        ct = cc.Encrypt(keys.secretKey, pt)
        ct2 = cc.Encrypt(keys.publicKey, pt)
        prod = cc.EvalMult(ct, ct2)
        budget = ARGS.budget_ms
        table = {
            "encode": lambda: cc.MakeCKKSPackedPlaintext(values, 1, consumed),
            "encrypt_sk": lambda: cc.Encrypt(keys.secretKey, pt),
            "encrypt_pk": lambda: cc.Encrypt(keys.publicKey, pt),
            "decrypt": lambda: cc.Decrypt(ct, keys.secretKey),
            "add": lambda: cc.EvalAdd(ct, ct2),
            "mul_plain": lambda: cc.EvalMult(ct, pt),
            "mul_relin": lambda: cc.EvalMult(ct, ct2),
            "rescale": lambda: cc.Rescale(prod),
            "rotate": lambda: cc.EvalRotate(ct, 1),
            "hoisted_rotate_8": lambda: [
                cc.EvalFastRotation(ct, s, 2 * n, digits) for digits in [cc.EvalFastRotationPrecompute(ct)] for s in steps
            ],
            "conjugate": lambda: cc.EvalAutomorphism(ct, conj_index, conj_keys),
        }
        for op in OPS:
            median, fastest, runs = timed(budget, table[op])
            results.append({"op": op, "level": level, "median_ms": median, "min_ms": fastest, "runs": runs})
            print(f"{op:<18} level {level:>2}: {median:9.2f} ms", file=sys.stderr)

    report = {
        "peer": "openfhe",
        "version": getattr(ofhe, "__version__", "unknown"),
        "log_n": ARGS.log_n,
        "q_limbs": ARGS.limbs,
        "dnum": ARGS.dnum,
        "scaling_bits": ARGS.scaling_bits,
        "threads": ARGS.threads,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
