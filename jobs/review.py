"""A static review gallery of a run: grey | colour thumbnails with the manifest's figures, least confident first,
to accept, reject or skip with the keyboard (a, r, s; j/k to move) and export as decisions.csv (key,decision,when).

    python -m jobs.review --output out/examples
    python -m jobs.review --output s3://archive/colour/ --run 20250101T020000000000Z --limit 500

Writes OUTPUT/_manifest/review/run=RUN_ID/ (or --gallery FOLDER): index.html, page-2.html, ..., errors.html, thumbs/. It
opens from disk or from an S3 static website; nothing else is needed. Exits 2 when the run is not there.
"""
import argparse
import sys
from pathlib import Path

from colorize_core import review
from colorize_core.storage import Location

EXIT_NO_RUN = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, help="the colorize job's --output: a folder or s3://bucket/prefix")
    p.add_argument("--run", help="the run ID to review, as in _manifest/run=RUN_ID (default: the newest complete run)")
    p.add_argument("--order", choices=review.ORDERS,
                   help="confidence: least confident first (default where the run has a colour_confidence, i.e. a "
                        "classification-head model); random: a seeded sample (the default otherwise); errors: "
                        "the error rows only")
    p.add_argument("--limit", type=int, default=review.LIMIT,
                   help=f"at most this many images in the gallery (default {review.LIMIT})")
    p.add_argument("--seed", type=int, default=0, help="the same seed draws the same random sample (default 0)")
    p.add_argument("--gallery", help="write the gallery here instead of OUTPUT/_manifest/review/run=RUN_ID")
    p.add_argument("--s3-endpoint",
                   help="endpoint of an S3-compatible server, e.g. http://127.0.0.1:8333 (default: AWS_ENDPOINT_URL)")
    p.add_argument("--threads", type=int, default=8, help="outputs read at once for the thumbnails (default 8)")
    args = p.parse_args(argv)
    for name in ("limit", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = Location(args.output, args.s3_endpoint)
    output.check_access()
    try:
        run_id, complete = review.pick_run(output, args.run)
    except review.NoSuchRun as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return EXIT_NO_RUN
    chosen = "" if args.run else ", the newest complete run"
    print(f"review: run {run_id} of {args.output}{chosen}{'' if complete else ' (incomplete)'}", flush=True)
    gallery = Location(args.gallery, args.s3_endpoint) if args.gallery else Location(
        f"{args.output.rstrip('/')}/{review.FOLDER}/run={run_id}", args.s3_endpoint)
    written = review.write_gallery(output, run_id, complete, gallery, args.order, args.limit, args.seed,
                                   threads=args.threads)
    print(f"order: {written.order}; {written.shown} shown ({written.thumbnails} with thumbnails) on "
          f"{written.pages} page{'s' if written.pages > 1 else ''}; {written.errors} error rows on errors.html")
    print(f"gallery: {gallery.uri}")
    index = f"{gallery.uri.rstrip('/')}/index.html" if gallery.is_s3 else Path(gallery.root, "index.html").as_uri()
    print(f"open: {index}" + (" (through the bucket's static website endpoint)" if gallery.is_s3 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
