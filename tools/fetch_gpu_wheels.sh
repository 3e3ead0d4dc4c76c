#!/bin/sh
# Keras and what it needs on the lent GPU machine (Python 3.12, JAX, no TensorFlow), into .whl/ (ignored by
# git), for tools/gpu_train.sh: keras's own small dependencies that machine lacks, and exiv2 (codec imports it).
# `sh tools/fetch_gpu_wheels.sh job` adds what the colorize job needs there too, for tools/gpu_e2e.sh: Ray (79 MB)
# and its jsonschema, and imagecodecs (colour_profile imports it). The versions are those installed here.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .whl
SPECS="keras==3.15.1 namex optree exiv2==0.19.2"
if [ "${1:-}" = job ]; then
    SPECS="$SPECS ray==2.60.0 imagecodecs==2026.3.6 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1"
fi
for spec in $SPECS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d .whl "$spec"
done
ls -l .whl
