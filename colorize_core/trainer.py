"""The training loop of one process (a GPU, or a CPU with AMX), for a time budget, over a portfolio of recipes.

The photos are decoded once into uint8 canvases (augment.PhotoSet); each step gets a random batch of them and
the augmentation runs inside Keras's compiled step (augment.augmenting_trainer). The learning rate decays
(cosine) over each recipe's share of the budget. Every `validate_every` seconds and at the end, the recipe's
run folder gets what training changed, small enough to come back from a lent machine: decoder.npz (float32),
encoder_BLOCK.npz for unfrozen blocks (float16), and run.json (recipe, colour classes, the training curve, the
val figures); the checkpoint with the best validation CIEDE2000 goes to best/ in the same format, and the one
nearest the rule for shipping a model (metrics.rule_shortfall: the most accurate is often muted) to closest/. A run folder
resumes (`resume`) and exports (`export`) whichever launcher made it.
"""
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colorize_core import augment, metrics, training
from colorize_core.model_file import Head, file_sha256
from colorize_core.storage import Location


@dataclass
class PhotoSet:
    """Training photos decoded once: uint8 RGB canvases (N, CANVAS, CANVAS, 3) and their (height, width) (N, 2)."""

    pixels: np.ndarray
    sizes: np.ndarray

    @classmethod
    def load(cls, source: Location, keys: list[str], threads: int, cache: Path | None = None) -> "PhotoSet":
        """Every readable photo of `keys`; with `cache`, kept there as .npy files and memory-mapped by a later
        run with the same keys (2 cores then spend no time decoding)."""
        tag = training.keys_digest([f"{source.root} {augment.CANVAS} {augment.PHOTO_SIDE}", *keys])[:16]
        if cache and (cache / f"{tag}.sizes.npy").is_file():
            return cls(np.load(cache / f"{tag}.pixels.npy", mmap_mode="r"), np.load(cache / f"{tag}.sizes.npy"))

        def canvas(key: str):
            image = training.decode_photo(source, key)
            return None if image is None else augment.to_canvas(image)

        with ThreadPoolExecutor(threads) as pool:
            photos = [p for p in pool.map(canvas, keys) if p is not None]
        pixels = np.stack([p for p, _ in photos]) if photos else np.zeros((0, augment.CANVAS, augment.CANVAS, 3), np.uint8)
        photo_set = cls(pixels, np.array([size for _, size in photos], np.int32).reshape(-1, 2))
        if cache and photos:
            cache.mkdir(parents=True, exist_ok=True)
            for name, array in (("pixels", photo_set.pixels), ("sizes", photo_set.sizes)):  # sizes last: the marker
                np.save(cache / f".{tag}.{name}.tmp.npy", array)
                os.replace(cache / f".{tag}.{name}.tmp.npy", cache / f"{tag}.{name}.npy")
        return photo_set

    def __len__(self) -> int:
        return len(self.sizes)

    def batch(self, rng: np.random.Generator, size: int) -> list[np.ndarray]:
        """A random batch, augmenting_trainer's inputs: [pixels (size, CANVAS, CANVAS, 3), sizes (size, 2), the
        crops' random draws (size, 4)]; indices sorted (a memory map reads forward)."""
        index = np.sort(rng.integers(0, len(self), size))
        return [self.pixels[index], self.sizes[index], augment.random_draws(rng, size)]


class Prefetch:
    """One background thread gathering the next batches while the accelerator trains."""

    def __init__(self, photos: PhotoSet, batch_size: int, seed: int, depth: int = 3):
        import queue

        self.batches, self.stopped = queue.Queue(maxsize=depth), threading.Event()
        rng = np.random.default_rng(seed)

        def fill():
            while not self.stopped.is_set():
                batch = photos.batch(rng, batch_size)
                while not self.stopped.is_set():
                    try:
                        self.batches.put(batch, timeout=1)
                        break
                    except queue.Full:
                        continue

        threading.Thread(target=fill, daemon=True).start()

    def next(self) -> list[np.ndarray]:
        return self.batches.get()

    def stop(self) -> None:
        self.stopped.set()


