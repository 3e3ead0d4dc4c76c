#!/bin/sh
# The prepared CPU run: the portfolio (jobs.train_gpu --recipes) in mixed_bfloat16 on a CPU with AMX, on every
# training photo of ../shared/datasets (photos:train, photos-more, photos-extra: 24,052), validated on the 200
# val crops, for a budget of training minutes shared by the recipes. For when no GPU is lent (issue 32).
#
#   sh tools/cpu_train.sh 85 runs/cpu-1                     # in the background: nohup ... >runs/cpu-1.log 2>&1 &
#   sh tools/cpu_train.sh 85 runs/cpu-1 --resume-from runs/cpu-1          # after a cut: on to the same budget
#   sh tools/cpu_train.sh 85 runs/cpu-2 --init-model models/NEW.keras     # the next run from the best so far
#   python -m jobs.train_gpu --out runs/cpu-1/regression/best --export models/cpu-1-regression.keras  # or closest/
#
# Arguments: MINUTES of training (default 85), the run folder (default runs/cpu), then any more jobs.train_gpu
# flags. RECIPES picks the recipes (default: the regression control and classification mix 0.75), UNFREEZE the
# encoder blocks trained too (default block5, at the recipe's 10x lower rate). The decoded photos are kept in
# runs/photo-cache (6 GB) for the next run. It refuses a CPU without AMX, where bfloat16 is about 8x slower
# than float32 (FORCE=1 to run anyway).
set -eu
MINUTES=${1:-85}
RUN=${2:-runs/cpu}
[ $# -ge 2 ] && shift 2 || shift $#
PYTHON=${PYTHON:-.venv/bin/python}
RECIPES=${RECIPES:-regression classification-mix0.75}
UNFREEZE=${UNFREEZE:-block5}
ROOT=${ROOT:-../shared/datasets}
if ! $PYTHON -c "import sys; from colorize_core.runtime import cpu_has_amx; sys.exit(0 if cpu_has_amx() else 1)"; then
    if [ "${FORCE:-0}" != 1 ]; then
        echo "this CPU has no AMX (no amx_bf16 in /proc/cpuinfo): bfloat16 training is about 8x slower than" \
             "float32 here; take a machine with AMX or a GPU (tools/gpu_train.sh), or FORCE=1 to run anyway" >&2
        exit 2
    fi
fi
mkdir -p "$RUN"
if [ -z "${TRAIN:-}" ]; then
    $PYTHON tools/training_keys.py --root "$ROOT" --train photos:train photos-more photos-extra --val photos:val \
        --out "$RUN/keys"
    TRAIN="$RUN/keys/train.txt" VAL="$RUN/keys/val.txt"
fi
grep amx_bf16 /proc/cpuinfo >/dev/null 2>&1 && grep -m1 "model name" /proc/cpuinfo >"$RUN/cpu.txt" || true
# shellcheck disable=SC2086
exec $PYTHON -m jobs.train_gpu --input "$ROOT" --input-list "$TRAIN" --val-list "$VAL" --recipes $RECIPES \
    --unfreeze $UNFREEZE --precision bfloat16 --batch-size "${BATCH:-16}" --learning-rate "${LR:-3e-4}" \
    --threads "$(nproc)" --budget "$(( MINUTES * 60 ))" --checkpoint-every "${VALIDATE_EVERY:-150}" \
    --photo-cache "${CACHE:-runs/photo-cache}" --out "$RUN" "$@"
