"""The training recipe, once: the recipes and the portfolio, the photos stage (the examples themselves are made
in the training step: augment.py), the colour classes, the model to train, its loss, the learning-rate
schedule, and validation. Two launchers run it: jobs/train.py on Ray Train (many workers, checkpoints and
resume) and jobs/train_gpu.py in one process on a GPU or an AMX CPU (colorize_core/trainer.py; JAX or TensorFlow).

Keras 3's `fit` fails under TensorFlow's MultiWorkerMirroredStrategy (keras-team/keras#20585), so the Ray
Train step is written here: model and optimizer built in the strategy's scope, a tf.function step run on
every replica with the loss averaged over the global batch.
"""
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable

import cv2
import numpy as np

from colorize_core import augment, codec, colour_classes, lab, metrics
from colorize_core.batches import columns
from colorize_core.model_file import Head
from colorize_core.storage import Location

TARGET = augment.TARGET  # the loss is taken at 56x56: colour is smooth, and it is 16x cheaper than 224x224
CLASS_SAMPLE = 1000  # photos whose targets give the colour classes and their prior
ENCODER_LR_SCALE = 0.1  # Recipe.encoder_lr_scale's default


@dataclass(frozen=True)
class Recipe:
    """How a model is trained, whichever launcher runs it; the flags of both (jobs.add_recipe_flags)."""

    head: Head = Head.REGRESSION
    loss: str = "mse"  # regression head: "mse" (the thesis's) or "rebalanced"
    mix: float = 0.5  # rebalancing: weight 1 / ((1 - mix) p + mix / Q); 1 = no rebalancing
    unfreeze: tuple[str, ...] = ()  # encoder blocks trained too, e.g. ("block4", "block5")
    learning_rate: float = 1e-4
    batch_size: int = 8
    precision: str = "float32"  # or "bfloat16" (mixed: float32 weights)
    temperature: float | None = None  # default annealed-mean temperature stored in the model (classification)
    # The unfrozen ImageNet blocks learn at this share of the decoder's rate: they are trained already, and the
    # decoder's rate (1e-3 on the GPU) would undo what ImageNet taught them.
    encoder_lr_scale: float = ENCODER_LR_SCALE

    @classmethod
    def from_args(cls, args) -> "Recipe":
        return cls(Head(args.head), args.loss, args.mix, tuple(args.unfreeze), args.learning_rate, args.batch_size,
                   args.precision, args.default_temperature, args.encoder_lr_scale)

    def to_json(self) -> dict:
        return {**asdict(self), "unfreeze": list(self.unfreeze)}

    @classmethod
    def from_json(cls, fields: dict) -> "Recipe":
        """The recipe a run.json or a Ray Train config holds (to_json's)."""
        return cls(**{**fields, "head": Head(fields["head"]), "unfreeze": tuple(fields["unfreeze"])})


# The portfolio a prepared run trains (tools/gpu_train.sh, tools/cpu_train.sh): what differs between its recipes.
# The launcher's flags give the rest (unfrozen blocks, learning rate, batch size, precision).
PORTFOLIO = {
    # The regression control: the thesis's MSE, the most accurate model measured so far (12.25 CIEDE2000).
    "regression": {"head": Head.REGRESSION, "loss": "mse"},
    # Classification with more rebalancing than the default 0.5 (mix is the uniform share: 1 = none): vivid, but
    # on the CPU its colours grew as strong as the truth's and more often wrong after 10 minutes.
    "classification-mix0.25": {"head": Head.CLASSIFICATION, "mix": 0.25},
    # The other side of 0.5: less rebalancing, the best classification run measured (12.00 CIEDE2000 at 610 s
    # on an AMX CPU, issue 32), with blue skies and green trees where the shipped model is brown.
    "classification-mix0.75": {"head": Head.CLASSIFICATION, "mix": 0.75},
}


