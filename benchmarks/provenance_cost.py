"""What the archival record costs: the job with the sha256s and the new metadata (source type, DerivedFrom,
caption note) against the job before them, and with C2PA signing on, in one run.

    python -m benchmarks.provenance_cost --n 500 --before bbff3a1

The job "before" is the commit --before, checked out in a temporary git worktree and run with the same
Python and the same model file. Each job runs in its own process on its own local Ray, over the same N JPEG
photos (benchmarks.copy_photos), in the order before, now, signed, --rounds times. Figures: images/s
from each job's own summary line, and the encode stage's mean seconds an image from its manifest (where
the metadata and signing are done: less noisy than the whole run).
"""
import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import benchmarks
from benchmarks import ROOT, add_photos_flag, copy_photos, print_result
from colorize_core import credentials, manifest
from colorize_core.storage import Location


def run_job(checkout: Path, source: Path, target: Path, *flags: str) -> tuple[float, float]:
    """The job of `checkout` over `source` into `target` (a fresh folder): (images/s, mean encode_s of ok rows)."""
    rate = benchmarks.run_job(source, target, *flags, checkout=checkout)
    rows, _ = manifest.read_all(Location(str(target)))
    ok = rows.filter(rows.column("status").to_numpy(zero_copy_only=False) == "ok")
    recorded = ok.column("output_sha256").null_count < ok.num_rows  # the old code's rows have no such column
    if recorded != (checkout == ROOT):
        raise SystemExit(f"{checkout}: its job {'recorded' if recorded else 'did not record'} sha256s: not the code asked for")
    return rate, float(np.mean(ok.column("encode_s").to_numpy()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="photos (default 500)")
    p.add_argument("--before", default="bbff3a1", help="the commit before the archival record (default bbff3a1)")
    p.add_argument("--rounds", type=int, default=1)
    add_photos_flag(p)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="colorize-provenance-") as scratch:
        scratch = Path(scratch)
        source = scratch / "in"
        copy_photos(args.n, source, args.photos)
        before = scratch / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)
        chain, key, _ = credentials.make_test_chain(scratch)
        try:
            figures: dict[str, list[tuple[float, float]]] = {"before": [], "now": [], "signed": []}
            for r in range(args.rounds):
                figures["before"].append(run_job(before, source, scratch / f"out-before-{r}"))
                figures["now"].append(run_job(ROOT, source, scratch / f"out-now-{r}"))
                figures["signed"].append(run_job(ROOT, source, scratch / f"out-signed-{r}", "--c2pa-cert", chain,
                                                 "--c2pa-key", key))
                print(f"round {r + 1}: " + ", ".join(f"{name} {f[-1][0]:.2f} images/s (encode {1000 * f[-1][1]:.1f} ms)"
                                                     for name, f in figures.items()), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], capture_output=True)
    mean = {name: np.mean(f, axis=0) for name, f in figures.items()}
    return print_result("provenance_cost", f"n {args.n} rounds {args.rounds} before {args.before}: images/s before "
          f"{mean['before'][0]:.2f} now {mean['now'][0]:.2f} signed {mean['signed'][0]:.2f}; now/before "
          f"{mean['now'][0] / mean['before'][0]:.3f}, signed/before {mean['signed'][0] / mean['before'][0]:.3f}; "
          f"encode ms before {1000 * mean['before'][1]:.1f} now {1000 * mean['now'][1]:.1f} signed "
          f"{1000 * mean['signed'][1]:.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
