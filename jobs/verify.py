"""Fixity audit of an output: every file its runs wrote, read again and compared with the sha256 in the manifest.

    python -m jobs.verify --output out/examples
    python -m jobs.verify --output s3://archive/colour/ --s3-endpoint http://127.0.0.1:8333

Prints one line for each file that is missing, changed or unexpected (under the output, but written by no run),
and a summary; exits 1 if there is any, 0 if every file is as written. Memory stays flat however many files.
"""
import argparse
import sys
import time

from colorize_core import fixity, run_lock
from colorize_core.storage import Location

EXIT_FAULTS = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, help="the colorize job's --output: a folder or s3://bucket/prefix")
    p.add_argument("--s3-endpoint",
                   help="endpoint of an S3-compatible server, e.g. http://127.0.0.1:8333 (default: AWS_ENDPOINT_URL)")
    p.add_argument("--threads", type=int, default=8, help="files read at once (default 8)")
    p.add_argument("--show-unrecorded", action="store_true",
                   help="also list the files with no sha256 recorded (written before fixity was recorded)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = Location(args.output, args.s3_endpoint)
    output.check_access()
    if holder := run_lock.live_holder(output):
        raise SystemExit(f"{holder} is writing into {args.output} now: verify once it has finished")
    shown = {fixity.MISSING, fixity.CHANGED, fixity.UNEXPECTED} | ({fixity.UNRECORDED} if args.show_unrecorded else set())

    def show(kind: str, key: str, detail: str) -> None:
        if kind in shown:
            print(f"{kind}: {key} ({detail})", flush=True)

    start = time.perf_counter()
    audit = fixity.audit(output, fixity.Audit(show), args.threads)
    if not audit.runs:
        raise SystemExit(f"no manifest under {args.output}/_manifest: not a colorize job's output")
    c = audit.counts
    print(f"verified {args.output} in {time.perf_counter() - start:.1f} s, {audit.runs} runs: {c['ok']} as written, "
          f"{c[fixity.CHANGED]} changed, {c[fixity.MISSING]} missing, {c[fixity.UNEXPECTED]} unexpected, "
          f"{c[fixity.UNRECORDED]} with no sha256 recorded")
    return EXIT_FAULTS if audit.faults else 0


if __name__ == "__main__":
    sys.exit(main())
