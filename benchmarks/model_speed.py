"""Model-only speed: images/s of a colorizer predicting ready batches (224x224, or --model-sizes) (Colorizer.predict: host arrays
in and out, the classification head's annealed mean and confidence included), by precision and batch size.
Needs only Keras and a backend (no Ray, no TensorFlow under KERAS_BACKEND=jax): for sizing a GPU.

    python -m benchmarks.model_speed --models models/colorizer.keras runs/cls.keras --batch-sizes 16
    python -m benchmarks.model_speed --model-sizes 224 320 448
    KERAS_BACKEND=jax python3 -m benchmarks.model_speed --precision bfloat16 --batch-sizes 128 256 1024
"""
import argparse
import sys
import time

import numpy as np

from benchmarks import print_result
from colorize_core.model_file import DEFAULT_MODEL


def images_per_s(path: str, precision: str, batch_size: int, seconds: float, model_size: int = 224
                 ) -> tuple[float, float]:
    """(images/s over `seconds` after a first call, seconds of the first call: loading, tracing, compiling)."""
    from colorize_core.model import Colorizer

    x = np.random.default_rng(0).uniform(0, 100, (batch_size, model_size, model_size, 1)).astype(np.float32)
    start = time.perf_counter()
    colorizer = Colorizer.load(path, precision, size=model_size)
    colorizer.predict(x)
    first = time.perf_counter() - start
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        colorizer.predict(x)
        n += batch_size
    return n / (time.perf_counter() - start), first


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=[DEFAULT_MODEL])
    p.add_argument("--precision", nargs="+", default=["float32"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[16])
    p.add_argument("--model-sizes", nargs="+", type=int, default=[224])
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args(argv)
    import keras

    print(f"backend {keras.backend.backend()}")
    figures = []
    print(f"{'model':40} {'precision':10} {'size':>5} {'batch':>6} {'images/s':>10} {'first call s':>13}")
    for path in args.models:
        for precision in args.precision:
            for model_size in args.model_sizes:
                for size in args.batch_sizes:
                    speed, first = images_per_s(path, precision, size, args.seconds, model_size)
                    print(f"{path[-40:]:40} {precision:10} {model_size:5} {size:6} {speed:10.2f} {first:13.1f}",
                          flush=True)
                    figures.append(f"{path.rsplit('/', 1)[-1]} {precision} size {model_size} batch {size} "
                                   f"{speed:.2f} images/s")
    return print_result("model_speed", f"backend {keras.backend.backend()}: {', '.join(figures)}")


if __name__ == "__main__":
    sys.exit(main())
