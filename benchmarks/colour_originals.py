"""Where to put --skip-colour: the input's colour measure (lab.lightness: the mean chroma less the chroma of
the mean a and b) on genuine black-and-white photos, on the same made toned (sepia, cyanotype) and
hand-tinted, and on colour photos.

    python -m benchmarks.colour_originals   (needs ../shared/datasets: bw-real, and photos' val split)

Toning is one hue over the whole print, stronger or weaker with density: the measure leaves it out, where the
mean chroma (the measure before) read a sepia print as strongly as a colour photo.
"""
import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

from benchmarks import SHARED, print_result
from colorize_core import lab

THRESHOLDS = (3, 4, 5, 6, 8, 10)


def made(grey: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """A grey photo with this a and b put on its L (clipped into sRGB the way a print's dyes would be)."""
    Lab = lab.bgr_to_lab(grey)
    Lab[..., 1], Lab[..., 2] = a, b
    return np.clip(lab.lab_to_bgr(Lab) * 255 + 0.5, 0, 255).astype(np.uint8)


def hand_tinted(grey: np.ndarray) -> np.ndarray:
    """Light washes of colour on parts of the print, as tinters did: a blue sky, a warm ground."""
    h, w = grey.shape[:2]
    a, b = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    b[: h // 2] = -12
    a[h // 2:, : w // 2], b[h // 2:, : w // 2] = 10, 8
    return made(grey, a, b)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", type=Path, default=SHARED,
                   help=f"a folder holding bw-real/ (JPEGs) and photos/ (MANIFEST.csv with a val split) (default {SHARED})")
    p.add_argument("--limit", type=int, help="at most this many photos of each")
    args = p.parse_args(argv)
    greys = [cv2.imread(str(p)) for p in sorted((args.datasets / "bw-real").glob("*.jpg"))][: args.limit]
    rows = csv.DictReader((args.datasets / "photos" / "MANIFEST.csv").read_text().splitlines())
    colour = [cv2.imread(str(args.datasets / "photos" / r["path"])) for r in rows if r["split"] == "val"][: args.limit]
    if not greys or not colour:
        raise SystemExit(f"needs {args.datasets}/bw-real/*.jpg and {args.datasets}/photos' val split")
    sets = {
        "genuine black-and-white (bw-real)": greys,
        "sepia-toned (made from bw-real)": [made(g, 4.0, 14.0) for g in greys],
        "strong sepia (made)": [made(g, 6.0, 21.0) for g in greys],
        "cyanotype (made)": [made(g, -4.0, -22.0) for g in greys],
        "hand-tinted (made)": [hand_tinted(g) for g in greys],
        "colour photos (photos val)": colour,
    }
    print("| photos | n | measure p5 / p50 / p95 | max | " + " | ".join(f"above {t}" for t in THRESHOLDS) + " |")
    print("|---|---|---|---|" + "---|" * len(THRESHOLDS))
    medians = []
    for name, images in sets.items():
        values = np.array([lab.lightness(image)[1] for image in images])
        p5, p50, p95 = np.percentile(values, [5, 50, 95])
        above = " | ".join(f"{np.mean(values > t):.0%}" for t in THRESHOLDS)
        print(f"| {name} | {len(values)} | {p5:.1f} / {p50:.1f} / {p95:.1f} | {values.max():.1f} | {above} |")
        medians.append(f"{name.split(' (')[0]} {p50:.1f}")
    return print_result("colour_originals", f"median measure: {', '.join(medians)}")


if __name__ == "__main__":
    sys.exit(main())
