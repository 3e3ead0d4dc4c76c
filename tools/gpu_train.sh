#!/bin/sh
# The prepared GPU run: the training recipe (jobs.train_gpu) on every training photo of ../shared/datasets
# (photos:train, photos-more, photos-extra: 24,052), validated on the val split, within a time budget, on a
# machine with JAX but no TensorFlow or Ray. ../shared does not travel to the lent machine, and a call carries at
# most 64 MiB (counted in whole disk blocks: thousands of small files are sent as one zip), so the photos and the
# starting model go packed in four parts, one call each, to one warm machine (it keeps what earlier calls
# carried; make the next call within its 30 s idle time). From the repository root:
#
#   sh tools/fetch_gpu_wheels.sh                                  # here, once: keras and its needs, into .whl/
#   python tools/training_keys.py --root ../shared/datasets --train photos:train photos-more photos-extra --val photos:val --out out/keys
#   python tools/gpu_pack.py --keys out/keys --out .gpupack       # a/ 39.7 MiB, b.zip 57.6, c.zip 57.6, d.zip 41.4
#   mv models/colorizer.keras /tmp/                               # the shipped file alone is over the limit
#   run(command="python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl", carry=[".whl", ".gpupack/a"])
#   run(command="true", carry=[".gpupack/b.zip"])
#   run(command="true", carry=[".gpupack/c.zip"])
#   run(command="sh tools/gpu_train.sh 420 classification", carry=[".gpupack/d.zip"], timeout_s=590)
#   mv /tmp/colorizer.keras models/
#   python -m jobs.train_gpu --out RUN/best --init-model .gpupack/a/init.keras --export models/NEW.keras   # here: the best checkpoint (RUN/ is the last)
#
# The script unzips the parts that arrived and trains on their photos (each part lists its own: one that did not
# arrive costs its photos only).
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
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site  # installed by an earlier call on this machine
if [ -d .whl ] && ! $PYTHON -c "import keras, exiv2" 2>/dev/null; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >"$OUT/device.txt" 2>/dev/null || echo cpu >"$OUT/device.txt"
if [ -f .gpupack/a/val.txt ]; then  # the photos as tools/gpu_pack.py packed them (../shared does not travel)
    for part in .gpupack/*.zip; do  # the parts that arrived; each lists its own photos
        [ -f "$part" ] && [ ! -f "${part%.zip}/train.txt" ] && $PYTHON -m zipfile -e "$part" .gpupack
    done
    cat .gpupack/*/train.txt >"$OUT/train.txt"
    set -- --init-model .gpupack/a/init.keras "$@"
    DATA=.gpupack TRAIN="$OUT/train.txt" VAL=.gpupack/a/val.txt
else
    $PYTHON tools/training_keys.py --root ../shared/datasets --train photos:train photos-more photos-extra \
        --val photos:val --out "$OUT/keys"
    DATA=../shared/datasets TRAIN="$OUT/keys/train.txt" VAL="$OUT/keys/val.txt"
fi
$PYTHON -m jobs.train_gpu --input "$DATA" --input-list "$TRAIN" --val-list "$VAL" \
    --head "$HEAD" --precision bfloat16 --budget "$BUDGET" --out "$OUT/$HEAD" "$@" 2>&1 | tee "$OUT/log.txt"
