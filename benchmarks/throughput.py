"""End-to-end images/s of the colorize job against model-only images/s of the same model, and against a
naive single-process loop, in one run.

    python -m benchmarks.throughput --n 500 --precision float32 bfloat16 auto

End to end: the job (local Ray, local folders) over N JPEG photos (the BSDS500 photos of
../shared/datasets/photos, 481x321, repeated under new names to make N: archives hold JPEG and TIFF masters,
and the job writes each output in its input's format), Ray already up; it includes starting the model actor
and loading the model. "auto" is the job's default: the precision the model's worker picks
(runtime.resolve_precision).
Naive loop: one process, one batch at a time: read + decode, predict, recombine + encode + write (the job's
own stage functions, no Ray), model load included.
Model only: the same model file predicting ready 224x224 batches in this process.
Figures are ratios from the same run, since these machines are noisy.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import add_photos_flag, copy_photos, print_result
from colorize_core import manifest, runtime
from colorize_core.lab import MODEL_SIZE
from colorize_core.model import load_colorizer
from colorize_core.model_file import DEFAULT_MODEL, inspect_model_file, resolve_knobs
from colorize_core.settings import JobSettings
from colorize_core.stages import Predictor, encode_and_write, read_and_decode
from colorize_core.storage import Location
from jobs import colorize



def model_only(model_path: str, precision: str, batch_size: int, batches: int) -> float:
    model = load_colorizer(model_path, runtime.resolve_precision(precision, gpus=False)[0])
    x = np.random.default_rng(0).uniform(0, 100, (batch_size, MODEL_SIZE, MODEL_SIZE, 1)).astype(np.float32)
    model.predict_on_batch(x)  # trace and warm up
    start = time.perf_counter()
    for _ in range(batches):
        np.asarray(model.predict_on_batch(x))
    return batches * batch_size / (time.perf_counter() - start)


def naive_loop(folder_in: Path, folder_out: Path, model_path: str, precision: str, batch_size: int) -> float:
    """Images/s of the baseline a pipeline must beat: read, decode, predict, encode, write, one batch at a time."""
    source, target = Location(str(folder_in)), Location(str(folder_out))
    keys = source.list_keys()
    model = inspect_model_file(model_path)
    temperature, chroma_gain = resolve_knobs(model, None, None)  # the model's own defaults, as the job
    settings = JobSettings(input=source, output=target, run_id="naive", model_uri=model_path, model_sha256=model.sha256,
                           temperature=temperature, chroma_gain=chroma_gain, precision=precision)
    start = time.perf_counter()
    predictor = Predictor(settings)
    for i in range(0, len(keys), batch_size):
        encode_and_write(predictor(read_and_decode({"key": np.array(keys[i:i + batch_size], dtype=object)}, settings)),
                         settings)
    return len(keys) / (time.perf_counter() - start)


def where_the_time_goes(output: Path, seconds: float, cpus: int) -> str:
    """The job's own stage timings from its manifest (mean seconds an image), and how much of its CPUs' time the
    stages used: what is left is start-up (Ray Data's plan, the model actor and its model) and idle cores."""
    rows, _ = manifest.read_all(Location(str(output)))
    stages = {s: float(np.mean(rows.column(f"{s}_s").to_numpy())) for s in ("decode", "predict", "encode", "write")}
    busy = sum(stages.values()) * rows.num_rows / (seconds * cpus)
    return (", ".join(f"{s} {v:.3f}" for s, v in stages.items()) + f" s an image; the stages kept {busy:.0%} of "
            f"{cpus} CPUs busy")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64, help="photos to colorize end to end")
    p.add_argument("--precision", nargs="+", choices=runtime.PRECISIONS, default=["float32", "bfloat16"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--model", default=DEFAULT_MODEL)
    add_photos_flag(p)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="colorize-bench-"))
    n = copy_photos(args.n, work / "in", args.photos)
    runtime.start_ray()
    print(f"{n} JPEG photos from {args.photos}, batch size {args.batch_size}, model {args.model}")
    for precision in args.precision:
        start = time.perf_counter()
        code = colorize.main(["--input", str(work / "in"), "--output", str(work / f"out-{precision}"),
                              "--model", args.model, "--precision", precision, "--batch-size", str(args.batch_size)])
        seconds = time.perf_counter() - start
        end_to_end = n / seconds
        assert code == 0
        stages = where_the_time_goes(work / f"out-{precision}", seconds, os.cpu_count() or 1)
        naive = naive_loop(work / "in", work / f"naive-{precision}", args.model, precision, args.batch_size)
        alone = model_only(args.model, precision, args.batch_size, max(2, n // args.batch_size))
        picked = runtime.resolve_precision(precision, gpus=False)[0]
        print_result("throughput", f"{precision} ({picked}), {n} photos: end-to-end {end_to_end:.2f} images/s, naive "
                     f"loop {naive:.2f}, model only {alone:.2f}; end-to-end / model only {end_to_end / alone:.2f}, "
                     f"end-to-end / naive {end_to_end / naive:.2f}; {stages}")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