def portfolio(names: list[str], base: Recipe) -> dict[str, Recipe]:
    """The named PORTFOLIO recipes, each `base` (the launcher's flags) with the recipe's own fields."""
    from dataclasses import replace

    unknown = [n for n in names if n not in PORTFOLIO]
    if unknown:
        raise ValueError(f"unknown recipe {', '.join(unknown)}: choose from {', '.join(PORTFOLIO)}")
    return {name: replace(base, **PORTFOLIO[name]) for name in names}


def keys_digest(keys: list[str]) -> str:
    """sha256 of a list of keys: names a cache of the photos they decode to."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def example(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 224x224 BGR crop -> (its L (224, 224, 1) in [0, 100], its ab / 128 at 56x56): the network's input and target."""
    Lab = lab.bgr_to_lab(np.ascontiguousarray(crop))
    return Lab[..., :1], cv2.resize(Lab[..., 1:], (TARGET, TARGET), interpolation=cv2.INTER_AREA) / lab.AB_SCALE


def decode_photo(source: Location, key: str) -> np.ndarray | None:
    """A training photo, BGR; None if unreadable."""
    try:
        return codec.decode(source.read(key))[0]
    except (codec.ImageError, OSError):
        return None


def training_photos(batch: dict[str, np.ndarray], source: Location) -> dict[str, np.ndarray]:
    """CPU stage (Ray Data): photo keys -> the photos as the training step takes them (augment.to_canvas): uint8
    canvases and their sizes; the step makes the examples. Unreadable photos are dropped."""
    canvases = [augment.to_canvas(image) for image in (decode_photo(source, key) for key in batch["key"]) if image is not None]
    return {"photos": np.array([c for c, _ in canvases], np.uint8).reshape(-1, augment.CANVAS, augment.CANVAS, 3),
            "sizes": np.array([size for _, size in canvases], np.int32).reshape(-1, 2)}


def targets_of(photos: np.ndarray, sizes: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """ab / 128 targets of random crops of the photos, 64 at a time: for the colour classes and rebalancing."""
    return [np.asarray(augment.examples(photos[i:i + 64], sizes[i:i + 64], augment.random_draws(rng, len(sizes[i:i + 64])))[1])
            for i in range(0, len(sizes), 64)]


def learning_rate_at(recipe: "Recipe", done: float) -> float:
    """The schedule, the same for every launcher: cosine from the recipe's rate down to 1% of it, `done` the
    share of the run behind (of its budget, or of its epochs)."""
    return recipe.learning_rate * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * min(1.0, done))))


@dataclass(frozen=True)
class ValidationExample:
    """A validation photo's centre crop: its L, its ab / 128 at 56x56, and itself as RGB 0..255 (the truth)."""

    L: np.ndarray
    ab: np.ndarray
    truth: np.ndarray


VALIDATION_SHAPES = {"L": (lab.MODEL_SIZE, lab.MODEL_SIZE, 1), "ab": (TARGET, TARGET, 2),
                     "truth": (lab.MODEL_SIZE, lab.MODEL_SIZE, 3)}


def validation_examples(batch: dict[str, np.ndarray], source: Location) -> dict[str, np.ndarray]:
    """CPU stage: photo keys -> the same centre 224x224 crop every epoch (lab.centre_crop): L, ab / 128 at 56x56
    and the crop itself as RGB 0..255 (`truth`), to measure the colorized crop against."""
    rows = []
    for key in batch["key"]:
        image = decode_photo(source, key)
        if image is not None:
            crop = lab.centre_crop(image, lab.MODEL_SIZE)
            rows.append(ValidationExample(*example(crop), metrics.bgr_to_rgb255(crop)))
    return columns(rows, ValidationExample, stacked=VALIDATION_SHAPES)


def colour_classes_of(ab_batches: list[np.ndarray]) -> colour_classes.ColourClasses:
    """The classification head's bins and prior from training targets (ab / 128 batches)."""
    return colour_classes.classes_from_data(np.concatenate([b.reshape(-1, 2) for b in ab_batches]) * lab.AB_SCALE)


