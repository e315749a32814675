#!/usr/bin/env python3
"""Measures OpenFHE's full-slot CKKS bootstrapping (PyPI `openfhe`, CPython 3.10) the way
`hetune bench bootstrap --json` measures ours: N/2 complex slots, inputs uniform in [-1, 1] in both
the real and the imaginary part, precision as -log2 of the mean and of the largest absolute error
over the real and imaginary parts of every slot (pooled over the timed runs), median wall-clock
seconds, levels before and after, peak resident memory.

Setup (see shared notes, peers.md):
    "$(pyenv root)/versions/3.10.13/bin/python" -m venv bench/peers/.venv
    bench/peers/.venv/bin/pip install openfhe
Run (about 3 minutes and 13.3 GB peak at N = 2^16; results/openfhe_bootstrap_n16.json):
    OMP_NUM_THREADS=2 bench/peers/.venv/bin/python bench/peers/openfhe_bootstrap.py --json
Quick check (insecure, seconds):
    OMP_NUM_THREADS=2 bench/peers/.venv/bin/python bench/peers/openfhe_bootstrap.py --ring-dim 4096

Default parameters: OpenFHE's recommended secret for CKKS bootstrapping, SPARSE_ENCAPSULATED
(uniform ternary secret, switched to a sparse one for the bootstrap: the technique hetune uses),
level budget [3, 3] for CoeffsToSlots and SlotsToCoeffs, 9 levels left after bootstrapping (as
n16-boot), hybrid key switching with 4 digits (as n16-boot), FLEXIBLEAUTO scaling with 50-bit
scaling primes and a 57-bit first prime. 50 bits is the largest scaling prime that fits
HEStd_128_classic at N = 2^16 with this depth; the first prime is 57 bits because OpenFHE's 64-bit
bootstrapping requires first - scaling <= its correction factor, which it sets to 7 for 2^15 slots
at N = 2^16 (FLEXIBLEAUTO). FIXEDMANUAL (correction factor 9) ran at N = 2^12 with the same chain
gave 13.4 bits mean against 19.5 for FLEXIBLEAUTO (its correction factor forced to 7 as at 2^16).
Data type COMPLEX, so both parts of every slot are refreshed. Precision falls with N: 19.5 bits
mean at 2^12 and 18.2 at 2^14 (correction factor 7), 13.1 at 2^16.

--iterations 2 runs OpenFHE's iterative bootstrapping (Meta-BTS): one more level and about twice
the time; at 2^12 it took 15.5 bits to 30.6 (--meta-precision 15). At N = 2^16 the extra level
fits 128-bit security only with --dnum 5 (or 49/56-bit primes); give --meta-precision 13 there.

`--secret uniform` (the homomorphic encryption standard's secret, OpenFHE's simple examples)
defaults to 54/60-bit primes and 15 digits, the only way its deeper bootstrap (depth 20 against
16) fits at 128 bits with 9 levels after; its keys need far more memory than this machine has at
N = 2^16 (about 0.5 GB per rotation key). Ring dimensions below 2^16 cannot hold a bootstrappable
chain at 128-bit security; they run with HEStd_NotSet and the report says "insecure": true.

Threads: OpenMP reads OMP_NUM_THREADS when OpenFHE loads; --threads sets it before the import,
otherwise the environment's value (or OpenMP's default, every core) is used. The count OpenMP
actually uses is reported. The PyPI build has no Intel HEXL.
"""

import argparse
import ctypes
import json
import math
import os
import resource
import statistics
import sys
import time

