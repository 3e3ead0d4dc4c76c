"""Does bfloat16 train as well as float32, and how much faster is it? Two short runs of the training job from
the same starting model on the same photos, one per precision, in one process; per-epoch seconds and
validation figures side by side.

    python -m benchmarks.train_precision --train 96 --val 32 --epochs 2

Photos come from ../shared/datasets/photos (train split for training, val split for validation). bfloat16 is
mixed precision (float32 weights). Its speed depends on the CPU: with AMX (Intel Sapphire Rapids and later)
it is several times faster, without AMX it is not.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks import add_photos_flag, print_result
from jobs import train  # its main() prepares Ray's environment before importing ray

FIGURES = ("seconds", "train_loss", "val_loss", "val_psnr", "val_ciede2000", "val_cf")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=96, help="training photos")
    p.add_argument("--val", type=int, default=32, help="validation photos")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="one on 2 cores leaves a CPU to the data stage")
    p.add_argument("--unfreeze", nargs="*", default=["block5"], help="encoder blocks trained too")
    add_photos_flag(p)
    args = p.parse_args(argv)
    if not args.photos.is_dir():
        raise SystemExit(f"needs {args.photos}")
    runs = tempfile.mkdtemp(prefix="train-precision-")
    history = {}
    for precision in ("float32", "bfloat16"):
        train.main(["--input", str(args.photos), "--split", "train", "--limit", str(args.train), "--val-split", "val",
                    "--val-limit", str(args.val), "--output", runs, "--name", precision, "--workers", str(args.workers),
                    "--cpus-per-worker", "1", "--epochs", str(args.epochs), "--precision", precision,
                    "--unfreeze", *args.unfreeze])
        history[precision] = json.loads((Path(runs) / precision / "metrics.json").read_text())["history"]
    print(f"\n{args.train} train photos, {args.val} val photos, {args.workers} workers, unfrozen {args.unfreeze}")
    print("| epoch | figure | float32 | bfloat16 | bf16 / fp32 |\n|---|---|---|---|---|")
    for fp32, bf16 in zip(history["float32"], history["bfloat16"]):
        for name in FIGURES:
            print(f"| {fp32['epoch']} | {name} | {fp32[name]:.4f} | {bf16[name]:.4f} | {bf16[name] / fp32[name]:.3f} |")
    grey = history["float32"][0]
    print(f"grey baseline on the same crops: PSNR {grey['val_grey_psnr']:.2f}, CIEDE2000 {grey['val_grey_ciede2000']:.2f},"
          f" truth CF {grey['val_truth_cf']:.2f}")
    fp32, bf16 = history["float32"][-1], history["bfloat16"][-1]
    return print_result("train_precision", f"{args.train} photos {args.epochs} epochs: seconds an epoch float32 "
                        f"{fp32['seconds']:.1f} bfloat16 {bf16['seconds']:.1f}, val CIEDE2000 float32 "
                        f"{fp32['val_ciede2000']:.3f} bfloat16 {bf16['val_ciede2000']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
