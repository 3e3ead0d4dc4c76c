"""Evaluate a colorizer on colour photographs: the same numbers on the same images every time, each beside
the grey baseline, and an HTML report to look at.

    python -m jobs.evaluate --input ../shared/datasets/photos --split val --out out/eval-val
    python -m jobs.evaluate --input ../shared/datasets/photos --split val --protocol crop256 --out out/eval-val-crop
    python -m jobs.evaluate --compare out/eval-A/summary.json out/eval-B/summary.json

Each photo's grey version (its own Lab L, a = b = 0) goes through the colorize job's own chain of stages;
the result is measured against the photo: PSNR, SSIM, CIEDE2000 and colourfulness (CF, dCF).
"""
import argparse
import json
import sys
from pathlib import Path

from jobs import add_input_flags, add_model_stage_flags, add_runtime_flags, model_and_knobs, settings_from_environment
from colorize_core import evaluation, runtime
from colorize_core.progress import Progress
from colorize_core.storage import Location, select_keys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_flags(p, "folder or s3://bucket/prefix of colour photographs", required=False)
    p.add_argument("--out", type=Path, help="folder for per_image.parquet/.csv, summary.json, report.html, images/")
    add_model_stage_flags(p)
    p.add_argument("--protocol", choices=evaluation.PROTOCOLS, default="full")
    add_runtime_flags(p)
    p.add_argument("--compare", nargs="+", metavar="SUMMARY.json",
                   help="print the difference of this evaluation (or of the first file given) against another")
    args = settings_from_environment(p).parse_args(argv)
    if args.input is None and not (args.compare and len(args.compare) == 2):
        p.error("give --input and --out to evaluate, or --compare A.json B.json to compare two evaluations")
    if args.input is not None and args.out is None:
        p.error("--out is required to evaluate")
    return args


def evaluate(args: argparse.Namespace) -> dict:
    """The photos the flags name -> evaluation.evaluate (grey versions, the colorize chain, metrics, report)."""
    model, temperature, chroma_gain = model_and_knobs(args)
    source = Location(args.input, args.s3_endpoint)
    source.check_access()
    keys = select_keys(source, args.split, args.input_list, args.limit)
    if not keys:
        raise SystemExit(f"no photos found under {args.input}")
    runtime.start_ray(args.ray_address, args.verbose)
    with runtime.native_stderr_to_log(args.verbose):
        return evaluation.evaluate(source, keys, args.out, args.model, model, args.protocol, args.precision,
                                   args.batch_size, temperature, chroma_gain, args.s3_endpoint,
                                   described={"input": args.input, "split": args.split}, model_size=args.model_size,
                                   progress=Progress(), flip_average=args.flip_average, upsampling=args.upsampling)


FIGURES = ("psnr", "ssim", "ciede2000", "cf", "dcf", "green_recall", "blue_recall", "harm_rate", "face_blotch")


def figure(figures: dict, name: str) -> str:
    """One figure, 10 wide; n/a where there is none (a recall with no image to count, an older summary)."""
    value = figures.get(name)
    return f"{value:10.4f}" if value is not None else f"{'n/a':>10}"


def print_summary(summary: dict) -> None:
    knobs = f"temperature {summary['temperature']}, " if summary.get("temperature") is not None else ""
    print(f"{summary['images']} images, {summary['protocol_description']}, model {summary['model_name']} "
          f"({summary.get('head', 'regression')} head; {knobs}chroma gain {summary.get('chroma_gain', 1.0)}; "
          f"model size {summary.get('model_size', 224)}; {'flip-averaged, ' if summary.get('flip_average') else ''}"
          f"{summary.get('upsampling', 'bicubic')} upsampling)")
    print(f"{'':18}{'model':>10}{'grey':>10}")
    for m in FIGURES[:4] + ("truth_cf",) + FIGURES[4:]:
        print(f"{m:18}{figure(summary['model'], m)}{figure(summary['grey_baseline'], m)}")
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
    for m in FIGURES:
        both = a["model"].get(m) is not None and b["model"].get(m) is not None
        print(f"{m:18}{figure(a['model'], m)}{figure(b['model'], m)}"
              f"{format(a['model'][m] - b['model'][m], '+10.4f') if both else format('n/a', '>10')}")


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
