"""Train the colorizer on one GPU (or a CPU) without Ray, for a time budget: colorize_core.training's recipe,
the same as jobs.train's. For a workstation GPU, or a GPU machine lent for minutes (JAX, no TensorFlow).

    KERAS_BACKEND=jax python -m jobs.train_gpu --input ../shared/datasets --input-list runs/keys/train.txt \\
        --val-list runs/keys/val.txt --head classification --precision bfloat16 --budget 540 --out runs/cls-1
    python -m jobs.train_gpu --out runs/cls-1 --export models/cls-1.keras      # here: the colorizer file

Photos are decoded once into memory (short side at most 256); background threads make augmented batches from
them (training.examples_from_images) while the accelerator trains. The learning rate decays (cosine) over the
budget. Every --checkpoint-every seconds and at the end, OUT gets what training changed, small enough to come
back from a lent machine: decoder.npz (float32), encoder_BLOCK.npz for unfrozen blocks (float16), and run.json
(recipe, colour classes, the training curve, the val figures at each checkpoint). --resume-from a run folder
goes on from its weights. --export builds the .keras file from a run folder, its encoder from --init-model.
"""
import argparse
import json
import os
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from jobs import add_input_flags, add_recipe_flags, add_validation_flags, settings_from_environment
from colorize_core import runtime, training
from colorize_core.model_file import file_sha256
from colorize_core.storage import Location, select_keys

MAX_SIDE = 256  # photos are kept in memory at this short side: crops of 50-100% of it are resized to 224


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_flags(p, "folder or s3://bucket/prefix of colour photographs", required=False)
    add_validation_flags(p, limit=200)
    p.add_argument("--out", type=Path, required=True, help="the run folder: weights, run.json")
    p.add_argument("--budget", type=float, default=540, help="seconds of training, data loading excluded")
    p.add_argument("--checkpoint-every", type=float, default=60, help="seconds between checkpoints (and validations)")
    p.add_argument("--resume-from", type=Path, help="a run folder to go on from (its recipe and weights)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads decoding and augmenting photos")
    p.add_argument("--seed", type=int, default=0)
    add_recipe_flags(p, batch_size=64, learning_rate=1e-3)
    p.add_argument("--export", type=Path, metavar="MODEL.keras", help="build the colorizer file from the run in --out")
    p.add_argument("--chroma-gain", type=float, help="with --export: the default chroma gain stored in the file")
    args = settings_from_environment(p).parse_args(argv)
    if not args.export and not args.input:
        p.error("--input is required to train (or give --export to build a model file from a run)")
    return args


def load_photos(source: Location, keys: list[str], threads: int) -> list[np.ndarray]:
    """Every readable photo of `keys`, decoded once, short side at most MAX_SIDE."""
    with ThreadPoolExecutor(threads) as pool:
        images = list(pool.map(lambda key: training.decode_photo(source, key, MAX_SIDE), keys))
    return [image for image in images if image is not None]


class BatchMaker:
    """Background threads filling a queue with augmented batches drawn at random from `images`."""

    def __init__(self, images: list[np.ndarray], batch_size: int, threads: int, seed: int):
        self.batches: queue.Queue = queue.Queue(maxsize=2 * threads)
        self.stopped = threading.Event()
        for i in range(threads):
            threading.Thread(target=self._fill, args=(images, batch_size, seed + i), daemon=True).start()

    def _fill(self, images, batch_size, seed):
        rng = np.random.default_rng(seed)
        while not self.stopped.is_set():
            batch = training.examples_from_images([images[i] for i in rng.integers(0, len(images), batch_size)], rng)
            while not self.stopped.is_set():
                try:
                    self.batches.put(batch, timeout=1)
                    break
                except queue.Full:
                    continue

    def next(self) -> dict[str, np.ndarray]:
        return self.batches.get()

    def stop(self) -> None:
        self.stopped.set()