def mse_rebalancing(recipe: Recipe, ab_sample: np.ndarray) -> list[float] | None:
    """The regression head's rebalancing weights from a sample of training targets, where the recipe asks."""
    from colorize_core import losses

    if recipe.head != Head.REGRESSION or recipe.loss != "rebalanced":
        return None
    return losses.rebalancing_weights(ab_sample, recipe.mix).tolist()


def loss_function(recipe: Recipe, model, mse_weights: list[float] | None = None):
    """The recipe's loss on the training model's output (model.training_model): per example, unreduced.

    regression: "mse", or "rebalanced" (with `mse_weights`, from mse_rebalancing); classification: cross-entropy
    over the model's own colour classes, rebalanced by their prior with `mix`."""
    from colorize_core import losses
    from colorize_core.model import head_of

    if head_of(model) == Head.CLASSIFICATION:
        annealed = model.get_layer("annealed_mean")
        classes = colour_classes.ColourClasses(annealed.centres, annealed.prior)
        return losses.RebalancedCrossEntropy(classes.centres, colour_classes.rebalancing_weights(classes, recipe.mix),
                                             reduction=None)
    if recipe.loss == "rebalanced":
        return losses.RebalancedMSE(np.asarray(mse_weights, np.float32), reduction=None)
    return losses.mse


def needs_targets(init, recipe: Recipe) -> bool:
    """Whether starting the recipe from `init` needs training targets: for new colour classes (a classification
    head started from a regression model) or for the regression head's rebalancing weights."""
    from colorize_core.model import head_of

    new_classes = recipe.head == Head.CLASSIFICATION and head_of(init) != Head.CLASSIFICATION
    return new_classes or (recipe.head == Head.REGRESSION and recipe.loss == "rebalanced")


def start_model(init, recipe: Recipe, targets: list[np.ndarray]):
    """The colorizer a run starts from, and the regression head's rebalancing weights (or None).

    `init` (a loaded colorizer) if its head is the recipe's; else a new model of the recipe's head, with
    `init`'s encoder and as much of its decoder as fits (model.transplant), and colour classes from `targets`
    (ab / 128 batches of training crops)."""
    from colorize_core.model import with_defaults, with_head

    # Targets are made for a classification head only where `init` lacks one (needs_targets).
    classes = colour_classes_of(targets) if recipe.head == Head.CLASSIFICATION and targets else None
    model = with_head(init, recipe.head, classes)
    if recipe.head == Head.CLASSIFICATION and recipe.temperature is not None:
        model = with_defaults(model, temperature=recipe.temperature)
    return model, mse_rebalancing(recipe, np.concatenate(targets)) if targets else None


def set_trainable(model, unfreeze) -> None:
    """Encoder frozen (the ImageNet features, as the thesis trains), except the blocks named in `unfreeze`."""
    for layer in model.get_layer("encoder").layers:
        layer.trainable = layer.name.split("_")[0] in unfreeze


def optimizer_for(recipe: Recipe, model):
    """Adam at the recipe's learning rate, the encoder's unfrozen blocks at `encoder_lr_scale` of it. Keras 3 has
    no parameter groups; Adam's step does not change with the gradient's scale, so the rate itself is scaled, per
    variable, in the update step (the same on TensorFlow and JAX)."""
    import keras

    class ScaledAdam(keras.optimizers.Adam):
        def __init__(self, scaled: set[str], scale: float, **kwargs):
            super().__init__(**kwargs)
            self.scaled, self.scale, self.scaled_indices = scaled, scale, set()

        def build(self, variables):
            super().build(variables)
            # By index: the update step may see the backend's own variable (TensorFlow's), not the Keras one.
            self.scaled_indices = {i for i, v in enumerate(variables) if v.path in self.scaled}

        def update_step(self, gradient, variable, learning_rate):
            if self._get_variable_index(variable) in self.scaled_indices:
                learning_rate = learning_rate * self.scale
            super().update_step(gradient, variable, learning_rate)

    encoder = {v.path for layer in model.get_layer("encoder").layers for v in layer.weights}
    return ScaledAdam(encoder, recipe.encoder_lr_scale, learning_rate=recipe.learning_rate)


