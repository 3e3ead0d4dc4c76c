"""A settings preview before the million-image run: a sample of the archive colorized with every combination of
the knobs, through the colorize job's own stages, on one contact sheet (HTML and JPEG).

    python -m jobs.preview --input s3://archive/scans/ --out preview/ --sample 24 --seed 0 \
        --chroma-gain 1.0 1.3 1.6 --model-size 224 320
"""
import argparse
import sys
from pathlib import Path

from jobs import add_input_flags, add_runtime_flags, settings_from_environment
from colorize_core import preview, runtime
from colorize_core.lab import MODEL_SIZE, MODEL_SIZES
from colorize_core.model_file import DEFAULT_MODEL, inspect_model_file
from colorize_core.storage import IMAGE_EXTENSIONS, Location, select_keys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_flags(p, "folder or s3://bucket/prefix holding the black-and-white images", selection=False)
    p.add_argument("--out", type=Path, required=True, help="folder for contact_sheet.html, contact_sheet.jpg, images/")
    p.add_argument("--sample", type=int, default=24, help="images taken at random from the input (default 24)")
    p.add_argument("--seed", type=int, default=0, help="the same seed takes the same images (default 0)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="colorizer .keras file, a path or s3:// (default: the shipped one)")
    p.add_argument("--temperature", type=float, nargs="+",
                   help="classification head only: temperatures to try (default: the model file's)")
    p.add_argument("--chroma-gain", type=float, nargs="+", help="chroma gains to try (default: the model file's)")
    p.add_argument("--model-size", type=int, nargs="+", choices=MODEL_SIZES, default=[MODEL_SIZE],
                   help=f"model sizes to try (default {MODEL_SIZE})")
    p.add_argument("--precision", choices=runtime.PRECISIONS, default="auto")
    p.add_argument("--batch-size", type=int, help="images per model batch (default 16 on CPU, 128 on GPU)")
    add_runtime_flags(p)
    args = settings_from_environment(p).parse_args(argv)
    if args.sample < 1:
        p.error("--sample must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source = Location(args.input, args.s3_endpoint)
    source.check_access()
    model = inspect_model_file(args.model, args.s3_endpoint)
    try:
        settings = preview.grid(model, args.model_size, args.temperature, args.chroma_gain)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    keys = select_keys(source, input_list=args.input_list, extensions=IMAGE_EXTENSIONS)
    if not keys:
        raise SystemExit(f"no images found under {args.input_list or args.input}")
    keys = preview.sample(keys, args.sample, args.seed)
    print(f"preview: {len(keys)} images of {args.input} x {len(settings)} settings, model {args.model}", flush=True)
    runtime.start_ray(args.ray_address, args.verbose)
    resources = runtime.default_resources(args.batch_size)
    with runtime.native_stderr_to_log(args.verbose):
        results = preview.colorize_each(source, keys, args.out.resolve(), args.model, model, settings, resources,
                                        args.precision, args.s3_endpoint)
    html, jpeg = preview.write_sheet(source, keys, args.out.resolve(), Path(args.model).name, results)
    print(f"wrote {html} and {jpeg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
