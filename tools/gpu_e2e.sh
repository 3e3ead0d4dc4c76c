#!/bin/sh
# The prepared run of the colorize job on a lent GPU through Ray (issue 28): the job with the defaults a GPU node
# gets (one model actor per GPU, batch 128, --precision auto), under KERAS_BACKEND=jax, on a Ray started on the
# machine (loopback, all its CPUs, the GPU it finds), over the val photos (grey JPEGs at full resolution, by
# tools/gpu_pack.py --job) repeated to REPEAT x 200; GPU utilisation and memory sampled while it runs; then, in
# the same call, the model alone (benchmarks/model_speed, same batch and precision) and the CPU stages alone
# (benchmarks/cpu_stages, every CPU, no model), so that the job's images/s reads against both.
# The lent machine has JAX, pyarrow and OpenCV but no Ray, Keras, exiv2 or imagecodecs, and a call carries at
# most 64 MiB: the wheels (~108 MB, Ray's alone 79 MB), the model (float16 weights, 28 MB) and the photos go
# as one tar split into parts of 60 MB, one call each, to one warm machine (it keeps what earlier calls carried;
# it goes back after 30 s idle, so make each call as soon as the last returns).
#
# Here, before (from the repository root):
#   sh tools/fetch_gpu_wheels.sh job                      # into .whl/
#   python tools/training_keys.py --root ../shared/datasets --train photos:train --val photos:val --out out/keys
#   python tools/gpu_pack.py --keys out/keys --job --out out/e2e-pack
#   sh tools/gpu_e2e.sh pack                              # .gpue2e/part-1-of-3 .. part-3-of-3
#   mv models/colorizer.keras /tmp/                       # the shipped file alone is over a call's limit
# The calls, one after another:
#   1 run(command="true", carry=[".gpue2e/part-1-of-3"])                      the start (~120 s), then ~20 s
#   2 run(command="true", carry=[".gpue2e/part-2-of-3"])                      ~20 s
#   3 run(command="sh tools/gpu_e2e.sh run", carry=[".gpue2e/part-3-of-3"], timeout_s=480)   ~240 s: install
#       ~30 s, Ray ~10 s, the job, the model alone ~40 s, the CPU stages ~20 s
# What comes back (7 files): summary.json (tools/e2e_summary.py), job.txt, gpu.csv, model_speed.txt,
# cpu_stages.txt, ray.txt (Ray's resources and the errors in its logs), log.txt.
# Here, after: mv /tmp/colorizer.keras models/
#
# STEP: pack (here), or run [jobs.colorize flags] (there; and here, on CPU, for the test).
# Env: OUT (what comes back; the device tool sets it), PARTS (.gpue2e), JOB_PACK (out/e2e-pack: what `pack`
# packs), WORK (/tmp/e2e), PYTHON (python3), REPEAT (50: copies of the photos the job takes), CPU_REPEAT (15:
# copies the CPU stages take), BATCH and PRECISION (the job's GPU defaults, 128 and bfloat16, where nvidia-smi
# finds a GPU; 16 and float32 on a CPU), MODEL_SECONDS (15), RAY_PORT (6390); for `pack`: WHEELS (.whl),
# PART_BYTES (60000000).
set -eu
STEP=${1:-run}
[ $# -ge 1 ] && shift
PYTHON=${PYTHON:-python3}
OUT=${OUT:-out/gpu-e2e}
PARTS=${PARTS:-.gpue2e}
WORK=${WORK:-/tmp/e2e}
RAY_PORT=${RAY_PORT:-6390}
ROOT=$(pwd)

pack() {  # the wheels (.whl/) and JOB_PACK (model.keras, photos/) as one tar, in parts of 60 MB
    JOB_PACK=${JOB_PACK:-out/e2e-pack}
    [ -f "$JOB_PACK/model.keras" ] || { echo "no $JOB_PACK/model.keras: run tools/gpu_pack.py --job first" >&2; exit 2; }
    rm -rf "$PARTS" && mkdir -p "$PARTS"
    wheels=${WHEELS-.whl}
    [ -d "$wheels" ] || wheels=""
    # shellcheck disable=SC2086
    tar -cf - $wheels -C "$JOB_PACK" model.keras photos | split -b "${PART_BYTES:-60000000}" -d -a 1 - "$PARTS/part-"
    n=$(ls "$PARTS" | wc -l)
    for part in "$PARTS"/part-?; do
        mv "$part" "$PARTS/part-$(( ${part##*-} + 1 ))-of-$n"
    done
    ls -l "$PARTS"
}

unpack() {  # the parts that arrived, joined into WORK/pack; all of them, or it says which are missing
    first=$(ls "$PARTS"/part-1-of-* 2>/dev/null | head -n 1)
    [ -n "$first" ] || { echo "no $PARTS/part-1-of-N: carry the parts first (the header)" >&2; exit 2; }
    n=${first##*-of-}
    i=1
    while [ "$i" -le "$n" ]; do
        [ -f "$PARTS/part-$i-of-$n" ] || { echo "$PARTS/part-$i-of-$n did not arrive: carry it, then run again" >&2; exit 2; }
        i=$((i + 1))
    done
    rm -rf "$WORK" && mkdir -p "$WORK/pack"
    i=1
    while [ "$i" -le "$n" ]; do cat "$PARTS/part-$i-of-$n"; i=$((i + 1)); done | tar -xf - -C "$WORK/pack"
}

install() {  # the carried wheels, where what the job imports is missing
    if [ -d "$WORK/pack/.whl" ] && ! $PYTHON -c "import ray, keras, exiv2, imagecodecs" 2>/dev/null; then
        $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$WORK"/pack/.whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
}

links() {  # COPIES FOLDER: the photos under FOLDER/copy-K/, hard links (no bytes copied)
    k=1
    while [ "$k" -le "$1" ]; do
        mkdir -p "$2" && cp -al "$WORK/pack/photos" "$2/copy-$k"
        k=$((k + 1))
    done
}

sample_gpu() {  # every 0.5 s: epoch seconds, utilisation %, memory used MiB, the largest process's MiB
    while :; do
        gpu=$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits | head -n 1 | tr -d ' ')
        apps=$(nvidia-smi --query-compute-apps=used_memory --format=csv,noheader,nounits | sort -n | tail -n 1 | tr -d ' ')
        echo "$(date +%s.%N),$gpu,${apps:-0}"
        sleep 0.5
    done
}

run() {  # [jobs.colorize flags]
    mkdir -p "$OUT"
    exec 3>&1 >"$OUT/log.txt" 2>&1  # the call's own output: the log's end (below)
    trap 'tail -n 40 "$OUT/log.txt" >&3' EXIT
    set -x
    unpack
    install
    GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)
    if [ -n "$GPU" ]; then BATCH=${BATCH:-128} PRECISION=${PRECISION:-bfloat16}; else BATCH=${BATCH:-16} PRECISION=${PRECISION:-float32}; fi
    # The Ray node's environment is its workers': the repository, the wheels, the backend, and JAX taking GPU
    # memory as it needs it (not 75% at start), so that the samples show what the actor uses.
    export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1 \
        XLA_PYTHON_CLIENT_PREALLOCATE=false RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled \
        RAY_USAGE_STATS_ENABLED=0
    links "${REPEAT:-50}" "$WORK/in"
    links "${CPU_REPEAT:-15}" "$WORK/in-cpu"
    # A head of its own (--block: stopped by SIGINT, with its processes; `ray stop` would stop every Ray here).
    # sh starts a background command with SIGINT ignored: env gives it back; 3>&- keeps this call's output
    # from Ray's processes.
    env --default-signal=INT $PYTHON -m ray.scripts.scripts start --head --block --node-ip-address=127.0.0.1 \
        --port="$RAY_PORT" --include-dashboard=false --disable-usage-stats --temp-dir="$WORK/ray" \
        >"$WORK/ray-start.log" 2>&1 3>&- &
    RAY_PID=$!
    waited=0
    until $PYTHON -c "import ray; ray.init(address='127.0.0.1:$RAY_PORT'); print('Ray sees', ray.cluster_resources())" >"$WORK/ray-resources.txt" 2>&1; do
        waited=$((waited + 2))
        [ "$waited" -lt 120 ] && kill -0 "$RAY_PID" || { cat "$WORK/ray-start.log"; echo "Ray did not start" >&2; exit 1; }
        sleep 2
    done
    { echo "GPU: ${GPU:-none}; CPUs: $(nproc)"; grep "Ray sees" "$WORK/ray-resources.txt"; } >"$OUT/ray.txt"
    [ -n "$GPU" ] && { sample_gpu >"$OUT/gpu.csv" 3>&- & SAMPLER=$!; }
    date +%s.%N >"$WORK/job.start"
    status=0
    $PYTHON -m jobs.colorize --input "$WORK/in" --output "$WORK/out" --model "$WORK/pack/model.keras" \
        --ray-address 127.0.0.1:"$RAY_PORT" "$@" >"$OUT/job.txt" 2>&1 || status=$?
    date +%s.%N >"$WORK/job.end"
    echo "exit $status" >>"$OUT/job.txt"
    [ -n "${SAMPLER:-}" ] && kill "$SAMPLER"
    { echo "errors in Ray's logs (count, first 200 characters):"
      grep -rhoE "(ERROR|Traceback|[A-Za-z]+Error:).{0,200}" "$WORK/ray/session_latest/logs" 2>/dev/null |
          sort | uniq -c | sort -rn | head -n 60; } >>"$OUT/ray.txt" || true
    kill -INT "$RAY_PID" && wait "$RAY_PID" || true
    $PYTHON -m benchmarks.model_speed --models "$WORK/pack/model.keras" --precision "$PRECISION" \
        --batch-sizes "$BATCH" --seconds "${MODEL_SECONDS:-15}" >"$OUT/model_speed.txt" 2>&1 || true
    $PYTHON -m benchmarks.cpu_stages --input "$WORK/in-cpu" >"$OUT/cpu_stages.txt" 2>&1 || true
    [ "$status" = 0 ] && $PYTHON tools/e2e_summary.py --work "$WORK" --out "$OUT"
    return "$status"
}

case "$STEP" in
    pack) pack ;;
    run) run "$@" ;;
    *) echo "STEP is pack or run, not $STEP" >&2; exit 2 ;;
esac