def _colour_figures(L: np.ndarray, ab: np.ndarray, truth: np.ndarray, skin: np.ndarray | None) -> dict[str, float]:
    """metrics.compare's figures of a crop colorized as the colorize job does (lab.recombine)."""
    return metrics.compare(truth, metrics.bgr_to_rgb255(lab.recombine(L, ab)), skin)


def validate(predict: Callable[[np.ndarray], np.ndarray], batches: list[dict[str, np.ndarray]], loss_fn,
             predict_for_loss: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, float]:
    """The colorizer (`predict`: L batch -> ab / 128 batch) on the validation crops: its loss (as in training,
    on `predict_for_loss`'s output where given, else on ab pooled to 56x56), and PSNR, CIEDE2000 and CF of the
    colorized crop beside the grey baseline's (a = b = 0). The grey figures do not depend on the model: they
    are measured once and kept in each batch ("grey"); the images are measured in parallel threads."""
    from concurrent.futures import ThreadPoolExecutor

    losses, rows = [], []
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for batch in batches:
            ab = np.asarray(predict(batch["L"]), np.float32)
            if predict_for_loss is not None:
                for_loss = predict_for_loss(batch["L"])
            else:
                pool_size = ab.shape[1] // TARGET
                for_loss = ab.reshape(len(ab), TARGET, pool_size, TARGET, pool_size, 2).mean((2, 4))
            losses.extend(np.asarray(loss_fn(batch["ab"], for_loss)).ravel().tolist())
            Ls = list(batch["L"][..., 0])
            if "grey" not in batch:  # the faces' skin too: found once, in the truth
                batch["skin"] = list(pool.map(metrics.face_skin, batch["truth"]))
                batch["grey"] = list(pool.map(_colour_figures, Ls, [np.zeros_like(a) for a in ab], batch["truth"],
                                              batch["skin"]))
            colour = pool.map(_colour_figures, Ls, ab, batch["truth"], batch["skin"])
            for c, g, truth in zip(colour, batch["grey"], batch["truth"]):
                rows.append({**{f"model_{m}": v for m, v in c.items()}, **{f"grey_{m}": v for m, v in g.items()},
                             "truth_cf": metrics.colourfulness(truth)})
    model, grey = metrics.summarize(rows, "model_"), metrics.summarize(rows, "grey_")
    return {"val_loss": float(np.mean(losses)), "val_psnr": model["psnr"], "val_ciede2000": model["ciede2000"],
            "val_cf": model["cf"], "val_dcf": model["dcf"], "val_green_recall": model["green_recall"],
            "val_blue_recall": model["blue_recall"], "val_harm_rate": model["harm_rate"],
            "val_face_blotch": model["face_blotch"], "val_grey_psnr": grey["psnr"],
            "val_grey_ciede2000": grey["ciede2000"], "val_truth_cf": model["truth_cf"], "val_images": len(rows)}


