"""Evaluation stages: grey versions of colour photos in, metrics of the colorized result against the truth out.

The colorizing in between is the batch job's own chain (pipeline.colorize_dataset), not a copy of it.
"""
import csv
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colorize_core import codec, lab, manifest, metrics, pipeline, report, runtime
from colorize_core.batches import columns
from colorize_core.codec import thumbnail
from colorize_core.model_file import ModelFile
from colorize_core.progress import Progress
from colorize_core.settings import JobSettings
from colorize_core.storage import Location

PROTOCOLS = ("full", "crop256")  # full resolution; or short side 256 then the centre 256x256 (published tables)
PROTOCOL_DESCRIPTIONS = {"full": "full resolution",
                         "crop256": "256x256 centre crop (short side resized to 256), as in published tables"}


def grey_key(key: str) -> str:
    """Where the truth, grey and colour versions of `key` are kept: lossless PNG, so only the model changes pixels."""
    return f"{key}.png"


@dataclass
class Made:
    """A photo after make_grey_versions."""

    key: str
    status: str = manifest.Status.OK
    error: str = ""


def make_grey_versions(batch: dict[str, np.ndarray], source: Location, work: Location, protocol: str
                       ) -> dict[str, np.ndarray]:
    """CPU stage: each colour photo -> truth/KEY.png (as evaluated) and grey/KEY.png (its L with a = b = 0).

    The grey version is what a perfect colorizer would turn back into the truth: same L, no colour.
    """
    rows = []
    for key in batch["key"]:
        row = Made(str(key))
        try:
            truth, _ = codec.decode(source.read(key))
            if protocol == "crop256":
                truth = lab.centre_crop(truth, 256)
            L = lab.bgr_to_lab(truth)[..., 0]
            grey = lab.recombine(L, np.zeros((lab.MODEL_SIZE, lab.MODEL_SIZE, 2), np.float32), truth.dtype)
            work.write_atomic(f"truth/{grey_key(key)}", codec.encode(truth, "png"))
            work.write_atomic(f"grey/{grey_key(key)}", codec.encode(grey, "png"))
        except (codec.ImageError, OSError) as e:
            row.status, row.error = manifest.Status.ERROR, f"{type(e).__name__}: {e}"
        rows.append(row)
    return columns(rows, Made)


def measure(batch: dict[str, np.ndarray], work: Location) -> dict[str, np.ndarray]:
    """CPU stage: metrics of the colorized image and of the grey baseline against the truth, plus thumbnails."""
    rows = []
    for key in batch["key"]:
        start = time.perf_counter()
        images = {name: codec.decode(work.read(f"{name}/{grey_key(key)}"))[0] for name in ("truth", "grey", "colour")}
        truth = metrics.bgr_to_rgb255(images["truth"])
        skin = metrics.face_skin(truth)
        model = metrics.compare(truth, metrics.bgr_to_rgb255(images["colour"]), skin)
        grey = metrics.compare(truth, metrics.bgr_to_rgb255(images["grey"]), skin)
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


def evaluate(source: Location, keys: list[str], out: Path, model_uri: str, model: ModelFile, protocol: str = "full",
             precision: str = "auto", batch_size: int | None = None, temperature: float | None = None,
             chroma_gain: float = 1.0, model_endpoint: str | None = None, described: dict | None = None,
             model_size: int = lab.MODEL_SIZE, progress: Progress | None = None, flip_average: bool = False,
             upsampling: str = lab.UPSAMPLING) -> dict:
    """Grey versions of the photos `keys` -> the colorize job's own chain of stages -> metrics against the
    photos. Writes per_image.parquet/.csv, summary.json, report.html and images/ under `out`; returns the
    summary (`described`, e.g. the input and split, goes into it as given). Ray must be started."""
    out = out.resolve()
    work = Location(str(out / "images"))
    resources = runtime.default_resources(batch_size)

    made = pipeline.keys_dataset(keys, resources.batch_size).map_batches(
        make_grey_versions, fn_kwargs={"source": source, "work": work, "protocol": protocol},
        batch_format="numpy").take_all()
    failed = [(r["key"], r["error"]) for r in made if r["status"] != manifest.Status.OK]
    for key, error in failed:
        print(f"  not evaluated: {key}: {error}")
    keys = sorted(r["key"] for r in made if r["status"] == manifest.Status.OK)

    # The colorize job's own chain of stages, over the grey versions.
    settings = JobSettings(input=Location(str(out / "images" / "grey")), output=Location(str(out / "images" / "colour")),
                           run_id=runtime.new_run_id(), model_uri=model_uri, model_sha256=model.sha256,
                           model_endpoint=model_endpoint, temperature=temperature, chroma_gain=chroma_gain,
                           model_size=model_size, precision=precision, overwrite=True, flip_average=flip_average,
                           upsampling=upsampling)
    folder = pipeline.run([[grey_key(k) for k in keys]], settings, resources, progress).folder
    colorized = manifest.read(settings.output, folder)
    if not np.all(colorized["status"] == manifest.Status.OK):
        raise SystemExit(f"the colorize stages failed on some grey versions: see {folder}")

    rows = pipeline.keys_dataset(keys, resources.batch_size).map_batches(
        measure, fn_kwargs={"work": work}, batch_format="numpy").take_all()
    rows = sorted(rows, key=lambda r: r["key"])
    confidence = dict(zip(colorized["key"], colorized["colour_confidence"]))
    for row in rows:  # null where the model gives none (regression head)
        value = float(confidence[grey_key(row["key"])])
        row["colour_confidence"] = value if np.isfinite(value) else None
        for column in [c for c in row if c.endswith(metrics.COUNTED)]:  # null where the truth has none of it
            row[column] = float(row[column]) if np.isfinite(row[column]) else None
    summary = {
        **(described or {}), "protocol": protocol, "protocol_description": PROTOCOL_DESCRIPTIONS[protocol],
        "model_name": Path(model_uri).name, "model_path": model_uri, "model_sha256": model.sha256, "head": model.head,
        "temperature": temperature, "chroma_gain": chroma_gain, "model_size": model_size,
        "flip_average": flip_average, "upsampling": upsampling,
        "precision": "+".join(sorted(set(colorized["precision"]))),  # as the model's workers decided it
        "images": len(rows),
        "confidence_spearman": confidence_spearman(rows),
        "not_evaluated": len(failed), "model": metrics.summarize(rows, "model_"),
        "grey_baseline": metrics.summarize(rows, "grey_"), "colorize_manifest": folder,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_results(out, summary, rows)
    return summary


def write_results(out: Path, summary: dict, rows: list[dict]) -> None:
    """The per-image table (Parquet and CSV, thumbnails left out), summary.json and the HTML report."""
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if not k.startswith("thumb_")} for r in rows])
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "per_image.parquet")
    with open(out / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=table.column_names)
        writer.writeheader()
        writer.writerows(table.to_pylist())
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.html").write_text(report.render(summary, [{k: (str(v) if k == "key" else v) for k, v in r.items()}
                                                             for r in rows]), encoding="utf-8")
