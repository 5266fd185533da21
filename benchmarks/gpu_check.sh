#!/usr/bin/env bash
# The GPU checks and speed figures, as one short script for a lent GPU machine (device tool).
#
# The device image has torch and timm but not captum, grad-cam, nibabel or pydicom: carry them
# as wheels. Here, once, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl captum grad-cam ttach nibabel pydicom
# then run (device tool):  bash benchmarks/gpu_check.sh   with carry [".whl"], timeout ~480 s.
set -uo pipefail
OUT=${OUT:-/tmp/xaiseg-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-deps --no-index .whl/*.whl 2>&1 | tail -2
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
export PYTHONUNBUFFERED=1
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/pytest_cuda.txt" | tail -3
# Swin-B 384 (the paper's model, pretrained=False): batches 1, 8, 32, 10 repeats.
python3 benchmarks/speed.py --device cuda --batch-sizes 1,8,32 --repeats 10 \
  --methods hgi-sam,swin-sam,gradcam,rollout,captum:Saliency --json "$OUT/speed_paper_gpu.json" \
  2>&1 | tee "$OUT/speed_paper_gpu.txt"