def split_validation(keys: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train keys, validation keys): `fraction` of `keys` held out (at least one where there are two or more),
    chosen by a hash of each key so that a rerun or a resumed run holds out the same photos."""
    count = 0 if fraction <= 0 or len(keys) < 2 else max(1, round(fraction * len(keys)))
    held_out = set(sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())[:count])
    return [k for k in keys if k not in held_out], [k for k in keys if k in held_out]


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: builds (or resumes) the colorizer under MultiWorkerMirroredStrategy and trains it."""
    import ray.train
    import tensorflow as tf

    from colorize_core.model import training_model
    from colorize_core.model import load_colorizer

    context = ray.train.get_context()
    recipe = Recipe.from_json(config["recipe"])
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    global_batch = recipe.batch_size * context.get_world_size()
    checkpoint = ray.train.get_checkpoint()
    with strategy.scope():
        if checkpoint:
            with checkpoint.as_directory() as folder:
                colorizer = load_colorizer(os.path.join(folder, "colorizer.keras"), recipe.precision)
                state = json.load(open(os.path.join(folder, "state.json")))
                optimizer_variables = list(np.load(os.path.join(folder, "optimizer.npz")).values())
        else:
            runs = Location(config["runs"], config.get("endpoint"))  # the starting model, put there by the driver
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "init.keras")
                open(path, "wb").write(runs.read(config["init_key"]))
                colorizer = load_colorizer(path, recipe.precision)
            state, optimizer_variables = {"epoch": 0, "history": []}, None
        set_trainable(colorizer, recipe.unfreeze)
        trainer = training_model(colorizer)
        fed = augment.augmenting_trainer(trainer)
        optimizer = optimizer_for(recipe, colorizer)
        optimizer.build(trainer.trainable_variables)
        if optimizer_variables:
            for variable, value in zip(optimizer.variables, optimizer_variables):
                variable.assign(value)
    state["starts"] = state.get("starts", []) + [state["epoch"]]  # where each (re)start of the workers began
    loss_fn = loss_function(recipe, colorizer, config.get("mse_weights"))
    val_batches = None  # rank 0 validates on the whole "val" dataset, kept in memory after the first epoch

    @tf.function
    def step(photos, sizes, draws):
        def replica(photos, sizes, draws):
            with tf.GradientTape() as tape:
                out = fed([photos, sizes, draws], training=True)  # the augmentation runs here, in the step
                loss = tf.nn.compute_average_loss(loss_fn(*augment.split_output(out)), global_batch_size=global_batch)
            optimizer.apply_gradients(zip(tape.gradient(loss, trainer.trainable_variables), trainer.trainable_variables))
            return loss
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica, args=(photos, sizes, draws)), axis=None)

    for epoch in range(state["epoch"], config["epochs"]):
        optimizer.learning_rate.assign(learning_rate_at(recipe, epoch / config["epochs"]))
        rng = np.random.default_rng([config.get("seed", 0), context.get_world_rank(), epoch])  # resumable draws
        start, total, batches = time.perf_counter(), 0.0, 0
        for batch in ray.train.get_dataset_shard("train").iter_batches(batch_size=recipe.batch_size, batch_format="numpy"):
            total += float(step(batch["photos"], batch["sizes"], augment.random_draws(rng, len(batch["sizes"]))))
            batches += 1
        figures = {"epoch": epoch + 1, "train_loss": total / max(1, batches), "seconds": time.perf_counter() - start}
        if context.get_world_rank() == 0 and config["validate"]:
            if val_batches is None:
                val_batches = list(ray.train.get_dataset_shard("val").iter_batches(batch_size=recipe.batch_size,
                                                                                     batch_format="numpy"))
            # Direct calls, not predict_on_batch: Keras's predict under the strategy would all-gather across
            # workers, and only rank 0 is here.
            figures.update(validate(lambda L: colorizer(L, training=False), val_batches, loss_fn,
                                    lambda L: trainer(L, training=False)))
        state = {**state, "epoch": epoch + 1, "history": state["history"] + [figures]}
        with tempfile.TemporaryDirectory() as folder:
            if context.get_world_rank() == 0:  # one copy of the weights: every replica holds the same
                colorizer.save(os.path.join(folder, "colorizer.keras"))
                np.savez(os.path.join(folder, "optimizer.npz"), *[np.asarray(v) for v in optimizer.variables])
                json.dump(state, open(os.path.join(folder, "state.json"), "w"))
            ray.train.report(figures, checkpoint=ray.train.Checkpoint.from_directory(folder)
                             if context.get_world_rank() == 0 else None)
