#!/usr/bin/env bash
# Step time, bytes exchanged and communication time per step of `hetune train --distributed` on
# loopback at the insecure test-n12-boot preset, R = 1, 2, 4 ranks, one thread each, the same
# effective batch (1024 rows = 4 parts of one block row; 2 steps). Needs a build with
# `--features mpi`. Usage: bench/mpi/run.sh [HETUNE_BINARY] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/debug/hetune}
OUT=${2:-bench/results}
WORK=$(mktemp -d /tmp/hetune-mpi-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
python3 bench/mpi/make_data.py "$WORK/data" 1024 7
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ARGS=(train --data "$WORK/data" --preset test-n12-boot --insecure-testing-only --batch 1024 --epochs 2
      --max-steps 2 --infer-rows 0 --threads 1 --json)
# R = 1 without MPI: the keys and encrypted data it writes serve the runs below (--resume from
# no checkpoint starts at step 0 with them).
"$BIN" "${ARGS[@]}" --work-dir "$WORK/w" > "$OUT/mpi-loopback-test-n12-boot-R1.json" 2> "$WORK/R1.log"
for R in 2 4; do
  rm -f "$WORK/w/server/checkpoint.bin" "$WORK/w/owner/epochs.json"
  mpirun -np "$R" --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo \
    "$BIN" "${ARGS[@]}" --work-dir "$WORK/w" --resume --distributed \
    > "$OUT/mpi-loopback-test-n12-boot-R$R.json" 2> "$WORK/R$R.log"
done
for R in 1 2 4; do
  echo "R=$R"; grep '^step' "$WORK/R$R.log"
done
