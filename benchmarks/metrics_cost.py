"""What the job's metrics cost (colorize_core/monitoring.py): the job with them on (the default) against
--no-metrics, in one run.

    python -m benchmarks.metrics_cost --n 500 --rounds 2

Each job runs in its own process on its own local Ray over the same N JPEG photos
(benchmarks.copy_photos); the order alternates each round (on, off; then off, on), so that a machine
that slows down or speeds up part-way weighs on both alike. Figures: images/s from each job's summary line;
and, less noisy than two whole runs, the driver's own time recording the metrics: RunMetrics.rows over the
metrics-on run's manifest, a batch of --batch rows at a time, in this process on a local Ray, per image.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import add_photos_flag, copy_photos, print_result, run_job
from colorize_core import manifest, runtime
from colorize_core.monitoring import RunMetrics
from colorize_core.storage import Location


def recording_seconds(output: Path, batch: int) -> tuple[float, int]:
    """Seconds RunMetrics.rows takes an image over the manifest of the run in `output`, and the rows timed."""
    rows, _ = manifest.read_all(Location(str(output)))
    rows = rows.drop_columns(["run"])
    runtime.start_ray()
    metrics = RunMetrics("benchmark", 0.01)
    metrics.rows(rows.slice(0, batch))  # the first records register the metrics with Ray
    start = time.perf_counter()
    for offset in range(0, rows.num_rows, batch):
        metrics.rows(rows.slice(offset, batch))
    return (time.perf_counter() - start) / rows.num_rows, rows.num_rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="photos (default 500)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch", type=int, default=16, help="rows a batch for the recording time (the job's CPU batch)")
    add_photos_flag(p)
    args = p.parse_args(argv)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    flags = {"on": (), "off": ("--no-metrics",)}
    with tempfile.TemporaryDirectory(prefix="colorize-metrics-") as scratch:
        scratch = Path(scratch)
        copy_photos(args.n, scratch / "in", args.photos)
        for r in range(args.rounds):
            for setting in ("on", "off") if r % 2 == 0 else ("off", "on"):
                rates[setting].append(run_job(scratch / "in", scratch / f"out-{setting}-{r}", *flags[setting]))
            print(f"round {r + 1}: metrics on {rates['on'][-1]:.2f} images/s, off {rates['off'][-1]:.2f}", flush=True)
        seconds, timed = recording_seconds(scratch / "out-on-0", args.batch)
    on, off = np.mean(rates["on"]), np.mean(rates["off"])
    return print_result("metrics_cost", f"n {args.n} rounds {args.rounds}: images/s metrics on {on:.2f} off {off:.2f}; "
          f"on/off {on / off:.3f}; recording {1e6 * seconds:.1f} us an image ({timed} rows), "
          f"{100 * seconds * on:.3f}% of the job's time an image")


if __name__ == "__main__":
    raise SystemExit(main())