def save_run(out: Path, model, recipe: training.Recipe, run: dict) -> None:
    """The weights training changed and run.json; each file written whole, then renamed (a cut-off run keeps
    its last complete checkpoint)."""
    from colorize_core.model import decoder_layers

    out.mkdir(parents=True, exist_ok=True)

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
    from colorize_core.model import load_colorizer, with_head

    classes = run["classes"] and colour_classes.ColourClasses(np.array(run["classes"]["centres"], np.float32),
                                                              np.array(run["classes"]["prior"], np.float32))
    return with_head(load_colorizer(init_model, precision), run["recipe"]["head"], classes)


def export(folder: Path, init_model: str, path: Path, chroma_gain: float | None = None) -> None:
    """A run folder -> a colorizer .keras file with the run's default temperature and the given chroma gain."""
    from colorize_core.model import with_defaults

    run = json.loads((folder / "run.json").read_text())
    if file_sha256(init_model) != run["init_model_sha256"]:
        raise SystemExit(f"--init-model {init_model} is not the model the run started from (sha256 "
                         f"{run['init_model_sha256'][:12]}): its encoder would not match the trained decoder")
    model = model_of_run(run, init_model)
    load_run(folder, model)
    model = with_defaults(model, run["recipe"]["temperature"] if run["recipe"]["head"] == Head.CLASSIFICATION else None,
                          chroma_gain)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def run_record(recipe: training.Recipe, model, init_model: str, mse_weights: list[float] | None) -> dict:
    """What run.json says of every run, whichever launcher made it: the recipe, the colour classes (classification),
    the rebalancing weights and the model the run started from (its encoder and the frozen layers come from it)."""
    import keras

    from colorize_core.model import head_of

    classes = None
    if head_of(model) == Head.CLASSIFICATION:
        annealed = model.get_layer("annealed_mean")
        classes = {"centres": annealed.centres.tolist(), "prior": annealed.prior.tolist()}
    return {"recipe": recipe.to_json(), "classes": classes, "mse_weights": mse_weights,
            "init_model": os.path.abspath(init_model), "init_model_sha256": file_sha256(init_model),
            "backend": keras.backend.backend()}


def _start(recipe: training.Recipe, photos: PhotoSet, init_model: str, seed: int, previous: dict | None, resume: Path | None):
    """The model a recipe trains, and the regression head's rebalancing weights: from `resume`'s run folder,
    else from `init_model` (training.start_model; colour classes from a sample of the photos' targets)."""
    from colorize_core.model import load_colorizer

    if previous:
        model = model_of_run(previous, init_model, recipe.precision)
        load_run(resume, model)
        return model, previous.get("mse_weights")
    init = load_colorizer(init_model, recipe.precision)
    targets = []
    if training.needs_targets(init, recipe):
        rng = np.random.default_rng(seed)
        pixels, sizes, _ = photos.batch(rng, min(len(photos), training.CLASS_SAMPLE))
        targets = training.targets_of(pixels, sizes, rng)
    return training.start_model(init, recipe, targets)