def save_run(out: Path, model, recipe: training.Recipe, run: dict) -> None:
    """The weights training changed and run.json; each file written whole, then renamed (a cut-off run keeps
    its last complete checkpoint)."""
    from colorize_core.model import decoder_layers

    def save_npz(name: str, arrays: dict) -> None:
        np.savez(out / f".{name}.tmp.npz", **arrays)
        os.replace(out / f".{name}.tmp.npz", out / name)

    save_npz("decoder.npz", {f"{i}/{j}": w for i, layer in enumerate(decoder_layers(model))
                             for j, w in enumerate(layer.get_weights())})
    for block in recipe.unfreeze:  # float16: a block of VGG16 is 7 M weights; each file stays under 16 MiB
        save_npz(f"encoder_{block}.npz", {f"{layer.name}/{j}": w.astype(np.float16)
                                          for layer in model.get_layer("encoder").layers if layer.name.startswith(block + "_")
                                          for j, w in enumerate(layer.get_weights())})
    (out / ".run.json.tmp").write_text(json.dumps(run, indent=1))
    os.replace(out / ".run.json.tmp", out / "run.json")


def load_run(folder: Path, model) -> None:
    """Set `model`'s decoder, and any unfrozen encoder blocks, from a run folder (save_run's files)."""
    from colorize_core.model import decoder_layers

    decoder = np.load(folder / "decoder.npz")
    for i, layer in enumerate(decoder_layers(model)):
        layer.set_weights([decoder[f"{i}/{j}"] for j in range(len(layer.get_weights()))])
    for path in folder.glob("encoder_block*.npz"):
        blocks = np.load(path)
        for layer in model.get_layer("encoder").layers:
            if f"{layer.name}/0" in blocks:
                layer.set_weights([blocks[f"{layer.name}/{j}"].astype(np.float32) for j in range(len(layer.get_weights()))])


def model_of_run(run: dict, init_model: str, precision: str = "float32"):
    """The colorizer a run folder's files belong on: --init-model's, or a new head with the run's colour classes."""
    from colorize_core import colour_classes
    from colorize_core.model import with_head
    from colorize_core.model_file import load_colorizer

    classes = run["classes"] and colour_classes.ColourClasses(np.array(run["classes"]["centres"], np.float32),
                                                              np.array(run["classes"]["prior"], np.float32))
    return with_head(load_colorizer(init_model, precision), run["recipe"]["head"], classes)


def export(args: argparse.Namespace) -> None:
    """A run folder -> a colorizer .keras file with the run's default temperature and the given chroma gain."""
    from colorize_core.model import with_defaults

    run = json.loads((args.out / "run.json").read_text())
    if file_sha256(args.init_model) != run["init_model_sha256"]:
        raise SystemExit(f"--init-model {args.init_model} is not the model the run started from (sha256 "
                         f"{run['init_model_sha256'][:12]}): its encoder would not match the trained decoder")
    model = model_of_run(run, args.init_model)
    load_run(args.out, model)
    model = with_defaults(model, run["recipe"]["temperature"] if run["recipe"]["head"] == "classification" else None,
                          args.chroma_gain)
    args.export.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.export)
    print(f"wrote {args.export} (sha256 {file_sha256(args.export)}) from {args.out}")


