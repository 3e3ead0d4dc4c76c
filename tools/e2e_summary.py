"""The figures of a tools/gpu_e2e.sh run, from what it left in its work folder and OUT: the job's images/s (whole
and steady), model-only and CPU-stage images/s, the GPU's utilisation and memory; into OUT/summary.json.

    python tools/e2e_summary.py --work /tmp/e2e --out "$OUT"

Reads: WORK/out (the job's output and manifest), WORK/job.start and job.end (epoch seconds), OUT/job.txt (its
terminal), OUT/gpu.csv (epoch seconds, GPU utilisation %, memory used MiB, the largest process's MiB; sampled),
OUT/model_speed.txt and OUT/cpu_stages.txt (their RESULT lines).
"""
import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from colorize_core import manifest  # noqa: E402
from colorize_core.storage import Location  # noqa: E402

STAGES = ("decode", "predict", "encode", "write")


def result_rate(path: Path) -> float | None:
    """The last images/s figure of a benchmark's RESULT line, or None if it has none (it failed)."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("RESULT")] if path.exists() else []
    rates = re.findall(r"([\d.]+) images/s", lines[-1]) if lines else []
    return float(rates[-1]) if rates else None


def job_figures(work: Path, job_text: str) -> dict:
    """The job's images, rates and stage timings, from its manifest and its terminal."""
    start, end = (float((work / f"job.{s}").read_text()) for s in ("start", "end"))
    rows, _ = manifest.read_all(Location(str(work / "out")))
    status = rows.column("status").to_numpy(zero_copy_only=False)
    ok = status == manifest.Status.OK
    written = np.sort(rows.column("timestamp").cast("int64").to_numpy()[ok]) / 1000  # ms -> s, each batch's end
    after_first = written[written > written[0]] if len(written) else written
    steady = len(after_first) / (written[-1] - written[0]) if len(after_first) else None
    resources = re.search(r"Resources\(.*?\)", job_text)
    return {
        "inputs": rows.num_rows, "ok": int(ok.sum()), "errors": int((status == manifest.Status.ERROR).sum()),
        "seconds": round(end - start, 2), "images_per_s": round(ok.sum() / (end - start), 2),
        # From the first batch written to the last: the rate once started (Ray, the actor and its model are up).
        "steady_images_per_s": round(steady, 2) if steady else None,
        "first_output_after_s": round(written[0] - start, 2) if len(written) else None,
        "precision": dict(Counter(rows.column("precision").to_pylist())),
        "stage_mean_s": {s: round(float(np.mean(rows.column(f"{s}_s").to_numpy()[ok])), 4) for s in STAGES},
        "resources": resources.group(0) if resources else None,
        "window": (start, end, float(written[0]) if len(written) else start, float(written[-1]) if len(written) else end),
    }


def gpu_figures(samples: Path, window: tuple[float, float, float, float]) -> dict | None:
    """GPU utilisation over the job and over its steady part, and the peak memory (whole GPU, largest process)."""
    if not samples.exists() or not samples.read_text().strip():
        return None
    table = np.array([[float(v or 0) for v in line.split(",")] for line in samples.read_text().splitlines()
                      if line.count(",") == 3 and "N/A" not in line])
    start, end, first, last = window
    in_job = table[(table[:, 0] >= start) & (table[:, 0] <= end)]
    steady = table[(table[:, 0] >= first) & (table[:, 0] <= last)]
    return {
        "samples_in_job": len(in_job),
        "utilisation_mean_job_pct": round(float(in_job[:, 1].mean()), 1) if len(in_job) else None,
        "utilisation_mean_steady_pct": round(float(steady[:, 1].mean()), 1) if len(steady) else None,
        "utilisation_max_pct": float(table[:, 1].max()),
        "memory_used_peak_mib": float(table[:, 2].max()),
        "process_memory_peak_mib": float(table[:, 3].max()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    job_text = (args.out / "job.txt").read_text()
    job = job_figures(args.work, job_text)
    summary = {"job": job, "gpu": gpu_figures(args.out / "gpu.csv", job.pop("window")),
               "model_only_images_per_s": result_rate(args.out / "model_speed.txt"),
               "cpu_stages_images_per_s": result_rate(args.out / "cpu_stages.txt")}
    known = [r for r in (summary["model_only_images_per_s"], summary["cpu_stages_images_per_s"]) if r]
    if known:  # the job cannot beat the lower of the two; the goal is 0.8 of it
        summary["limit_images_per_s"] = min(known)
        summary["job_over_limit"] = round(job["images_per_s"] / min(known), 3)
        if job["steady_images_per_s"]:
            summary["steady_over_limit"] = round(job["steady_images_per_s"] / min(known), 3)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
