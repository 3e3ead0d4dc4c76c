#!/bin/sh
# The prepared GPU run: the portfolio (jobs.train_gpu --recipes: the regression control, classification mix 0.25
# and mix 0.75, encoder block4 and block5 unfrozen at a 10x lower rate) on every training photo (photos:train,
# photos-more, photos-extra: 24,052), validated on the 200 val crops every 30 s, each recipe keeping its best
# checkpoint, on a lent machine with JAX but no TensorFlow or Ray. ../shared does not travel and a call carries
# at most 64 MiB, so the photos and the starting model go packed in four parts (tools/gpu_pack.py), one call
# each, to one warm machine (it keeps what earlier calls carried and what they wrote under runs/; it goes back
# after 30 s idle, so make each call as soon as the last returns). A call runs at most 600 s, so training runs
# in the background: `start` launches it and waits, `wait` waits for the end; a call returns at most 64 MiB
# (8 files, 16 MiB each), and one recipe's best checkpoint is ~38 MB, so each recipe comes back by its own call.
#
# Here, before (from the repository root):
#   sh tools/fetch_gpu_wheels.sh                                  # keras and its needs, into .whl/
#   python tools/training_keys.py --root ../shared/datasets --train photos:train photos-more photos-extra --val photos:val --out out/keys
#   python tools/gpu_pack.py --keys out/keys --out .gpupack       # a/ 39.7 MiB, b.zip 57.6, c.zip 57.6, d.zip 41.4
#   mv models/colorizer.keras /tmp/                               # the shipped file alone is over the limit
# The calls, one after another (timeline, from the last lent H200: start-up ~120 s, a part ~20 s):
#   1 run(command="sh tools/gpu_train.sh install", carry=[".whl", ".gpupack/a"])                 ~140 s
#   2 run(command="true", carry=[".gpupack/b.zip"])                                            ~20 s
#   3 run(command="true", carry=[".gpupack/c.zip"])                                            ~20 s
#   4 run(command="sh tools/gpu_train.sh start 540", carry=[".gpupack/d.zip"], timeout_s=600)  600 s: load ~20 s,
#       then per recipe a compile (~30 s), 180 s of training, a validation every 30 s (~2 s)
#   5 run(command="sh tools/gpu_train.sh wait", timeout_s=300)   ~90 s: the end, summary.json, log, recipe 1
#   6 run(command="sh tools/gpu_train.sh fetch classification-mix0.25")                           ~15 s
#   7 run(command="sh tools/gpu_train.sh fetch classification-mix0.75")                           ~15 s
#   In all ~900 s, 540 s of them training steps (the budget). With less device time left (status), lower the
#   budget of call 4 by as much.
# Here, after:
#   mv /tmp/colorizer.keras models/
#   python -m jobs.train_gpu --out FILES_AT/regression/best --init-model .gpupack/a/init.keras --export models/NEW.keras
#
# STEP: install (the wheels), start BUDGET [jobs.train_gpu flags] (unzips the parts that arrived, each listing its
# own photos, trains in the background, waits up to WAIT s, default 560), wait [SECONDS] (default 280), fetch
# RECIPE, or run BUDGET [flags] (start and wait in one, for a machine with no call limit, and for the test).
# Env: OUT (what comes back; the device tool sets it), PACK (.gpupack), RUN (runs/gpu), PYTHON (python3),
# RECIPES, UNFREEZE, VALIDATE_EVERY (30), PRECISION (bfloat16). Without a pack it trains from ../shared/datasets.
set -eu
STEP=${1:-run}
[ $# -ge 1 ] && shift
PYTHON=${PYTHON:-python3}
OUT=${OUT:-out/gpu}
PACK=${PACK:-.gpupack}
RUN=${RUN:-runs/gpu}
RECIPES=${RECIPES:-regression classification-mix0.25 classification-mix0.75}
UNFREEZE=${UNFREEZE:-block4 block5}
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site  # installed by an earlier call on this machine
mkdir -p "$OUT" "$RUN"

install() {
    if [ -d .whl ] && ! $PYTHON -c "import keras, exiv2" 2>/dev/null; then
        $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    fi
}

start() {  # BUDGET [flags]: the portfolio in the background, its log in RUN/log.txt
    BUDGET=${1:-540}
    [ $# -ge 1 ] && shift
    install
    [ -d /tmp/site ] && export PYTHONPATH=/tmp/site
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >"$RUN/device.txt" 2>/dev/null || echo cpu >"$RUN/device.txt"
    if [ -f "$PACK/a/val.txt" ]; then  # the photos as tools/gpu_pack.py packed them
        for part in "$PACK"/*.zip; do
            [ -f "$part" ] && [ ! -f "${part%.zip}/train.txt" ] && $PYTHON -m zipfile -e "$part" "$PACK"
        done
        cat "$PACK"/*/train.txt >"$RUN/train.txt"
        set -- --init-model "$PACK/a/init.keras" "$@"
        DATA=$PACK TRAIN="$RUN/train.txt" VAL="$PACK/a/val.txt"
    else
        $PYTHON tools/training_keys.py --root ../shared/datasets --train photos:train photos-more photos-extra \
            --val photos:val --out "$RUN/keys"
        DATA=../shared/datasets TRAIN="$RUN/keys/train.txt" VAL="$RUN/keys/val.txt"
    fi
    rm -f "$RUN/exit"
    # A new session (setsid): the lent machine ends what a call leaves running, except such a one.
    DATA=$DATA TRAIN=$TRAIN VAL=$VAL setsid sh "$0" train "$BUDGET" "$@" </dev/null >/dev/null 2>&1 &
}

train() {  # BUDGET [flags]: the portfolio in the foreground; its exit status into RUN/exit
    BUDGET=$1
    shift
    status=0
    # shellcheck disable=SC2086
    $PYTHON -m jobs.train_gpu --input "$DATA" --input-list "$TRAIN" --val-list "$VAL" --recipes $RECIPES \
        --unfreeze $UNFREEZE --precision "${PRECISION:-bfloat16}" --budget "$BUDGET" --checkpoint-every "${VALIDATE_EVERY:-30}" \
        --out "$RUN" "$@" >"$RUN/log.txt" 2>&1 || status=$?
    echo "$status" >"$RUN/exit"
}

wait_for_end() {  # SECONDS: until the run has ended or SECONDS have passed; 0 if it ended
    waited=0
    while [ ! -f "$RUN/exit" ] && [ "$waited" -lt "$1" ]; do
        sleep 2
        waited=$((waited + 2))
    done
    [ -f "$RUN/exit" ]
}

send() {  # what comes back: the summary, the log and, where named, one recipe's best checkpoint
    for f in summary.json log.txt device.txt exit; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"; done
    if [ $# -ge 1 ] && [ -d "$RUN/$1/best" ]; then
        mkdir -p "$OUT/$1/best" && cp "$RUN/$1/best"/* "$OUT/$1/best/"
    fi
    tail -n 4 "$RUN/log.txt" 2>/dev/null || true
}

first_recipe() { set -- $RECIPES; echo "$1"; }

case "$STEP" in
    install) install ;;
    train) train "$@"; exit 0 ;;
    start) start "$@"; wait_for_end "${WAIT:-560}" || true; send ;;
    wait) wait_for_end "${1:-280}" || echo "still training"; send "$(first_recipe)" ;;
    fetch) send "$1" ;;
    run) start "$@"; wait_for_end 1000000; send "$(first_recipe)" ;;
    *) echo "STEP is install, start, wait, fetch or run, not $STEP" >&2; exit 2 ;;
esac
[ ! -f "$RUN/exit" ] || [ "$(cat "$RUN/exit")" = 0 ] || { echo "training failed: $RUN/log.txt" >&2; exit 1; }
