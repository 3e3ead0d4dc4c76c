"""CPU cost per megapixel of each CPU step of the job, on one large scan and smaller ones, in one process.

    python -m benchmarks.large_image --sizes 6000x4000 3000x2000 1500x1000

The model always sees 224x224, so a large scan should cost only its own pixel work: decode, L, resizes,
putting colour back (recombine), encode. Each step is timed on a grey JPEG made from examples/ at each size
(upscaled, with film grain), with the ab the shipped model predicts for it; the best of --repeat runs.
"""
import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks import print_result
from colorize_core import codec, lab, runtime
from colorize_core.model import load_colorizer
from colorize_core.model_file import DEFAULT_MODEL

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def best_of(repeat: int, step):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    runtime.prepare_environment()  # TensorFlow's start-up chatter off, before load_colorizer imports it
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["6000x4000", "3000x2000", "1500x1000"])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    model = load_colorizer(DEFAULT_MODEL)
    figures = []
    grey = cv2.imread(str(EXAMPLES / "castle.jpg"), cv2.IMREAD_GRAYSCALE)
    print("| size | MP | decode | L | model input | recombine | encode | total | s per MP | recombine / (decode + encode) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        width, height = map(int, size.split("x"))
        scan = cv2.resize(grey, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        scan += np.random.default_rng(0).normal(0, 4, scan.shape).astype(np.float32)  # film grain, as scans have
        data = codec.encode(np.clip(scan, 0, 255).astype(np.uint8), "jpeg", 95)
        t_decode, original = best_of(args.repeat, lambda: codec.decode_original(data))
        t_L, L = best_of(args.repeat, lambda: lab.bgr_to_lab(original.image)[..., 0])
        t_input, x = best_of(args.repeat, lambda: lab.model_input(L))
        ab = np.asarray(model.predict_on_batch(x[None, ..., None]), np.float32)[0]
        t_recombine, colour = best_of(args.repeat, lambda: lab.recombine(L, ab, np.uint8))
        t_encode, _ = best_of(args.repeat, lambda: codec.encode(colour, "jpeg", 95))
        total, mp = t_decode + t_L + t_input + t_recombine + t_encode, width * height / 1e6
        print(f"| {size} | {mp:.1f} | {t_decode:.3f} | {t_L:.3f} | {t_input:.3f} | {t_recombine:.3f} | {t_encode:.3f} "
              f"| {total:.3f} | {total / mp:.3f} | {t_recombine / (t_decode + t_encode):.2f} |", flush=True)
        figures.append(f"{size} {total / mp:.3f} s a megapixel")
    return print_result("large_image", f"best of {args.repeat}: {', '.join(figures)}")


if __name__ == "__main__":
    sys.exit(main())
