"""What each output format costs to encode: the job's own encoder (codec.encode) on the same colour images, in
each format the job writes (an output takes its input's format), milliseconds per image and per megapixel.

    python -m benchmarks.encode_cost --n 50

Images: the BSDS500 JPEGs of ../shared/datasets/photos (481x321; colour, as an output is), or --photos DIR's
MANIFEST.csv JPEG rows. One thread (cv2.setNumThreads(1)), as one encode task of the job runs.
"""
import argparse
import csv
import sys
import time

import cv2

from benchmarks import add_photos_flag, print_result
from colorize_core import codec

FORMATS = ("jpeg", "png", "tiff", "webp")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50, help="images")
    add_photos_flag(p)
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    with open(args.photos / "MANIFEST.csv") as f:
        paths = [r["path"] for r in csv.DictReader(f) if r["path"].lower().endswith((".jpg", ".jpeg"))][: args.n]
    images = [cv2.imread(str(args.photos / path), cv2.IMREAD_COLOR) for path in paths]
    if not images:
        raise SystemExit(f"no JPEG photos in {args.photos}/MANIFEST.csv")
    megapixels = sum(i.shape[0] * i.shape[1] for i in images) / 1e6
    figures = {}
    for fmt in FORMATS:
        start = time.perf_counter()
        size = sum(len(codec.encode(image, fmt)) for image in images)
        seconds = time.perf_counter() - start
        figures[fmt] = (1000 * seconds / len(images), 1000 * seconds / megapixels, size / len(images) / 1e3)
        print(f"{fmt}: {figures[fmt][0]:.1f} ms an image, {figures[fmt][1]:.1f} ms a megapixel, "
              f"{figures[fmt][2]:.0f} kB an image", flush=True)
    return print_result("encode_cost", f"{len(images)} images ({megapixels / len(images):.2f} MP): "
          + ", ".join(f"{fmt} {ms:.1f} ms" for fmt, (ms, _, _) in figures.items())
          + f"; webp / jpeg {figures['webp'][0] / figures['jpeg'][0]:.1f}x")


if __name__ == "__main__":
    sys.exit(main())
