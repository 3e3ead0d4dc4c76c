"""Evaluation stages: grey versions of colour photos in, metrics of the colorized result against the truth out.

The colorizing in between is the batch job's own chain (pipeline.colorize_dataset), not a copy of it.
"""
import base64
import time

import cv2
import numpy as np

from colorize_core import codec, lab, metrics
from colorize_core.storage import Location

PROTOCOLS = ("full", "crop256")  # full resolution; or short side 256 then the centre 256x256 (published tables)
THUMBNAIL_HEIGHT = 160


def grey_key(key: str) -> str:
    """Where the truth, grey and colour versions of `key` are kept: lossless PNG, so only the model changes pixels."""
    return f"{key}.png"


def make_grey_versions(batch: dict[str, np.ndarray], source: Location, work: Location, protocol: str
                       ) -> dict[str, np.ndarray]:
    """CPU stage: each colour photo -> truth/KEY.png (as evaluated) and grey/KEY.png (its L with a = b = 0).

    The grey version is what a perfect colorizer would turn back into the truth: same L, no colour.
    """
    status, error = [], []
    for key in batch["key"]:
        try:
            truth, _ = codec.decode(source.read(key))
            if protocol == "crop256":
                truth = lab.centre_crop(truth, 256)
            L = lab.bgr_to_lab(truth)[..., 0]
            grey = lab.recombine(L, np.zeros((lab.MODEL_SIZE, lab.MODEL_SIZE, 2), np.float32), truth.dtype)
            work.write_atomic(f"truth/{grey_key(key)}", codec.encode(truth, "png"))
            work.write_atomic(f"grey/{grey_key(key)}", codec.encode(grey, "png"))
            status.append("ok"), error.append("")
        except (codec.ImageError, OSError) as e:
            status.append("error"), error.append(f"{type(e).__name__}: {e}")
    return {"key": batch["key"], "status": np.array(status, dtype=object), "error": np.array(error, dtype=object)}


def thumbnail(bgr: np.ndarray) -> str:
    """A small JPEG as a data: URI, so the HTML report is one self-contained file."""
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (max(1, round(w * THUMBNAIL_HEIGHT / h)), THUMBNAIL_HEIGHT), interpolation=cv2.INTER_AREA)
    if small.dtype != np.uint8:
        small = np.round(small / 257.0).astype(np.uint8)
    return "data:image/jpeg;base64," + base64.b64encode(codec.encode(small, "jpeg", 85)).decode("ascii")


def measure(batch: dict[str, np.ndarray], work: Location) -> dict[str, np.ndarray]:
    """CPU stage: metrics of the colorized image and of the grey baseline against the truth, plus thumbnails."""
    rows = []
    for key in batch["key"]:
        start = time.perf_counter()
        images = {name: codec.decode(work.read(f"{name}/{grey_key(key)}"))[0] for name in ("truth", "grey", "colour")}
        truth = metrics.bgr_to_rgb255(images["truth"])
        model = metrics.compare(truth, metrics.bgr_to_rgb255(images["colour"]))
        grey = metrics.compare(truth, metrics.bgr_to_rgb255(images["grey"]))
        rows.append({
            "key": key, "width": images["truth"].shape[1], "height": images["truth"].shape[0],
            **{f"model_{m}": v for m, v in model.items()}, **{f"grey_{m}": v for m, v in grey.items()},
            "truth_cf": metrics.colourfulness(truth),
            **{f"thumb_{name}": thumbnail(image) for name, image in images.items()},
            "measure_s": time.perf_counter() - start,
        })
    text = ("key", "thumb_truth", "thumb_grey", "thumb_colour")
    return {c: np.array([r[c] for r in rows], dtype=object if c in text else None) for c in rows[0]} if rows else {}


def confidence_spearman(rows: list[dict]) -> float | None:
    """Does colour_confidence mean something? The Spearman rank correlation, over images, between it and the
    image's CIEDE2000 gain over grey (grey's error - the model's: positive where colour helped). None where the
    model gives no confidence (regression head) or there are fewer than 3 images."""
    from scipy.stats import spearmanr

    pairs = [(r["colour_confidence"], r["grey_ciede2000"] - r["model_ciede2000"]) for r in rows
             if r.get("colour_confidence") is not None]
    if len(pairs) < 3:
        return None
    return float(spearmanr(*zip(*pairs)).statistic)
