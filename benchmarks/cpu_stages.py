"""The CPU stages' own limit: images/s of read + decode + L, then recombine + encode + describe + write, with no
model (a stand-in ab of one mild colour), on N processes at once: the most a node's CPUs can feed its GPU.

    python -m benchmarks.cpu_stages --n 2000 --cpus 16
    python -m benchmarks.cpu_stages --input FOLDER --cpus 16

The job's own stage functions (stages.read_and_decode, stages.encode_and_write), in batches of --batch-size
keys, in a pool of --cpus processes, without Ray. The pool is started and warmed before the clock starts.
Read a job's images/s against this and against benchmarks/model_speed: it cannot beat the lower of the two.
"""
import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import add_photos_flag, copy_photos, print_result

STAND_IN_AB = (6.0, 12.0)  # a and b (Lab units) of the stand-in colour: a warm tone, so the outputs are colour images


def settings_for(folder_in: str, folder_out: str):
    """The job's settings for a run with no model: only the record of what made each output names one."""
    from colorize_core.settings import JobSettings
    from colorize_core.storage import Location

    return JobSettings(input=Location(folder_in), output=Location(folder_out), run_id="cpu-stages",
                       model_uri="no-model (benchmarks.cpu_stages)", model_sha256="", temperature=None, chroma_gain=1.0)


def stand_in_predict(batch: dict[str, np.ndarray], model_size: int) -> dict[str, np.ndarray]:
    """What the model stage hands on, with one colour for every image in place of a prediction."""
    from colorize_core.batches import ragged
    from colorize_core.lab import AB_SCALE

    ab = np.empty((model_size, model_size, 2), np.float32)
    ab[...] = np.array(STAND_IN_AB, np.float32) / AB_SCALE  # the model predicts ab / AB_SCALE
    batch = {c: v for c, v in batch.items() if c != "model_input"}
    return {**batch, "ab": ragged([ab] * len(batch["key"]))}


def colorize_keys(job: tuple[str, str, list[str]]) -> int:
    """One task of the pool: the keys through the CPU stages; how many came out OK."""
    from colorize_core.stages import encode_and_write, read_and_decode
    from colorize_core.status import Status

    folder_in, folder_out, keys = job
    settings = settings_for(folder_in, folder_out)
    batch = read_and_decode({"key": np.array(keys, dtype=object)}, settings)
    done = encode_and_write(stand_in_predict(batch, settings.model_size), settings)
    return int(np.sum(done["status"] == Status.OK))


def measure(folder_in: Path, folder_out: Path, cpus: int, batch_size: int) -> tuple[int, float]:
    """(images done OK, seconds) for every image under `folder_in` through the CPU stages on `cpus` processes."""
    from colorize_core.storage import Location

    keys = Location(str(folder_in)).list_keys()
    jobs = [(str(folder_in), str(folder_out), keys[i:i + batch_size]) for i in range(0, len(keys), batch_size)]
    with multiprocessing.get_context("spawn").Pool(cpus) as pool:
        warm = [(str(folder_in), str(folder_out / "_warm"), keys[:1])] * cpus  # imports and first calls
        pool.map(colorize_keys, warm, chunksize=1)
        start = time.perf_counter()
        done = sum(pool.imap_unordered(colorize_keys, jobs))
        seconds = time.perf_counter() - start
    return done, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, help="a folder of images (default: --n JPEG photos of --photos)")
    p.add_argument("--n", type=int, default=200, help="photos to copy from --photos when no --input")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="processes (default: every CPU)")
    p.add_argument("--batch-size", type=int, default=16, help="keys a task takes at once")
    add_photos_flag(p)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="colorize-cpu-stages-"))
    try:
        folder_in = args.input or work / "in"
        if args.input is None:
            copy_photos(args.n, folder_in, args.photos)
        done, seconds = measure(folder_in, work / "out", args.cpus, args.batch_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{done} images through decode + L + recombine + encode + write in {seconds:.1f} s on {args.cpus} processes")
    return print_result("cpu_stages", f"{done} images from {folder_in.name}, {args.cpus} processes, batch "
                        f"{args.batch_size}: {done / seconds:.2f} images/s, {done / seconds / args.cpus:.2f} per process")


if __name__ == "__main__":
    sys.exit(main())
