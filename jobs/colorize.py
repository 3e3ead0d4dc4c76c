"""Colorize every black-and-white image under --input into --output, with a manifest row for each.

    python -m jobs.colorize --input examples --output out/examples
    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python -m jobs.colorize --input s3://archive/scans/ --output s3://archive/colour/ --model s3://archive/models/colorizer.keras
"""
import argparse
import math
import os
import sys
import time

from jobs import add_input_flags, add_model_stage_flags, add_runtime_flags, model_and_knobs, settings_from_environment
from colorize_core import codec, crashes, credentials, manifest, metadata, monitoring, pipeline, runtime
from colorize_core.progress import Progress
from colorize_core.settings import JobSettings
from colorize_core.storage import (DEFAULT_MAX_BYTES, IMAGE_EXTENSIONS, KeySource, Location, StorageGone,
                                   csv_has_header, retrying, within)

SKIP_COLOUR = 3.0  # --skip-colour's value when given alone: benchmarks/colour_originals.py
SHOWN_FAILURES = 20  # failed inputs listed at the end; the manifest has them all
# Exit statuses: 0 failures within --max-error-fraction; 1 more failed (or the job was refused before any work);
# 2 a wrong flag, or the manifest does not account for every input; 3 the storage went away for good mid-run.
EXIT_TOO_MANY_FAILED, EXIT_USAGE, EXIT_NOT_ACCOUNTED, EXIT_STORAGE_GONE = 1, 2, 2, 3



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_flags(p, "folder or s3://bucket/prefix holding the black-and-white images", selection=False)
    p.add_argument("--output", required=True, help="folder or s3://bucket/prefix for the colour images and _manifest/")
    add_model_stage_flags(p)
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose output already exists")
    p.add_argument("--jpeg-quality", type=int, default=95, choices=range(1, 101), metavar="1..100")
    p.add_argument("--actors", type=int, help="model replicas (default: one per GPU, else one)")
    p.add_argument("--cpus-per-actor", type=float, help="CPUs reserved by each model actor (default 1)")
    p.add_argument("--gpus-per-actor", type=float, help="GPUs per model actor (default 1 where the cluster has GPUs)")
    p.add_argument("--extensions", default=",".join(IMAGE_EXTENSIONS),
                   help="file endings taken when listing --input, comma-separated; '*' takes every file")
    p.add_argument("--max-pixels", type=int, default=codec.DEFAULT_MAX_PIXELS,
                   help=f"refuse larger images, from their header, before decoding (default {codec.DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"refuse larger files without reading them (default {DEFAULT_MAX_BYTES:,})")
    p.add_argument("--skip-colour", type=float, nargs="?", const=SKIP_COLOUR, metavar="THRESHOLD",
                   help="leave alone inputs already in colour: those whose colour beyond a single tone (manifest "
                        f"column input_chroma) is above THRESHOLD become 'skipped' rows; alone, {SKIP_COLOUR}: no "
                        "toned print measured reached it, hand-tinted ones did, and 39%% of colour photos. Default: off")
    p.add_argument("--max-error-fraction", type=float, default=0.01,
                   help="exit non-zero when more than this fraction of inputs fail (default 0.01)")
    p.add_argument("--object-store-mib", type=int,
                   help="cap on the object store the job's images in flight may hold; it keeps memory flat however "
                        "many inputs (default 512 per model actor)")
    p.add_argument("--digital-source-type", default=metadata.DIGITAL_SOURCE_TYPE, metavar="TERM",
                   help="what each output's XMP says it is, a term of IPTC's digital source type vocabulary or its URI "
                        "(default compositeWithTrainedAlgorithmicMedia: colour made by a trained model on the "
                        "original's lightness; README, Archival use)")
    p.add_argument("--caption-note", default=metadata.CAPTION_NOTE, metavar="TEXT",
                   help="a sentence appended to each output's description (dc:description, IPTC Caption-Abstract); "
                        "{software}, {model} and {model_sha256} are filled in; '' turns it off (default: "
                        f"{metadata.CAPTION_NOTE!r})".replace("%", "%%"))
    p.add_argument("--label", default="", metavar="TEXT",
                   help="write TEXT visibly in a small band in the bottom-left corner of each output (default: none)")
    p.add_argument("--c2pa-cert", metavar="CHAIN.pem",
                   help="sign every output with C2PA content credentials: the signing certificate, then its CA "
                        "certificates (needs --c2pa-key and pip install '.[c2pa]'; README, Archival use)")
    p.add_argument("--c2pa-key", metavar="KEY.pem", help="the signing certificate's private key (PKCS#8, ES256)")
    p.add_argument("--failpoint", nargs="+", type=crashes.parse_failpoint, default=[], metavar="STAGE:KEY",
                   help="for tests: make STAGE (decode, predict or encode) abort its process while it handles KEY, "
                        "to show that the job isolates such a key (docs/architecture.md)")
    p.add_argument("--no-metrics", dest="metrics", action="store_false",
                   help="export no metrics of the job's own to Prometheus (default: on; operator guide, Watching a run)")
    add_runtime_flags(p)
    args = settings_from_environment(p).parse_args(argv)
    for name in ("batch_size", "actors", "max_pixels", "max_bytes", "object_store_mib"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("cpus_per_actor", "gpus_per_actor"):
        if getattr(args, name) is not None and not getattr(args, name) >= 0:  # NaN fails too
            p.error(f"--{name.replace('_', '-')} must be 0 or more")
    if args.skip_colour is not None and not (math.isfinite(args.skip_colour) and args.skip_colour >= 0):
        p.error("--skip-colour must be a number, at least 0")
    try:
        args.digital_source_type = metadata.source_type_uri(args.digital_source_type)
        metadata.Record("", "", "", "", "", "", caption_note=args.caption_note).note()
    except ValueError as e:
        p.error(f"--digital-source-type: {e}")
    except (KeyError, IndexError) as e:
        p.error(f"--caption-note {args.caption_note!r}: unknown placeholder {e}; use {{software}}, {{model}} or "
                "{model_sha256}, and {{ }} for a brace")
    if bool(args.c2pa_cert) != bool(args.c2pa_key):
        p.error("--c2pa-cert and --c2pa-key go together: give both, or neither")
    if not 0 <= args.max_error_fraction <= 1:  # NaN fails too
        p.error("--max-error-fraction must be between 0 and 1")
    for flag in ("input", "output", "input_list"):
        value = getattr(args, flag)
        if value and value.startswith("s3://") and not value[len("s3://"):].split("/")[0]:
            p.error(f"--{flag.replace('_', '-')} {value}: no bucket name; write s3://BUCKET/PREFIX")
    if args.input_list and not args.input_list.startswith("s3://") and not os.path.isfile(args.input_list):
        p.error(f"--input-list {args.input_list}: no such file")
    return args


def check_locations(args: argparse.Namespace) -> tuple[Location, Location]:
    """Refuse, before any work, what would lose or overwrite something or cannot be reached or written."""
    source, target = Location(args.input, args.s3_endpoint), Location(args.output, args.s3_endpoint)
    if source.is_s3 == target.is_s3:
        # Real paths, links resolved, both ways: an output reached through a link to the input is the input.
        a, b = (source.root, target.root) if source.is_s3 else (source.real_root, target.real_root)
        if within(a, b) or within(b, a):
            raise SystemExit(f"--output {args.output} must not be --input or inside it, nor contain it (links "
                             "resolved): the originals would be overwritten or re-read as inputs")
    source.check_access()
    target.check_access()
    target.check_writable(("", manifest.FOLDER))  # before any work, not after every image is done
    if removed := target.remove_stale_temp_files():
        print(f"removed {removed} temporary files left by runs that were killed mid-write")
    return source, target


def describe_input_list(uri: str, endpoint: str | None) -> str:
    """How a CSV key list is read, said once at the start: with its header, or without one."""
    folder, name = uri.rsplit("/", 1) if "/" in uri else (".", uri)
    location = Location(folder, endpoint)
    with location.fs.open_input_stream(location.path(name)) as f:
        header = csv_has_header(f.read(1 << 16).split(b"\n", 1)[0])
    return (f"{uri}: its first line names a 'key' column, read as the header" if header else
            f"{uri}: no 'key' column in its first line, so it has no header: the first column of every line is a key")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, temperature, chroma_gain = model_and_knobs(args)
    signing = credentials.load(args.c2pa_cert, args.c2pa_key) if args.c2pa_cert else None  # before any work
    source, target = check_locations(args)
    extensions = None if args.extensions.strip() == "*" else tuple(
        e.strip().lower() if e.strip().startswith(".") else "." + e.strip().lower() for e in args.extensions.split(","))
    # The keys are read a chunk at a time and run a wave at a time (pipeline.run); here only the first chunk is
    # read, to refuse an empty input before starting anything.
    passed = pipeline.PassedOver()  # what the listing passes over: each gets a manifest row
    keys = KeySource(listing=source, extensions=extensions, input_list=args.input_list, endpoint=args.s3_endpoint,
                     passed_over=passed)
    if not next(KeySource(source, extensions, args.input_list, args.s3_endpoint).chunks(), None):
        raise SystemExit(f"no images found under {args.input_list or args.input}")
    if args.input_list and args.input_list.endswith(".csv"):
        print(describe_input_list(args.input_list, args.s3_endpoint))
    settings = JobSettings(
        input=source, output=target, run_id=runtime.new_run_id(),
        model_uri=args.model, model_sha256=model.sha256, model_endpoint=args.s3_endpoint, temperature=temperature,
        chroma_gain=chroma_gain, model_size=args.model_size, precision=args.precision,
        flip_average=args.flip_average, upsampling=args.upsampling,
        overwrite=args.overwrite, max_pixels=args.max_pixels, max_bytes=args.max_bytes, skip_colour=args.skip_colour,
        jpeg_quality=args.jpeg_quality, digital_source_type=args.digital_source_type,
        caption_note=args.caption_note, label=args.label, signing=signing, failpoints=tuple(args.failpoint))
    runtime.start_ray(args.ray_address, args.verbose)
    resources = runtime.default_resources(args.batch_size, args.actors, args.cpus_per_actor, args.gpus_per_actor,
                                            args.object_store_mib)
    knobs = f"temperature {temperature}, " if temperature is not None else ""
    print(f"colorize: {args.input_list or args.input} -> {args.output}; model {args.model} "
          f"(sha256 {model.sha256[:12]}, {model.head} head; {knobs}chroma gain {chroma_gain}; size {args.model_size}; "
          f"{'flip-averaged, ' if args.flip_average else ''}{args.upsampling} upsampling), "
          f"precision {runtime.resolve_precision(args.precision, resources.gpus_per_actor > 0)[1]}; "
          f"{resources}", flush=True)
    start = time.perf_counter()
    try:
        with runtime.native_stderr_to_log(args.verbose):
            metrics = monitoring.RunMetrics(settings.run_id, args.max_error_fraction) if args.metrics else None
            summary = pipeline.run(keys.chunks(), settings, resources, Progress(), passed, bool(args.input_list),
                                   metrics)
    except StorageGone as e:
        print(f"ERROR: the storage went away and did not come back: {e}\nThe outputs written so far are whole; "
              f"the manifest files written so far are in {manifest.folder_of(target, settings.run_id)}, and the run is not "
              "marked complete. When the storage is back, run the same command again: it resumes (what was "
              "written is skipped).", file=sys.stderr)
        return EXIT_STORAGE_GONE
    seconds = time.perf_counter() - start
    counts, folder = summary.counts, summary.folder
    for note in summary.notes:
        print(note)
    if summary.repeated:
        print(f"{summary.repeated} keys were given more than once in {args.input_list}: each was done once")

    total = sum(counts.values())
    for key, error in retrying(lambda: manifest.failures(target, folder, SHOWN_FAILURES)):
        print(f"  failed: {key}: {error}")
    if counts[manifest.Status.ERROR] > SHOWN_FAILURES:
        print(f"  ... and {counts[manifest.Status.ERROR] - SHOWN_FAILURES} more: rows with status 'error' in the manifest")
    print(f"done {counts[manifest.Status.OK]}, skipped {counts[manifest.Status.SKIPPED]}, failed {counts[manifest.Status.ERROR]} of "
          f"{total} inputs in {seconds:.1f} s ({counts[manifest.Status.OK] / seconds:.2f} images/s); manifest: {folder}; "
          f"logs: {runtime.log_folder()}")
    if not summary.accounted:
        print(f"ERROR: the manifest has {total} rows for {summary.owed} inputs: it does not account for every "
              "input; run again (what was written is skipped)", file=sys.stderr)
        return EXIT_NOT_ACCOUNTED
    failed_fraction = counts[manifest.Status.ERROR] / total
    if failed_fraction > args.max_error_fraction:
        print(f"ERROR: {failed_fraction:.1%} of inputs failed, more than --max-error-fraction "
              f"{args.max_error_fraction:.1%}", file=sys.stderr)
        return EXIT_TOO_MANY_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
