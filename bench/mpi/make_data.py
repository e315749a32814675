#!/usr/bin/env python3
"""Writes the loopback benchmark's data set (no numpy needed): the SNIPS test subset's first
COLS features, its 640 training rows repeated to ROWS, 64 validation and 64 test rows.
Usage: make_data.py OUT_DIR [ROWS] [COLS]. The rows repeat: the figures are times and bytes,
not accuracy."""
import ast, os, struct, sys

SRC = os.path.join(os.path.dirname(__file__), "../../host/service/tests/data/snips_mpnet")

def read_npy(path):
    with open(path, "rb") as f:
        assert f.read(6) == b"\x93NUMPY"
        major = f.read(2)[0]
        hlen = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))[0]
        header = ast.literal_eval(f.read(hlen).decode("latin1"))
        body = f.read()
    assert not header["fortran_order"]
    code = {"<f4": "f", "<f8": "d", "<i8": "q"}[header["descr"]]
    n = len(body) // struct.calcsize(code)
    return header["shape"], list(struct.unpack("<%d%s" % (n, code), body)), header["descr"]

def write_npy(path, shape, values, descr):
    code = {"<f4": "f", "<i8": "q"}[descr]
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(struct.pack("<%d%s" % (len(values), code), *values))

def main():
    out = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    cols = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    os.makedirs(out, exist_ok=True)
    for split, want in [("train", rows), ("valid", 64), ("test", 64)]:
        (n, d), x, _ = read_npy(os.path.join(SRC, split + "_x.npy"))
        _, y, _ = read_npy(os.path.join(SRC, split + "_y.npy"))
        idx = [i % n for i in range(want)]
        write_npy(os.path.join(out, split + "_x.npy"), (want, cols),
                  [x[i * d + j] for i in idx for j in range(cols)], "<f4")
        write_npy(os.path.join(out, split + "_y.npy"), (want,), [y[i] for i in idx], "<i8")

main()