def train(args: argparse.Namespace) -> dict:
    import cv2
    import keras
    from keras import ops

    from colorize_core.model import head_of, training_model
    from colorize_core.model_file import load_colorizer

    cv2.setNumThreads(1)  # parallel over photos (threads), not inside each small OpenCV call
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    source = Location(args.input, args.s3_endpoint)
    keys = select_keys(source, args.split, args.input_list, args.limit)
    val_keys = select_keys(source, args.val_split, args.val_list)[: args.val_limit] if (args.val_split or args.val_list) else []
    if set(val_keys) & set(keys):
        raise SystemExit("the validation photos overlap the training photos: validation must be held out")
    images = load_photos(source, keys, args.threads)
    if not images:
        raise SystemExit(f"no readable photos under {args.input}")
    val_batches = [training.validation_examples({"key": np.array(val_keys[i:i + 50])}, source)
                   for i in range(0, len(val_keys), 50)]
    print(f"{len(images)} training photos, {len(val_keys)} validation photos loaded in "
          f"{time.monotonic() - started:.0f} s; backend {keras.backend.backend()}", flush=True)

    previous = json.loads((args.resume_from / "run.json").read_text()) if args.resume_from else None
    recipe = training.Recipe(**{**previous["recipe"], "unfreeze": tuple(previous["recipe"]["unfreeze"])}) \
        if previous else training.Recipe.from_args(args)
    keras.utils.set_random_seed(args.seed)
    # New layers (a new head) compute in the recipe's precision too; load_colorizer sets it on loaded ones.
    keras.config.set_dtype_policy({"float32": "float32", "bfloat16": "mixed_bfloat16"}[recipe.precision])
    if previous:
        model = model_of_run(previous, args.init_model, recipe.precision)
        load_run(args.resume_from, model)
        mse_weights = previous.get("mse_weights")
    else:
        init = load_colorizer(args.init_model, recipe.precision)
        rng = np.random.default_rng(args.seed)
        sample = [images[i] for i in rng.permutation(len(images))[: training.CLASS_SAMPLE]]
        targets = [training.examples_from_images(sample, rng)["ab"]] if training.needs_targets(init, recipe) else []
        model, mse_weights = training.start_model(init, recipe, targets)
    training.set_trainable(model, recipe.unfreeze)
    trainer = training_model(model)
    loss_fn = training.loss_function(recipe, model, mse_weights)
    optimizer = training.optimizer_for(recipe, model)
    trainer.compile(optimizer=optimizer, loss=lambda y, p: ops.mean(loss_fn(y, p)), jit_compile="auto")
    classes = None
    if head_of(model) == "classification":
        annealed = model.get_layer("annealed_mean")
        classes = {"centres": annealed.centres.tolist(), "prior": annealed.prior.tolist()}
    run = {"recipe": recipe.to_json(), "classes": classes, "mse_weights": mse_weights,
           "init_model": os.path.abspath(args.init_model), "init_model_sha256": file_sha256(args.init_model),
           "backend": keras.backend.backend(), "train_photos": len(images), "val_photos": len(val_keys),
           "budget_s": args.budget, "steps": 0, "examples": 0, "history": list(previous["history"]) if previous else []}
    if previous:
        run["resumed_from"] = str(args.resume_from)

    validating = [0.0]  # seconds spent validating, left out of the training speed

    def checkpoint(losses: list[float], seconds: float) -> None:
        figures = {"step": run["steps"], "seconds": round(seconds, 1), "train_loss": float(np.mean(losses or [np.nan])),
                   "examples_per_s": run["examples"] / max(seconds - validating[0], 1e-9)}
        if val_batches:
            began = time.monotonic()
            figures.update(training.validate(model.predict_on_batch, val_batches, loss_fn, trainer.predict_on_batch))
            validating[0] += time.monotonic() - began
        run["history"].append(figures)
        # The checkpoint with the best validation CIEDE2000 is kept beside the last (RUN/best/, the same run
        # folder format: `--out RUN/best --export` makes its model file): the best is often an early one.
        best = run.get("best")
        if "val_ciede2000" in figures and (best is None or figures["val_ciede2000"] < best["val_ciede2000"]):
            run["best"] = {k: figures[k] for k in ("step", "seconds", "val_ciede2000")}
            (args.out / "best").mkdir(exist_ok=True)
            save_run(args.out / "best", model, recipe, run)
        save_run(args.out, model, recipe, run)
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}, flush=True)

    batches = BatchMaker(images, recipe.batch_size, args.threads, args.seed)
    start = time.monotonic()
    next_checkpoint, losses = start + args.checkpoint_every, []
    try:
        while (now := time.monotonic()) < start + args.budget:
            done = (now - start) / args.budget
            optimizer.learning_rate.assign(recipe.learning_rate * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * done))))
            batch = batches.next()
            losses.append(float(np.asarray(trainer.train_on_batch(batch["L"], batch["ab"]))))
            run["steps"] += 1
            run["examples"] += len(batch["L"])
            if time.monotonic() >= next_checkpoint:
                checkpoint(losses, time.monotonic() - start)
                next_checkpoint, losses = time.monotonic() + args.checkpoint_every, []
        checkpoint(losses, time.monotonic() - start)
    finally:
        batches.stop()
    return run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime.prepare_environment()  # no Ray here; TensorFlow's start-up chatter off
    if args.export:
        export(args)
        return 0
    run = train(args)
    last, best = run["history"][-1], run.get("best")
    print(f"trained {run['steps']} steps ({last['examples_per_s']:.0f} examples/s); run folder {args.out}; "
          f"build the model file with: python -m jobs.train_gpu --out {args.out} --export MODEL.keras")
    if best:
        print(f"best validation CIEDE2000 {best['val_ciede2000']:.3f} at step {best['step']} ({best['seconds']} s): "
              f"python -m jobs.train_gpu --out {args.out / 'best'} --export MODEL.keras")
    return 0


if __name__ == "__main__":
    sys.exit(main())
