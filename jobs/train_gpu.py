"""Train the colorizer in one process, on a GPU or a CPU with AMX, without Ray, for a time budget: one recipe
(the flags), or a portfolio of recipes one after another (--recipes). colorize_core.trainer is the loop.

    KERAS_BACKEND=jax python -m jobs.train_gpu --input ../shared/datasets --input-list runs/keys/train.txt \\
        --val-list runs/keys/val.txt --recipes regression classification-mix0.25 classification-mix0.75 \\
        --unfreeze block4 block5 --precision bfloat16 --budget 540 --out runs/p-1
    python -m jobs.train_gpu --out runs/p-1/regression/best --export models/p-1-regression.keras

Photos are decoded once into uint8 canvases (--photo-cache keeps them for the next run); the random crop, flip
and Lab conversion run inside the compiled training step. Each recipe's run folder (OUT, or OUT/NAME with
--recipes) gets decoder.npz, encoder_BLOCK.npz for unfrozen blocks, run.json (the curve and the val figures
every --checkpoint-every seconds), and best/: the checkpoint with the best validation CIEDE2000. --resume-from
a run folder goes on to the same --budget (the schedule where it was; Adam's moments start afresh). --export
builds the .keras file from a run folder, its encoder from --init-model.
"""
import argparse
import os
import sys
import time
from pathlib import Path

from jobs import add_input_flags, add_recipe_flags, add_validation_flags, settings_from_environment
from colorize_core import runtime, training
from colorize_core.model_file import file_sha256
from colorize_core.storage import Location, select_keys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_flags(p, "folder or s3://bucket/prefix of colour photographs", required=False)
    add_validation_flags(p, limit=200)
    p.add_argument("--out", type=Path, required=True, help="the run folder: weights, run.json")
    p.add_argument("--budget", type=float, default=540,
                   help="seconds of training in all (data loading and validation excluded), shared by --recipes")
    p.add_argument("--checkpoint-every", type=float, default=60,
                   help="seconds of training between checkpoints (and validations)")
    p.add_argument("--recipes", nargs="+", choices=tuple(training.PORTFOLIO), metavar="RECIPE",
                   help=f"train these recipes in turn, each in OUT/RECIPE ({', '.join(training.PORTFOLIO)}); "
                        "their own head, loss and mix replace the flags'")
    p.add_argument("--resume-from", type=Path, help="a run folder to go on from (its recipe and weights)")
    p.add_argument("--photo-cache", type=Path, help="keep the decoded photos here (.npy) for a later run")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads decoding photos")
    p.add_argument("--seed", type=int, default=0)
    add_recipe_flags(p, batch_size=64, learning_rate=1e-3)
    p.add_argument("--export", type=Path, metavar="MODEL.keras", help="build the colorizer file from the run in --out")
    p.add_argument("--chroma-gain", type=float, help="with --export: the default chroma gain stored in the file")
    args = settings_from_environment(p).parse_args(argv)
    if not args.export and not args.input:
        p.error("--input is required to train (or give --export to build a model file from a run)")
    return args


def train(args: argparse.Namespace) -> dict:
    import keras
    import numpy as np

    from colorize_core.trainer import PhotoSet, train_portfolio, train_recipe

    started = time.monotonic()
    source = Location(args.input, args.s3_endpoint)
    keys = select_keys(source, args.split, args.input_list, args.limit)
    val_keys = select_keys(source, args.val_split, args.val_list)[: args.val_limit] if (args.val_split or args.val_list) else []
    if set(val_keys) & set(keys):
        raise SystemExit("the validation photos overlap the training photos: validation must be held out")
    photos = PhotoSet.load(source, keys, args.threads, args.photo_cache)
    if not len(photos):
        raise SystemExit(f"no readable photos under {args.input}")
    val_batches = [training.validation_examples({"key": np.array(val_keys[i:i + 50])}, source)
                   for i in range(0, len(val_keys), 50)]
    print(f"{len(photos)} training photos, {len(val_keys)} validation photos loaded in "
          f"{time.monotonic() - started:.0f} s; backend {keras.backend.backend()}", flush=True)
    base = training.Recipe.from_args(args)
    log = lambda line: print(line, flush=True)  # noqa: E731
    if args.recipes:
        return train_portfolio(training.portfolio(args.recipes, base), photos, val_batches, args.init_model, args.out,
                               args.budget, args.checkpoint_every, args.seed, args.resume_from, log)
    return {"recipes": {"": train_recipe(base, photos, val_batches, args.init_model, args.out, args.budget,
                                         args.checkpoint_every, args.seed, args.resume_from, log)}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime.prepare_environment()  # no Ray here; TensorFlow's start-up chatter off
    if args.export:
        from colorize_core.trainer import export

        export(args.out, args.init_model, args.export, args.chroma_gain)
        print(f"wrote {args.export} (sha256 {file_sha256(args.export)}) from {args.out}")
        return 0
    for name, run in train(args)["recipes"].items():
        folder = args.out / name if name else args.out
        steps = run["steps"]
        print(f"{name or 'trained'}: {steps} steps, {run['examples']} examples in {run['trained_s']:.0f} s; "
              f"run folder {folder}")
        best = run.get("best")
        if best:
            print(f"  best validation CIEDE2000 {best['val_ciede2000']:.3f} at step {best['step']} ({best['seconds']} s): "
                  f"python -m jobs.train_gpu --out {folder / 'best'} --export MODEL.keras")
    return 0


if __name__ == "__main__":
    sys.exit(main())
