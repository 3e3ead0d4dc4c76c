"""Training on Ray Train: the CPU stage that turns photos into (L, ab) examples, and the per-worker loop.

Keras 3's `fit` fails under TensorFlow's MultiWorkerMirroredStrategy (keras-team/keras#20585), so the
distributed step is written here, once: model and optimizer built in the strategy's scope, a tf.function
step run on every replica with the loss averaged over the global batch.
"""
import json
import os
import tempfile
import time

import cv2
import numpy as np

from colorize_core import codec, lab
from colorize_core.storage import Location

TARGET = 56  # the loss is taken at 56x56: colour is smooth, and it is 16x cheaper than 224x224


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
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        Lab = lab.bgr_to_lab(np.ascontiguousarray(crop))
        Ls.append(Lab[..., :1])
        abs_.append(cv2.resize(Lab[..., 1:], (TARGET, TARGET), interpolation=cv2.INTER_AREA) / lab.AB_SCALE)
    return {"L": np.array(Ls, np.float32).reshape(-1, lab.MODEL_SIZE, lab.MODEL_SIZE, 1),
            "ab": np.array(abs_, np.float32).reshape(-1, TARGET, TARGET, 2)}


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
                colorizer = load_colorizer(os.path.join(folder, "colorizer.keras"))
                state = json.load(open(os.path.join(folder, "state.json")))
                optimizer_variables = list(np.load(os.path.join(folder, "optimizer.npz")).values())
        else:
            colorizer, state, optimizer_variables = load_colorizer(config["init_model"]), {"epoch": 0, "history": []}, None
        for layer in colorizer.get_layer("encoder").layers:  # frozen ImageNet features, or fine-tuned blocks
            layer.trainable = layer.name.split("_")[0] in config["unfreeze"]
        trainer = keras.Model(colorizer.input, keras.layers.AveragePooling2D(lab.MODEL_SIZE // TARGET)(colorizer.output))
        optimizer = keras.optimizers.Adam(config["learning_rate"])
        optimizer.build(trainer.trainable_variables)
        if optimizer_variables:
            for variable, value in zip(optimizer.variables, optimizer_variables):
                variable.assign(value)
    state["starts"] = state.get("starts", []) + [state["epoch"]]  # where each (re)start of the workers began
    loss_fn = losses.mse if config["loss"] == "mse" else losses.RebalancedMSE(np.array(config["rebalancing"]))

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
        metrics = {"epoch": epoch + 1, "train_loss": total / max(1, batches), "seconds": time.perf_counter() - start}
        state = {**state, "epoch": epoch + 1, "history": state["history"] + [metrics]}
        with tempfile.TemporaryDirectory() as folder:
            if context.get_world_rank() == 0:  # one copy of the weights: every replica holds the same
                colorizer.save(os.path.join(folder, "colorizer.keras"))
                np.savez(os.path.join(folder, "optimizer.npz"), *[np.asarray(v) for v in optimizer.variables])
                json.dump(state, open(os.path.join(folder, "state.json"), "w"))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder)
                             if context.get_world_rank() == 0 else None)
