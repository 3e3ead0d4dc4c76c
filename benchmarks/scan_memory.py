"""Peak memory of the colorize job on folders of large scans, by scan size and batch size (issue 17).

    python -m benchmarks.scan_memory --sizes 24 100 200 --batch-sizes 16 128
    python -m benchmarks.scan_memory --repo ../before      # the same, with the job of another checkout

Each folder holds 8 grey JPEG scans of the size (a smooth surface with grain, one file linked 8 times) among
40 small photos, named so that the scans are spread through the sorted keys: a batch of 16 then holds two or
three scans, a batch of 128 all eight. The model is memory.py's tiny stand-in (its own memory is constant),
its colour scaled down (--chroma-gain 0.1) to stay in gamut as a trained model's does.
Memory is the sum of PSS over the job's process tree (driver, Ray, every worker), sampled every 0.2 s.
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2

from benchmarks import print_result
from benchmarks.memory import run, tiny_model
from tests.conftest import colour_photo
from tests.test_large_scans import scan


def folder_of_scans(folder: Path, megapixels: int) -> None:
    """8 scans of `megapixels` and 40 small photos, the scans every sixth key."""
    folder.mkdir(parents=True)
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    first = folder / "img-000.jpg"
    first.write_bytes(scan(width, round(width * 3 / 4)))
    for i in range(48):
        path = folder / f"img-{i:03d}.jpg"
        if i % 6 == 0 and i:
            os.link(first, path)
        elif i % 6:
            cv2.imwrite(str(path), cv2.cvtColor(colour_photo(i), cv2.COLOR_BGR2GRAY))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[24, 100, 200], help="scan sizes in megapixels")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 128])
    p.add_argument("--repo", type=Path, help="run the job of this checkout (default: this one)")
    args = p.parse_args(argv)
    figures = []
    work = Path(tempfile.mkdtemp(prefix="colorize-scans-"))
    model = tiny_model(work / "tiny.keras")
    print(f"{'scan MP':>8} {'batch':>6} {'peak GiB':>9} {'seconds':>8} {'exit':>5}  largest processes at the peak (GiB)")
    for megapixels in args.sizes:
        inputs = work / f"in-{megapixels}"
        folder_of_scans(inputs, megapixels)
        for batch in args.batch_sizes:
            result = run(inputs, work / f"out-{megapixels}-{batch}", model,
                         # A low chroma gain keeps the stand-in's random colour inside sRGB: out-of-gamut pixels
                         # take a slow bisection that a real model's colour (0.1% of pixels) does not.
                         ["--batch-size", str(batch), "--max-pixels", str(int(megapixels * 1.1e6)),
                          "--chroma-gain", "0.1"], None,
                         cwd=args.repo)
            print(f"{megapixels:8} {batch:6} {result['peak_gib']:9.2f} {result['seconds']:8.1f} {result['exit']:5}  "
                  f"{result['at_peak_gib']}", flush=True)
            if result["exit"]:
                raise SystemExit(f"the job exited {result['exit']}: its figures are not the job's")
            figures.append(f"{megapixels} MP batch {batch} peak {result['peak_gib']:.2f} GiB")
    return print_result("scan_memory", ", ".join(figures))


if __name__ == "__main__":
    sys.exit(main())