SECRETS = {"uniform": "UNIFORM_TERNARY", "sparse-encapsulated": "SPARSE_ENCAPSULATED"}
SCALINGS = {"flexibleauto": "FLEXIBLEAUTO", "fixedmanual": "FIXEDMANUAL", "flexibleautoext": "FLEXIBLEAUTOEXT"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ring-dim", type=int, default=1 << 16, help="ring dimension, 2^12 .. 2^16 (default 65536)")
    p.add_argument("--runs", type=int, default=3, help="timed bootstraps; the median is reported (default 3)")
    p.add_argument("--json", action="store_true", help="print the JSON report on stdout (else a summary only)")
    p.add_argument("--threads", type=int, default=None, help="set OMP_NUM_THREADS (default: the environment's)")
    p.add_argument("--secret", choices=sorted(SECRETS), default="sparse-encapsulated",
                   help="secret distribution (default sparse-encapsulated)")
    p.add_argument("--scaling", choices=sorted(SCALINGS), default="flexibleauto", help="scaling technique")
    p.add_argument("--level-budget", type=int, nargs=2, default=[3, 3], metavar=("CTS", "STC"),
                   help="levels for CoeffsToSlots and SlotsToCoeffs (default 3 3)")
    p.add_argument("--levels-after", type=int, default=9, help="levels left after bootstrapping (default 9)")
    p.add_argument("--scaling-bits", type=int, default=None, help="bits of the scaling primes (default 50; 54 uniform)")
    p.add_argument("--first-mod-bits", type=int, default=None, help="bits of the first prime (default 57; 60 uniform)")
    p.add_argument("--dnum", type=int, default=None, help="key-switching digits (default 4; 15 uniform)")
    p.add_argument("--correction-factor", type=int, default=0,
                   help="EvalBootstrapSetup correction factor (default 0: OpenFHE's rule, 7 at N = 2^16 full slots)")
    p.add_argument("--iterations", type=int, default=1,
                   help="EvalBootstrap iterations (Meta-BTS; each extra one costs a level and a bootstrap; default 1)")
    p.add_argument("--meta-precision", type=int, default=0,
                   help="precision in bits of one bootstrap, OpenFHE's input to Meta-BTS (needed with --iterations 2)")
    p.add_argument("--seed", type=int, default=1, help="seed of the input values (default 1)")
    a = p.parse_args()
    if a.ring_dim < 1 << 12 or a.ring_dim > 1 << 16 or a.ring_dim & (a.ring_dim - 1):
        p.error("--ring-dim must be a power of two from 4096 to 65536")
    if a.runs < 1:
        p.error("--runs must be at least 1")
    sparse = a.secret != "uniform"
    if a.scaling_bits is None:
        a.scaling_bits = 50 if sparse else 54
    if a.first_mod_bits is None:
        a.first_mod_bits = 57 if sparse else 60
    if a.dnum is None:
        a.dnum = 4 if sparse else 15
    return a


ARGS = parse_args()
if ARGS.threads is not None:
    # OpenMP reads this when the library loads.
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402
import openfhe as ofhe  # noqa: E402  (after OMP_NUM_THREADS)


def omp_threads():
    """omp_get_max_threads() of the libgomp OpenFHE loaded, or None."""
    try:
        with open("/proc/self/maps") as maps:
            libs = sorted({line.split()[-1] for line in maps if "gomp" in line.split()[-1]})
        for lib in libs:
            return int(ctypes.CDLL(lib).omp_get_max_threads())
    except (OSError, AttributeError, ValueError):
        pass
    return None


def peak_rss_bytes():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def levels_left(ct, depth):
    """Rescales still available: OpenFHE counts levels consumed, and with FLEXIBLEAUTO a
    ciphertext may carry a pending rescale (noise scale degree 2)."""
    return depth - ct.GetLevel() - (ct.GetNoiseScaleDeg() - 1)


def main():
    n = ARGS.ring_dim
    slots = n // 2
    secure = n == 1 << 16
    secret = getattr(ofhe, SECRETS[ARGS.secret])
    scaling = getattr(ofhe, SCALINGS[ARGS.scaling])
    boot_depth = ofhe.CryptoContext.GetBootstrapDepth(ARGS.level_budget, secret)
    depth = ARGS.levels_after + boot_depth + (ARGS.iterations - 1)

    params = ofhe.CCParamsCKKSRNS()
    params.SetSecretKeyDist(secret)
    params.SetSecurityLevel(ofhe.HEStd_128_classic if secure else ofhe.HEStd_NotSet)
    params.SetRingDim(n)
    params.SetBatchSize(slots)
    params.SetCKKSDataType(ofhe.COMPLEX)
    params.SetScalingModSize(ARGS.scaling_bits)
    params.SetFirstModSize(ARGS.first_mod_bits)
    params.SetScalingTechnique(scaling)
    params.SetKeySwitchTechnique(ofhe.HYBRID)
    params.SetNumLargeDigits(ARGS.dnum)
    params.SetMultiplicativeDepth(depth)
    cc = ofhe.GenCryptoContext(params)
    for feature in (ofhe.PKE, ofhe.KEYSWITCH, ofhe.LEVELEDSHE, ofhe.ADVANCEDSHE, ofhe.FHE):
        cc.Enable(feature)
    if cc.GetRingDimension() != n:
        raise SystemExit(f"OpenFHE chose ring dimension {cc.GetRingDimension()}, not {n}")

    t = time.perf_counter()
    keys = cc.KeyGen()
    secret_keygen_s = time.perf_counter() - t
    t = time.perf_counter()
    cc.EvalBootstrapSetup(ARGS.level_budget, [0, 0], slots, ARGS.correction_factor)
    setup_s = time.perf_counter() - t
    t = time.perf_counter()
    cc.EvalMultKeyGen(keys.secretKey)
    mult_key_s = time.perf_counter() - t
    t = time.perf_counter()
    cc.EvalBootstrapKeyGen(keys.secretKey, slots)
    boot_keys_s = time.perf_counter() - t
    try:
        rotation_keys = len(cc.GetExistingEvalAutomorphismKeyIndices(keys.secretKey.GetKeyTag()))
    except Exception:  # not every binding version has it
        rotation_keys = None

    rng = np.random.default_rng(ARGS.seed)
    seconds, cpu_seconds = [], []
    errors = []
    level_before = level_after = None
    for _ in range(ARGS.runs):
        values = rng.uniform(-1.0, 1.0, slots) + 1j * rng.uniform(-1.0, 1.0, slots)
        # Encoded one level above the bottom, as OpenFHE's bootstrapping examples do.
        pt = cc.MakeCKKSPackedPlaintext(values, 1, depth - 1, None, slots)
        ct = cc.Encrypt(keys.publicKey, pt)
        level_before = levels_left(ct, depth)
        c0, t0 = time.process_time(), time.perf_counter()
        out = cc.EvalBootstrap(ct, ARGS.iterations, ARGS.meta_precision)
        seconds.append(time.perf_counter() - t0)
        cpu_seconds.append(time.process_time() - c0)
        level_after = levels_left(out, depth)
        dec = cc.Decrypt(out, keys.secretKey)
        dec.SetLength(slots)
        got = np.asarray(dec.GetCKKSPackedValueArray())[:slots]
        diff = got - values
        errors.append(np.abs(diff.real))
        errors.append(np.abs(diff.imag))
    err = np.concatenate(errors)

    report = {
        "peer": "openfhe",
        "version": getattr(ofhe, "__version__", "unknown"),
        "insecure": not secure,
        "security": "HEStd_128_classic" if secure else "HEStd_NotSet",
        "log_n": n.bit_length() - 1,
        "slots": slots,
        "threads": omp_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "cpu_seconds": cpu_seconds,
        "precision_mean_bits": -math.log2(float(err.mean())),
        "precision_min_bits": -math.log2(float(err.max())),
        "level_before": level_before,
        "level_after": level_after,
        "rotation_keys": rotation_keys,
        "keygen_seconds": setup_s + mult_key_s + boot_keys_s,
        "keygen_breakdown_seconds": {
            "eval_bootstrap_setup": setup_s,
            "eval_mult_keygen": mult_key_s,
            "eval_bootstrap_keygen": boot_keys_s,
            "secret_public_keygen_not_included": secret_keygen_s,
        },
        "peak_rss_bytes": peak_rss_bytes(),
        "secret": SECRETS[ARGS.secret],
        "scaling": SCALINGS[ARGS.scaling],
        "level_budget": ARGS.level_budget,
        "bootstrap_depth": boot_depth,
        "multiplicative_depth": depth,
        "first_mod_bits": ARGS.first_mod_bits,
        "scaling_bits": ARGS.scaling_bits,
        "dnum": ARGS.dnum,
        "iterations": ARGS.iterations,
        "meta_precision": ARGS.meta_precision,
        "correction_factor": ARGS.correction_factor or "openfhe default",
        "log2_q": math.log2(cc.GetElementParams().GetModulus()),
        "input": "uniform in [-1, 1], real and imaginary parts; errors over both parts of every slot, all runs",
    }
    print(
        f"openfhe {report['version']} bootstrap{' [INSECURE: benchmark only]' if not secure else ''}: "
        f"N = 2^{report['log_n']}, {slots} slots, {report['threads']} thread(s), {report['secret']}, "
        f"{report['scaling']}, level budget {ARGS.level_budget}, dnum {ARGS.dnum}, "
        f"{ARGS.first_mod_bits}/{ARGS.scaling_bits}-bit primes, log2 Q {report['log2_q']:.0f}\n"
        f"time           median {report['median_seconds']:.2f} s over {[round(s, 2) for s in seconds]} "
        f"(CPU {[round(s, 1) for s in cpu_seconds]})\n"
        f"precision      mean {report['precision_mean_bits']:.1f} bits, min {report['precision_min_bits']:.1f} bits\n"
        f"levels         {level_before} -> {level_after}\n"
        f"keys           {rotation_keys} rotations, generated in {report['keygen_seconds']:.1f} s "
        f"(setup {setup_s:.1f}, mult {mult_key_s:.1f}, bootstrap keys {boot_keys_s:.1f})\n"
        f"peak memory    {report['peak_rss_bytes'] / 1e9:.2f} GB",
        file=sys.stderr,
    )
    if ARGS.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
