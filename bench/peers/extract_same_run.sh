#!/usr/bin/env bash
# Same-run peer comparison for `hetune extract` (issue 14): hetune and the Python pipeline of
# shared/data's README, alternated, on an otherwise idle machine (check `uptime` first).
# About 15 minutes in all. Outputs: $OUT/{h,py}-{minilm,mpnet,dino}.{json,time}
set -euo pipefail
# Environment (defaults in brackets): HETUNE [target/release/hetune, built with --features
# extract], PY [a venv's python with the packages of python_extract.py], MODELS
# [~/.cache/hetune/models, .ci/models.sh], SHARED [../shared/data], ALL [all SNIPS sentences as
# hetune's TSV: label<TAB>text, train+valid+test], ONNX [dinov2s_tokens_224.onnx made by
# shared/data/tools/make_dinov2_onnx.py], OUT [a new folder for the results].
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
H=${HETUNE:-$ROOT/target/release/hetune}
PY=${PY:?set PY to the venv python}
PEER=$ROOT/bench/peers/python_extract.py
M=${MODELS:-$HOME/.cache/hetune/models}
S=${SHARED:-$ROOT/../shared/data}
ALL=${ALL:?set ALL to the SNIPS sentences as one TSV}
ONNX=${ONNX:?set ONNX to dinov2s_tokens_224.onnx}
O=${OUT:-extract-same-run-$(date +%m%d-%H%M)}; mkdir -p "$O"
T() { /usr/bin/time -v -o "$1" "${@:2}"; }
uptime > "$O/uptime-start"
for model in all-MiniLM-L6-v2 all-mpnet-base-v2; do
  tag=$([ $model = all-MiniLM-L6-v2 ] && echo minilm || echo mpnet)
  T "$O/h-$tag.time"  "$H" extract text --model "$M/$model" --input "$ALL" --threads 2 --out "$O/h-$tag" --json > "$O/h-$tag.json"
  T "$O/py-$tag.time" "$PY" "$PEER" text --model "$M/$model" --input "$ALL" --threads 2 --out "$O/py-$tag.npy" --json > "$O/py-$tag.json" 2> "$O/py-$tag.err"
done
T "$O/h-dino.time"  "$H" extract image --model "$M/vit_s_focus.onnx" --input "$M/mnist_test.csv" \
    --rows "$S/mnist-dinov2/test_idx.npy" --limit 500 --split test --threads 2 --out "$O/h-dino" --json > "$O/h-dino.json"
T "$O/py-dino.time" "$PY" "$PEER" image --onnx "$ONNX" --csv "$M/mnist_test.csv" \
    --idx "$S/mnist-dinov2/test_idx.npy" --rows 500 --threads 2 --check "$S/mnist-dinov2/test_x.npy" \
    --out "$O/py-dino.npy" --json > "$O/py-dino.json" 2> "$O/py-dino.err"
uptime > "$O/uptime-end"
grep -h '"seconds"' "$O"/*.json
echo "results in $O"
