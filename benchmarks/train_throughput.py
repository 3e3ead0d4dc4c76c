"""Training images/s fed as the trainer feeds them (uint8 photos, the crop, flip and Lab inside the compiled
step: colorize_core.augment) against the same model's step on ready batches (L and ab made once, already
tensors on the device), in one process, in alternating rounds so that both see the same machine.

    python -m benchmarks.train_throughput --precision bfloat16 --unfreeze block5            # here (AMX CPU)
    KERAS_BACKEND=jax python -m benchmarks.train_throughput --batch-size 128 --precision bfloat16 --unfreeze block4 block5

Photos: --input/--input-list, else the examples/ folder (canvases repeated to fill the batches). The ratio is the
goal of issue 23: at least 0.9 on a CPU. Prints one line a round and a final RESULT line.
"""
import argparse
import os
import sys
import time

import numpy as np

from benchmarks import ROOT, print_result
from colorize_core.model_file import Head


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default=str(ROOT / "examples"))
    p.add_argument("--input-list")
    p.add_argument("--limit", type=int, default=512, help="photos decoded (the batches are drawn from them)")
    p.add_argument("--init-model", default=str(ROOT / "models" / "colorizer.keras"))
    p.add_argument("--head", choices=tuple(Head), type=Head, default=Head.REGRESSION)
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--unfreeze", nargs="*", default=[])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=10, help="steps a round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)

    from colorize_core import runtime

    runtime.prepare_environment()
    import keras
    from keras import ops

    from colorize_core import augment, training
    from colorize_core.model import training_model
    from colorize_core.model import DTYPE_POLICIES, load_colorizer
    from colorize_core.storage import Location, select_keys
    from colorize_core.trainer import PhotoSet

    source = Location(args.input)
    photos = PhotoSet.load(source, select_keys(source, None, args.input_list, args.limit), threads=os.cpu_count() or 1)
    if not len(photos):
        raise SystemExit(f"no photos under {args.input}")
    recipe = training.Recipe(head=args.head, unfreeze=tuple(args.unfreeze), batch_size=args.batch_size,
                             precision=args.precision, learning_rate=1e-5)
    keras.config.set_dtype_policy(DTYPE_POLICIES[args.precision])
    rng = np.random.default_rng(0)
    init = load_colorizer(args.init_model, args.precision)
    targets = training.targets_of(*photos.batch(rng, 64)[:2], rng) if training.needs_targets(init, recipe) else []
    model, mse_weights = training.start_model(init, recipe, targets)
    training.set_trainable(model, recipe.unfreeze)
    trainer = training_model(model)
    loss_fn = training.loss_function(recipe, model, mse_weights)
    fed = augment.augmenting_trainer(trainer)
    fed.compile(optimizer=training.optimizer_for(recipe, model), jit_compile="auto",
                loss=lambda _, out: ops.mean(loss_fn(*augment.split_output(out))))
    trainer.compile(optimizer=training.optimizer_for(recipe, model), jit_compile="auto",
                    loss=lambda y, out: ops.mean(loss_fn(y, out)))
    pixels, sizes, draws = photos.batch(rng, args.batch_size)
    L, ab = (ops.convert_to_tensor(np.asarray(x)) for x in augment.examples(pixels, sizes, draws))
    dummy = np.zeros(args.batch_size, np.float32)

    def photo_fed() -> None:
        fed.train_on_batch(photos.batch(rng, args.batch_size), dummy)  # a new random batch each step, as in training

    def ready() -> None:
        trainer.train_on_batch(L, ab)

    for step in (photo_fed, ready):  # compile both first
        step()
    rates = {"photo_fed": [], "ready": []}
    for r in range(args.rounds):
        for name, step in (("photo_fed", photo_fed), ("ready", ready)):
            began = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps * args.batch_size / (time.perf_counter() - began))
        print(f"round {r + 1}: photo-fed {rates['photo_fed'][-1]:.2f} images/s, ready batches {rates['ready'][-1]:.2f}",
              flush=True)
    fed_rate, ready_rate = (float(np.median(rates[k])) for k in ("photo_fed", "ready"))
    return print_result("train_throughput", f"head={args.head} precision={args.precision} unfreeze="
                        f"{'+'.join(args.unfreeze) or '-'} batch={args.batch_size} backend={keras.backend.backend()}: "
                        f"photo-fed {fed_rate:.2f} images/s, ready batches {ready_rate:.2f}, ratio "
                        f"{fed_rate / ready_rate:.3f}; {len(photos)} photos")


if __name__ == "__main__":
    sys.exit(main())