def train_recipe(recipe: training.Recipe, photos: PhotoSet, val_batches: list, init_model: str, out: Path,
                 budget: float, validate_every: float, seed: int = 0, resume: Path | None = None,
                 log=print) -> dict:
    """Train one recipe for `budget` seconds (those of a resumed run included), writing its run folder `out`;
    a run resumed from `resume` takes that run's recipe."""
    import keras
    from keras import ops

    from colorize_core.model import DTYPE_POLICIES, training_model

    previous = json.loads((resume / "run.json").read_text()) if resume else None
    if previous:  # a resumed run goes on with its own recipe
        recipe = training.Recipe.from_json(previous["recipe"])
    keras.utils.set_random_seed(seed)
    # New layers (a new head) compute in the recipe's precision too; load_colorizer sets it on loaded ones.
    keras.config.set_dtype_policy(DTYPE_POLICIES[recipe.precision])
    model, mse_weights = _start(recipe, photos, init_model, seed, previous, resume)
    training.set_trainable(model, recipe.unfreeze)
    trainer = training_model(model)
    loss_fn = training.loss_function(recipe, model, mse_weights)
    optimizer = training.optimizer_for(recipe, model)
    fed = augment.augmenting_trainer(trainer)
    fed.compile(optimizer=optimizer, loss=lambda _, out: ops.mean(loss_fn(*augment.split_output(out))),
                jit_compile="auto")
    run = {**run_record(recipe, model, init_model, mse_weights), "train_photos": len(photos),
           "val_photos": sum(len(b["L"]) for b in val_batches), "budget_s": budget, "steps": 0, "examples": 0,
           "trained_s": 0.0, "validating_s": 0.0, "history": []}
    if previous:
        run.update({k: previous[k] for k in ("steps", "examples", "trained_s", "validating_s", "compile_s", "history", "best",
                                                 "closest")
                    if k in previous})
        run["resumed_from"] = str(resume)

    def checkpoint(losses: list[float]) -> None:
        figures = {"step": run["steps"], "seconds": round(run["trained_s"], 1),
                   "train_loss": float(np.mean(losses or [np.nan])),
                   "examples_per_s": run["examples"] / max(run["trained_s"], 1e-9)}
        if val_batches:
            began = time.monotonic()
            figures.update(training.validate(model.predict_on_batch, val_batches, loss_fn, trainer.predict_on_batch))
            run["validating_s"] += time.monotonic() - began
            figures["val_rule_shortfall"] = metrics.rule_shortfall(figures, "val_")
        run["history"].append(figures)
        for kept, figure in (("best", "val_ciede2000"), ("closest", "val_rule_shortfall")):
            if figure in figures and (run.get(kept) is None or figures[figure] < run[kept][figure]):
                run[kept] = {k: figures[k] for k in ("step", "seconds", figure)}
                save_run(out / kept, model, recipe, run)
        save_run(out, model, recipe, run)
        log({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()})

    batches = Prefetch(photos, recipe.batch_size, seed + run["steps"])  # a resumed run draws other batches
    losses, since_validation, first_step = [], 0.0, True
    try:
        while run["trained_s"] < budget:
            optimizer.learning_rate.assign(training.learning_rate_at(recipe, run["trained_s"] / budget))
            batch = batches.next()
            began = time.monotonic()
            losses.append(float(np.asarray(fed.train_on_batch(batch, np.zeros(len(batch[1]), np.float32)))))
            spent = time.monotonic() - began
            if first_step:  # it traces and compiles: not training time
                run["compile_s"], spent, first_step = run.get("compile_s", 0.0) + spent, 0.0, False
            run["trained_s"] += spent
            since_validation += spent
            run["steps"] += 1
            run["examples"] += len(batch[1])
            if since_validation >= validate_every:
                checkpoint(losses)
                losses, since_validation = [], 0.0
        if not run["history"] or run["history"][-1]["step"] != run["steps"]:
            checkpoint(losses)
    finally:
        batches.stop()
    run["finished"] = True
    save_run(out, model, recipe, run)
    return run


def train_portfolio(recipes: dict[str, training.Recipe], photos: PhotoSet, val_batches: list, init_model: str,
                    out: Path, budget: float, validate_every: float, seed: int = 0, resume: Path | None = None,
                    log=print) -> dict:
    """Each recipe in turn, `budget` shared equally, each in its own run folder OUT/NAME (best/ inside). A
    resumed portfolio goes on in each recipe's folder; finished recipes are kept. Writes OUT/summary.json:
    each recipe's best and closest checkpoints (step, seconds, val figures) and its last."""
    summary = {"budget_s": budget, "recipes": {}}
    for i, (name, recipe) in enumerate(recipes.items()):
        earlier = resume / name if resume and (resume / name / "run.json").is_file() else None
        if earlier and json.loads((earlier / "run.json").read_text()).get("finished"):
            run = json.loads((earlier / "run.json").read_text())
            if earlier != out / name:
                raise SystemExit(f"{earlier} is finished: resume into its own folder (--out {resume})")
        else:
            log(f"recipe {name}: {recipe.to_json()}")
            run = train_recipe(recipe, photos, val_batches, init_model, out / name, budget / len(recipes),
                               validate_every, seed + 1000 * i, earlier, log)
        kept = {k: run.get(k) and next(h for h in run["history"] if h["step"] == run[k]["step"]) for k in ("best", "closest")}
        summary["recipes"][name] = {"recipe": run["recipe"], "steps": run["steps"], "examples": run["examples"],
                                    "trained_s": round(run["trained_s"], 1), **kept, "last": run["history"][-1]}
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
