"""Training on Ray Train: the CPU stage that turns photos into (L, ab) examples, and the per-worker loop.

Keras 3's `fit` fails under TensorFlow's MultiWorkerMirroredStrategy (keras-team/keras#20585), so the
distributed step is written here, once: model and optimizer built in the strategy's scope, a tf.function
step run on every replica with the loss averaged over the global batch.
"""
import hashlib
import json
import os
import tempfile
import time
from typing import Callable

import cv2
import numpy as np

from colorize_core import codec, lab, metrics
from colorize_core.evaluation import centre_crop
from colorize_core.storage import Location

TARGET = 56  # the loss is taken at 56x56: colour is smooth, and it is 16x cheaper than 224x224


def _example(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 224x224 BGR crop -> (its L (224, 224, 1) in [0, 100], its ab / 128 at 56x56): the network's input and target."""
    Lab = lab.bgr_to_lab(np.ascontiguousarray(crop))
    return Lab[..., :1], cv2.resize(Lab[..., 1:], (TARGET, TARGET), interpolation=cv2.INTER_AREA) / lab.AB_SCALE


def _stack(examples: list, shape: tuple) -> np.ndarray:
    return np.array(examples, np.float32).reshape(-1, *shape)


def training_examples(batch: dict[str, np.ndarray], source: Location, scale: tuple[float, float] = (0.5, 1.0),
                      seed: int | None = None) -> dict[str, np.ndarray]:
    """CPU stage: photo keys -> random square crops (side a `scale` fraction of the short side), random flips,
    resized to 224: L (224, 224, 1) in [0, 100] and ab / 128 at 56x56. Unreadable photos are dropped."""
    rng = np.random.default_rng(seed)
    Ls, abs_ = [], []
    for key in batch["key"]:
        try:
            image, _ = codec.decode(source.read(key))
        except (codec.ImageError, OSError):
            continue
        h, w = image.shape[:2]
        side = max(1, int(min(h, w) * rng.uniform(*scale)))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = cv2.resize(image[top:top + side, left:left + side], (lab.MODEL_SIZE, lab.MODEL_SIZE),
                          interpolation=cv2.INTER_AREA)
        L, ab = _example(crop[:, ::-1] if rng.random() < 0.5 else crop)
        Ls.append(L), abs_.append(ab)
    return {"L": _stack(Ls, (lab.MODEL_SIZE, lab.MODEL_SIZE, 1)), "ab": _stack(abs_, (TARGET, TARGET, 2))}


def validation_examples(batch: dict[str, np.ndarray], source: Location) -> dict[str, np.ndarray]:
    """CPU stage: photo keys -> the same centre 224x224 crop every epoch (evaluation.centre_crop): L, ab / 128
    at 56x56 and the crop itself as RGB 0..255 (`truth`), to measure the colorized crop against."""
    Ls, abs_, truths = [], [], []
    for key in batch["key"]:
        try:
            image, _ = codec.decode(source.read(key))
        except (codec.ImageError, OSError):
            continue
        crop = centre_crop(image, lab.MODEL_SIZE)
        L, ab = _example(crop)
        Ls.append(L), abs_.append(ab), truths.append(metrics.bgr_to_rgb255(crop))
    size = (lab.MODEL_SIZE, lab.MODEL_SIZE)
    return {"L": _stack(Ls, (*size, 1)), "ab": _stack(abs_, (TARGET, TARGET, 2)), "truth": _stack(truths, (*size, 3))}


def validate(predict: Callable[[np.ndarray], np.ndarray], batches: list[dict[str, np.ndarray]], loss_fn
             ) -> dict[str, float]:
    """The colorizer (`predict`: L batch -> ab batch at 224) on the validation crops: its loss (as in training), and PSNR, CIEDE2000 and CF of the
    colorized crop (lab.recombine, as the colorize job does) beside the grey baseline's (a = b = 0)."""
    losses, rows = [], []
    for batch in batches:
        ab = np.asarray(predict(batch["L"]), np.float32)
        pooled = ab.reshape(len(ab), TARGET, lab.MODEL_SIZE // TARGET, TARGET, lab.MODEL_SIZE // TARGET, 2).mean((2, 4))
        losses.extend(np.asarray(loss_fn(batch["ab"], pooled)).ravel().tolist())
        for L, predicted, truth in zip(batch["L"][..., 0], ab, batch["truth"]):
            colour = metrics.compare(truth, metrics.bgr_to_rgb255(lab.recombine(L, predicted)))
            grey = metrics.compare(truth, metrics.bgr_to_rgb255(lab.recombine(L, np.zeros_like(predicted))))
            rows.append({**{f"model_{m}": v for m, v in colour.items()}, **{f"grey_{m}": v for m, v in grey.items()},
                         "truth_cf": metrics.colourfulness(truth)})
    model, grey = metrics.summarize(rows, "model_"), metrics.summarize(rows, "grey_")
    return {"val_loss": float(np.mean(losses)), "val_psnr": model["psnr"], "val_ciede2000": model["ciede2000"],
            "val_cf": model["cf"], "val_dcf": model["dcf"], "val_grey_psnr": grey["psnr"],
            "val_grey_ciede2000": grey["ciede2000"], "val_truth_cf": model["truth_cf"], "val_images": len(rows)}


def split_validation(keys: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train keys, validation keys): `fraction` of `keys` held out (at least one where there are two or more),
    chosen by a hash of each key so that a rerun or a resumed run holds out the same photos."""
    count = 0 if fraction <= 0 or len(keys) < 2 else max(1, round(fraction * len(keys)))
    held_out = set(sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())[:count])
    return [k for k in keys if k not in held_out], [k for k in keys if k in held_out]


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: builds (or resumes) the colorizer under MultiWorkerMirroredStrategy and trains it."""
    import keras
    import ray.train
    import tensorflow as tf

    from colorize_core import losses
    from colorize_core.model import load_colorizer

    context = ray.train.get_context()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    global_batch = config["batch_size"] * context.get_world_size()
    checkpoint = ray.train.get_checkpoint()
    with strategy.scope():
        if checkpoint:
            with checkpoint.as_directory() as folder:
                colorizer = load_colorizer(os.path.join(folder, "colorizer.keras"), config["precision"])
                state = json.load(open(os.path.join(folder, "state.json")))
                optimizer_variables = list(np.load(os.path.join(folder, "optimizer.npz")).values())
        else:
            colorizer = load_colorizer(config["init_model"], config["precision"])
            state, optimizer_variables = {"epoch": 0, "history": []}, None
        for layer in colorizer.get_layer("encoder").layers:  # frozen ImageNet features, or fine-tuned blocks
            layer.trainable = layer.name.split("_")[0] in config["unfreeze"]
        trainer = keras.Model(colorizer.input, keras.layers.AveragePooling2D(lab.MODEL_SIZE // TARGET)(colorizer.output))
        optimizer = keras.optimizers.Adam(config["learning_rate"])
        optimizer.build(trainer.trainable_variables)
        if optimizer_variables:
            for variable, value in zip(optimizer.variables, optimizer_variables):
                variable.assign(value)
    state["starts"] = state.get("starts", []) + [state["epoch"]]  # where each (re)start of the workers began
    loss_fn = losses.mse if config["loss"] == "mse" else \
        losses.RebalancedMSE(np.array(config["rebalancing"]), reduction=None)  # per example, as mse
    val_batches = None  # rank 0 validates on the whole "val" dataset, kept in memory after the first epoch

    @tf.function
    def step(L, ab):
        def replica(L, ab):
            with tf.GradientTape() as tape:
                loss = tf.nn.compute_average_loss(loss_fn(ab, trainer(L, training=True)), global_batch_size=global_batch)
            optimizer.apply_gradients(zip(tape.gradient(loss, trainer.trainable_variables), trainer.trainable_variables))
            return loss
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica, args=(L, ab)), axis=None)

    for epoch in range(state["epoch"], config["epochs"]):
        start, total, batches = time.perf_counter(), 0.0, 0
        for batch in ray.train.get_dataset_shard("train").iter_tf_batches(batch_size=config["batch_size"]):
            total += float(step(batch["L"], batch["ab"]))
            batches += 1
        figures = {"epoch": epoch + 1, "train_loss": total / max(1, batches), "seconds": time.perf_counter() - start}
        if context.get_world_rank() == 0 and config["validate"]:
            if val_batches is None:
                val_batches = list(ray.train.get_dataset_shard("val").iter_batches(batch_size=config["batch_size"],
                                                                                     batch_format="numpy"))
            # A direct call, not predict_on_batch: Keras's predict under the strategy would all-gather across
            # workers, and only rank 0 is here.
            figures.update(validate(lambda L: colorizer(L, training=False), val_batches, loss_fn))
        state = {**state, "epoch": epoch + 1, "history": state["history"] + [figures]}
        with tempfile.TemporaryDirectory() as folder:
            if context.get_world_rank() == 0:  # one copy of the weights: every replica holds the same
                colorizer.save(os.path.join(folder, "colorizer.keras"))
                np.savez(os.path.join(folder, "optimizer.npz"), *[np.asarray(v) for v in optimizer.variables])
                json.dump(state, open(os.path.join(folder, "state.json"), "w"))
            ray.train.report(figures, checkpoint=ray.train.Checkpoint.from_directory(folder)
                             if context.get_world_rank() == 0 else None)
