#!/bin/sh
# The prepared GPU run: the training recipe (jobs.train_gpu) on the train split of ../shared/datasets/photos plus
# all of ../shared/datasets/photos-more, validated on the val split, within a time budget, on a machine with JAX
# but no TensorFlow or Ray. From the repository root:
#
#   sh tools/fetch_gpu_wheels.sh                       # here, once: keras and what it needs there, into .whl/
#   run(command="sh tools/gpu_train.sh 450 classification", carry=[".whl"], timeout_s=600)   # the device tool
#   python -m jobs.train_gpu --out RUN --export models/NEW.keras                            # here, afterwards
#
# Arguments: BUDGET seconds of training (default 450), the recipe's --head (default classification), then any
# more jobs.train_gpu flags (e.g. --unfreeze block4 block5 --learning-rate 3e-4). Writes $OUT/HEAD/ (weights,
# run.json with the curve and val figures every 60 s: a run cut off still returns its last checkpoint) and
# $OUT/log.txt. PYTHON picks the interpreter (default python3); without .whl/ nothing is installed.
set -eu
BUDGET=${1:-450}
HEAD=${2:-classification}
[ $# -ge 2 ] && shift 2 || shift $#
PYTHON=${PYTHON:-python3}
OUT=${OUT:-out/gpu}
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
if [ -d .whl ] && ! $PYTHON -c "import keras, exiv2" 2>/dev/null; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >"$OUT/device.txt" 2>/dev/null || echo cpu >"$OUT/device.txt"
$PYTHON tools/training_keys.py --root ../shared/datasets --train photos:train photos-more --val photos:val --out "$OUT/keys"
$PYTHON -m jobs.train_gpu --input ../shared/datasets --input-list "$OUT/keys/train.txt" --val-list "$OUT/keys/val.txt" \
    --head "$HEAD" --precision bfloat16 --budget "$BUDGET" --out "$OUT/$HEAD" "$@" 2>&1 | tee "$OUT/log.txt"
