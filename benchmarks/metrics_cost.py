"""What the job's metrics cost (colorize_core/monitoring.py): the job with them on (the default) against
--no-metrics, in one run.

    python -m benchmarks.metrics_cost --n 500 --rounds 2

Each job runs in its own process on its own local Ray over the same N JPEG photos
(benchmarks.throughput.copy_photos); the order alternates each round (on, off; then off, on), so that a machine
that slows down or speeds up part-way weighs on both alike. Figures: images/s from each job's summary line.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import result_tail, run_job
from benchmarks.throughput import copy_photos


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="photos (default 500)")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    flags = {"on": (), "off": ("--no-metrics",)}
    with tempfile.TemporaryDirectory(prefix="colorize-metrics-") as scratch:
        scratch = Path(scratch)
        copy_photos(args.n, scratch / "in")
        for r in range(args.rounds):
            for setting in ("on", "off") if r % 2 == 0 else ("off", "on"):
                rates[setting].append(run_job(scratch / "in", scratch / f"out-{setting}-{r}", *flags[setting]))
            print(f"round {r + 1}: metrics on {rates['on'][-1]:.2f} images/s, off {rates['off'][-1]:.2f}", flush=True)
    on, off = np.mean(rates["on"]), np.mean(rates["off"])
    print(f"RESULT metrics_cost n {args.n} rounds {args.rounds}: images/s metrics on {on:.2f} off {off:.2f}; "
          f"on/off {on / off:.3f}; {result_tail()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
