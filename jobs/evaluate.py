"""Evaluate a colorizer on colour photographs: the same numbers on the same images every time, each beside
the grey baseline, and an HTML report to look at.

    python -m jobs.evaluate --input ../shared/datasets/photos --split val --out out/eval-val
    python -m jobs.evaluate --input ../shared/datasets/photos --split val --protocol crop256 --out out/eval-val-crop
    python -m jobs.evaluate --compare out/eval-A/summary.json out/eval-B/summary.json

Each photo's grey version (its own Lab L, a = b = 0) goes through the colorize job's own chain of stages;
the result is measured against the photo: PSNR, SSIM, CIEDE2000 and colourfulness (CF, dCF).
"""
import argparse
import csv
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs import DEFAULT_MODEL, add_knob_flags, settings_from_environment
from colorize_core import evaluation, metrics, pipeline, report
from colorize_core.stages import JobSettings
from colorize_core.storage import Location, inspect_model_file, select_keys

PROTOCOL_DESCRIPTIONS = {"full": "full resolution",
                         "crop256": "256x256 centre crop (short side resized to 256), as in published tables"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", help="folder or s3://bucket/prefix of colour photographs")
    p.add_argument("--split", help="take the photos of this split from INPUT/MANIFEST.csv (columns path, split)")
    p.add_argument("--input-list", help="Parquet, CSV or text file of keys relative to --input")
    p.add_argument("--limit", type=int, help="only the first N photos (sorted by key)")
    p.add_argument("--out", type=Path, help="folder for per_image.parquet/.csv, summary.json, report.html, images/")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--protocol", choices=evaluation.PROTOCOLS, default="full")
    p.add_argument("--precision", choices=pipeline.PRECISIONS, default="auto",
                   help="as the colorize job's (default auto: bfloat16 on GPUs, float32 on CPUs)")
    add_knob_flags(p)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--s3-endpoint", default=os.environ.get("AWS_ENDPOINT_URL"),
                   help="endpoint of an S3-compatible server (default: AWS_ENDPOINT_URL)")
    p.add_argument("--compare", nargs="+", metavar="SUMMARY.json",
                   help="print the difference of this evaluation (or of the first file given) against another")
    args = settings_from_environment(p).parse_args(argv)
    if args.input is None and not (args.compare and len(args.compare) == 2):
        p.error("give --input and --out to evaluate, or --compare A.json B.json to compare two evaluations")
    if args.input is not None and args.out is None:
        p.error("--out is required to evaluate")
    return args


def evaluate(args: argparse.Namespace) -> dict:
    """Grey versions -> the colorize chain -> metrics; writes the table, summary and report under --out."""
    model = inspect_model_file(args.model, args.s3_endpoint)
    try:
        temperature, chroma_gain = pipeline.resolve_knobs(model, args.temperature, args.chroma_gain)
    except ValueError as e:
        raise SystemExit(f"{e}") from None
    source = Location(args.input, args.s3_endpoint)
    source.check_access()
    keys = select_keys(source, args.split, args.input_list, args.limit)
    if not keys:
        raise SystemExit(f"no photos found under {args.input}")
    out = args.out.resolve()
    work = Location(str(out / "images"))
    pipeline.init_ray()
    resources = pipeline.default_resources(args.batch_size, None, None, None)
    precision = pipeline.resolve_precision(args.precision, resources)

    made = pipeline.keys_dataset(keys, resources.batch_size).map_batches(
        evaluation.make_grey_versions, fn_kwargs={"source": source, "work": work, "protocol": args.protocol},
        batch_format="numpy").take_all()
    failed = [(r["key"], r["error"]) for r in made if r["status"] != "ok"]
    for key, error in failed:
        print(f"  not evaluated: {key}: {error}")
    keys = sorted(r["key"] for r in made if r["status"] == "ok")

    # The colorize job's own chain of stages, over the grey versions.
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    settings = JobSettings(Location(str(out / "images" / "grey")), Location(str(out / "images" / "colour")),
                           args.model, model.sha256, run_id, overwrite=True, precision=precision,
                           temperature=temperature, chroma_gain=chroma_gain)
    grey_keys = [evaluation.grey_key(k) for k in keys]
    folder = pipeline.write_manifest(pipeline.colorize_dataset(grey_keys, settings, resources), settings.output, run_id)
    colorized = pipeline.read_manifest(settings.output, folder)
    if not np.all(colorized["status"] == "ok"):
        raise SystemExit(f"the colorize stages failed on some grey versions: see {folder}")

    rows = pipeline.keys_dataset(keys, resources.batch_size).map_batches(
        evaluation.measure, fn_kwargs={"work": work}, batch_format="numpy").take_all()
    rows = sorted(rows, key=lambda r: r["key"])
    confidence = dict(zip(colorized["key"], colorized["colour_confidence"]))
    for row in rows:  # null where the model gives none (regression head)
        value = float(confidence[evaluation.grey_key(row["key"])])
        row["colour_confidence"] = value if np.isfinite(value) else None
    summary = {
        "input": args.input, "split": args.split, "protocol": args.protocol,
        "protocol_description": PROTOCOL_DESCRIPTIONS[args.protocol], "model_name": Path(args.model).name,
        "model_path": args.model, "model_sha256": model.sha256, "head": model.head, "temperature": temperature,
        "chroma_gain": chroma_gain, "precision": precision, "images": len(rows),
        "confidence_spearman": evaluation.confidence_spearman(rows),
        "not_evaluated": len(failed), "model": metrics.summarize(rows, "model_"),
        "grey_baseline": metrics.summarize(rows, "grey_"), "colorize_manifest": folder,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
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
    return summary


def print_summary(summary: dict) -> None:
    knobs = f"temperature {summary['temperature']}, " if summary.get("temperature") is not None else ""
    print(f"{summary['images']} images, {summary['protocol_description']}, model {summary['model_name']} "
          f"({summary.get('head', 'regression')} head; {knobs}chroma gain {summary.get('chroma_gain', 1.0)})")
    print(f"{'':18}{'model':>10}{'grey':>10}")
    for m in ("psnr", "ssim", "ciede2000", "cf", "truth_cf", "dcf"):
        print(f"{m:18}{summary['model'][m]:10.4f}{summary['grey_baseline'][m]:10.4f}")
    if summary.get("confidence_spearman") is not None:
        print(f"Spearman correlation of colour_confidence with the CIEDE2000 gain over grey: "
              f"{summary['confidence_spearman']:+.3f}")


def print_comparison(a: dict, b: dict) -> None:
    """Model A against model B: each mean, and A - B."""
    print(f"A: {a['model_name']} ({a['protocol']}, {a['images']} images)   B: {b['model_name']} "
          f"({b['protocol']}, {b['images']} images)")
    if (a["protocol"], a["images"], a.get("split")) != (b["protocol"], b["images"], b.get("split")):
        print("WARNING: different protocol, split or image count: the figures are not comparable")
    print(f"{'':18}{'A':>10}{'B':>10}{'A - B':>10}")
    for m in ("psnr", "ssim", "ciede2000", "cf", "dcf"):
        print(f"{m:18}{a['model'][m]:10.4f}{b['model'][m]:10.4f}{a['model'][m] - b['model'][m]:+10.4f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.input is None:
        a, b = (json.loads(Path(p).read_text()) for p in args.compare)
        print_comparison(a, b)
        return 0
    summary = evaluate(args)
    print_summary(summary)
    print(f"wrote {args.out}/per_image.parquet, per_image.csv, summary.json, report.html")
    if args.compare:
        print_comparison(summary, json.loads(Path(args.compare[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
