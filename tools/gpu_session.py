"""Train the colorizer's decoder on a lent GPU (the device machine: JAX, no TensorFlow or Ray), and measure
the model's GPU inference speed, in one short call.

    python tools/gpu_session.py pack --out .devdata             # here: train/val photos -> a compact pack
    KERAS_BACKEND=jax python3 tools/gpu_session.py run --data .devdata --out $OUT --budget 480   # there

`pack` turns each photo of ../shared/datasets/photos into a 224x224 centre crop: L as a grey JPEG (quality
80) and a and b at 56x56 as two grey JPEGs (the loss is taken at 56x56: colour is smooth), plus the ImageNet
VGG16 weights in float16, so that everything travels in one call (64 MiB). `run` trains the decoder (encoder frozen) once per loss, each for
its share of --budget seconds, and writes decoder_LOSS.npz (only the decoder's weights: what training
changed), history_LOSS.json and gpu_bench.json. `python tools/gpu_session.py export` then builds the
colorizer file from a decoder_LOSS.npz here. The Ray Train job (jobs/train.py, the training issue) is the
product's way to train; this is the way to use a GPU lent for a few minutes.
"""
import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "photos"
CROP, TARGET = 224, 56


def pack(out: Path, limit: int | None) -> None:
    import cv2

    from colorize_core.evaluation import centre_crop
    from colorize_core.lab import bgr_to_lab
    from jobs.build_model import VGG16_WEIGHTS

    out.mkdir(parents=True, exist_ok=True)
    with open(PHOTOS / "MANIFEST.csv") as f:
        rows = list(csv.DictReader(f))
    for split, limit_split in (("train", limit), ("val", min(limit or 100, 100))):
        paths = sorted(r["path"] for r in rows if r["split"] == split)[:limit_split]
        streams = {"L": [], "a": [], "b": []}
        for path in paths:
            lab = bgr_to_lab(centre_crop(cv2.imread(str(PHOTOS / path), cv2.IMREAD_COLOR), CROP))
            ab = cv2.resize(lab[..., 1:], (TARGET, TARGET), interpolation=cv2.INTER_AREA)
            for name, channel, quality in (("L", lab[..., 0] * 2.55, 80), ("a", ab[..., 0] + 128, 92),
                                           ("b", ab[..., 1] + 128, 92)):
                grey = np.clip(np.round(channel), 0, 255).astype(np.uint8)
                streams[name].append(cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].ravel())
        arrays = {}
        for name, jpegs in streams.items():
            arrays[name] = np.concatenate(jpegs)
            arrays[f"{name}_offsets"] = np.cumsum([0] + [len(j) for j in jpegs])
        np.savez(out / f"{split}.npz", **arrays)
        print(split, len(paths), "photos", (out / f"{split}.npz").stat().st_size // 1024, "KiB")
    import keras

    vgg = keras.applications.VGG16(include_top=False, weights=str(VGG16_WEIGHTS), input_shape=(CROP, CROP, 3))
    arrays = {f"{l.name}/{i}": w.astype(np.float16) for l in vgg.layers for i, w in enumerate(l.get_weights())}
    np.savez(out / "vgg16_fp16.npz", **arrays)
    print("vgg16_fp16.npz", (out / "vgg16_fp16.npz").stat().st_size // 1024, "KiB")


def load_split(data: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(L in [0, 100] as (N, 224, 224, 1) float32, ab / 128 as (N, 56, 56, 2) float32)."""
    import cv2

    z = np.load(data / f"{split}.npz")

    def decode(name: str) -> np.ndarray:
        data, offsets = z[name], z[f"{name}_offsets"]
        return np.stack([cv2.imdecode(data[offsets[i]:offsets[i + 1]], cv2.IMREAD_GRAYSCALE)
                         for i in range(len(offsets) - 1)]).astype(np.float32)

    L = decode("L") / 2.55
    ab = np.stack([decode("a"), decode("b")], axis=-1) - 128.0
    return L[..., None], ab / 128.0


def decoder_layers(model):
    return [layer for layer in model.layers if layer.name != "encoder"]


def build(vgg_npz: Path | None):
    from colorize_core.model import build_colorizer

    model = build_colorizer(None)
    if vgg_npz is not None:
        z = np.load(vgg_npz)
        encoder = model.get_layer("encoder")
        for layer in encoder.layers:
            if layer.get_weights():
                layer.set_weights([z[f"{layer.name}/{i}"].astype(np.float32) for i in range(len(layer.get_weights()))])
    return model


def gpu_bench(deadline: float, sizes_bf16: list[int]) -> dict:
    """Model-only images/s predicting ready 224x224 batches, bfloat16 and float32, by batch size."""
    import keras

    results = {"device": str(__import__("jax").devices()), "backend": keras.backend.backend(), "runs": []}
    for policy, sizes in (("mixed_bfloat16", sizes_bf16), ("float32", sizes_bf16[1:2] or sizes_bf16)):
        keras.config.set_dtype_policy(policy)
        model = build(None)
        for size in sizes:
            if time.monotonic() > deadline:
                break
            x = np.random.default_rng(0).uniform(0, 100, (size, CROP, CROP, 1)).astype(np.float32)
            start = time.perf_counter()
            np.asarray(model.predict_on_batch(x))
            compile_s = time.perf_counter() - start
            start, n = time.perf_counter(), 0
            while time.perf_counter() - start < 3.0:
                np.asarray(model.predict_on_batch(x))
                n += size
            results["runs"].append({"policy": policy, "batch_size": size, "images_per_s": n / (time.perf_counter() - start),
                                    "first_call_s": compile_s})
            print(results["runs"][-1], flush=True)
    keras.config.set_dtype_policy("float32")
    return results


def train(loss_name: str, data: Path, out: Path, seconds: float, batch_size: int, steps: int, train_set, val_set,
          unfreeze: list[str] = (), init: Path | None = None, lr: float = 1e-3, mix: float = 0.5) -> None:
    import keras
    from keras import layers

    from colorize_core import losses

    keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    colorizer = build(data / "vgg16_fp16.npz")
    encoder = colorizer.get_layer("encoder")
    if init is not None:  # go on from an earlier run's decoder (and encoder blocks)
        load_trained(colorizer, init)
    for layer in encoder.layers:  # frozen: the ImageNet features, as the thesis trains; or fine-tune some blocks
        layer.trainable = layer.name.split("_")[0] in unfreeze
    trainer = keras.Model(colorizer.input, layers.AveragePooling2D(CROP // TARGET, dtype="float32")(colorizer.output))
    L, ab = train_set
    loss = losses.mse if loss_name == "mse" else losses.RebalancedMSE(losses.rebalancing_weights(ab, mix))
    optimizer = keras.optimizers.Adam(lr)
    trainer.compile(optimizer=optimizer, loss=loss, jit_compile=True)
    rng = np.random.default_rng(0)

    def batches():
        while True:
            idx = rng.integers(0, len(L), batch_size)
            x, y = L[idx], ab[idx]
            flip = rng.random(batch_size) < 0.5
            x[flip], y[flip] = x[flip][:, :, ::-1], y[flip][:, :, ::-1]
            yield x, y

    start = time.monotonic()

    class Budget(keras.callbacks.Callback):
        """Stops at the time budget; cosine-decays the learning rate over it."""

        def on_epoch_begin(self, epoch, logs=None):
            done = min(1.0, (time.monotonic() - start) / seconds)
            self.model.optimizer.learning_rate.assign(lr * 0.5 * (1 + np.cos(np.pi * done)) + lr / 100)

        def on_epoch_end(self, epoch, logs=None):
            print(loss_name, epoch, {k: round(float(v), 5) for k, v in (logs or {}).items()},
                  f"{time.monotonic() - start:.0f}s", flush=True)
            if time.monotonic() - start > seconds:
                self.model.stop_training = True

    history = trainer.fit(batches(), steps_per_epoch=steps, epochs=100000, validation_data=val_set,
                          validation_batch_size=batch_size, callbacks=[Budget()], verbose=0)
    weights = {f"{i}/{j}": w.astype(np.float16) for i, layer in enumerate(decoder_layers(colorizer))
               for j, w in enumerate(layer.get_weights())}
    np.savez(out / f"decoder_{loss_name}.npz", **weights)
    for block in unfreeze:  # float16: each file must stay under 16 MiB to come back
        np.savez(out / f"encoder_{block}_{loss_name}.npz", **{
            f"{layer.name}/{j}": w.astype(np.float16) for layer in encoder.layers
            if layer.name.startswith(block + "_") for j, w in enumerate(layer.get_weights())})
    (out / f"history_{loss_name}.json").write_text(json.dumps(
        {"loss": loss_name, "mix": mix, "unfreeze": list(unfreeze), "lr": lr, "seconds": time.monotonic() - start, "batch_size": batch_size,
         "epochs": len(history.history["loss"]), "steps_per_epoch": steps, "history": history.history}, indent=1))


def run(data: Path, out: Path, budget: float, batch_size: int, steps: int, loss_names: list[str],
        bench_sizes: list[int], unfreeze: list[str], init: Path | None, lr: float, mix: float) -> None:
    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    if bench_sizes:
        (out / "gpu_bench.json").write_text(json.dumps(gpu_bench(t0 + min(90, budget * 0.2), bench_sizes), indent=1))
    train_set, val_set = load_split(data, "train"), load_split(data, "val")
    print("data", train_set[0].shape, val_set[0].shape, f"{time.monotonic() - t0:.0f}s", flush=True)
    for i, name in enumerate(loss_names):
        left = budget - (time.monotonic() - t0)
        train(name, data, out, left / (len(loss_names) - i) - 25, batch_size, steps, train_set, val_set, unfreeze,
              init, lr, mix)


def load_trained(model, decoder: Path) -> None:
    """Set the decoder from decoder_LOSS.npz, and any fine-tuned encoder blocks from encoder_BLOCK_LOSS.npz beside it."""
    z = np.load(decoder)
    for i, layer in enumerate(decoder_layers(model)):
        if layer.get_weights():
            layer.set_weights([z[f"{i}/{j}"].astype(np.float32) for j in range(len(layer.get_weights()))])
    loss_name = decoder.stem.removeprefix("decoder_")
    for block_file in decoder.parent.glob(f"encoder_block*_{loss_name}.npz"):
        z = np.load(block_file)
        for layer in model.get_layer("encoder").layers:
            if f"{layer.name}/0" in z:
                layer.set_weights([z[f"{layer.name}/{j}"].astype(np.float32) for j in range(len(layer.get_weights()))])


def export(decoder: Path, out: Path, chroma_gain: float = 1.0) -> None:
    """A colorizer .keras file here: the ImageNet encoder (as jobs.build_model makes it) + a trained decoder.

    chroma_gain > 1 multiplies the predicted ab: a regression model's colours are a mean over plausible
    ones, too grey; the gain is the regression counterpart of Zhang et al.'s annealed-mean temperature."""
    import keras

    from colorize_core.model import build_colorizer
    from jobs.build_model import VGG16_WEIGHTS
    from colorize_core.weights import build_vgg16_weights_file

    if not VGG16_WEIGHTS.exists():
        build_vgg16_weights_file(VGG16_WEIGHTS)
    model = build_colorizer(str(VGG16_WEIGHTS))
    load_trained(model, decoder)
    if chroma_gain != 1.0:
        model = keras.Model(model.input, keras.layers.Rescaling(chroma_gain, name="chroma_gain")(model.output),
                            name="colorizer")
    model.save(out)
    print("wrote", out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--out", type=Path, default=Path(".devdata"))
    a.add_argument("--limit", type=int)
    b = sub.add_parser("run")
    b.add_argument("--data", type=Path, default=Path(".devdata"))
    b.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out/gpu")))
    b.add_argument("--budget", type=float, default=480, help="seconds for everything")
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--steps-per-epoch", type=int, default=100)
    b.add_argument("--losses", nargs="+", default=["mse", "rebalanced"])
    b.add_argument("--bench-sizes", nargs="*", type=int, default=[128, 256, 512, 1024])
    b.add_argument("--unfreeze", nargs="*", default=[], help="encoder blocks to fine-tune, e.g. block4 block5")
    b.add_argument("--init", type=Path, help="decoder_LOSS.npz of an earlier run to start from")
    b.add_argument("--lr", type=float, default=1e-3)
    b.add_argument("--mix", type=float, default=0.5, help="rebalancing: weight 1 / ((1 - mix) p + mix / Q)")
    c = sub.add_parser("export")
    c.add_argument("--decoder", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--chroma-gain", type=float, default=1.0)
    args = p.parse_args()
    if args.command == "pack":
        pack(args.out, args.limit)
    elif args.command == "run":
        run(args.data, args.out, args.budget, args.batch_size, args.steps_per_epoch, args.losses, args.bench_sizes,
            args.unfreeze, args.init, args.lr, args.mix)
    else:
        export(args.decoder, args.out, args.chroma_gain)


if __name__ == "__main__":
    main()
