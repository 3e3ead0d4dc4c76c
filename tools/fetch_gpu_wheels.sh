#!/bin/sh
# Keras and what it needs on the lent GPU machine (Python 3.12, JAX, no TensorFlow), into .whl/ (ignored by
# git), for tools/gpu_train.sh: keras's own small dependencies that machine lacks, and exiv2 (codec imports it).
set -eu
cd "$(dirname "$0")/.."
mkdir -p .whl
for spec in keras==3.15.1 namex optree "exiv2==0.19.2"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl "$spec"
done
ls -l .whl
