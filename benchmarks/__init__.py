"""Benchmarks: scripts that print figures (results in RESULTS.md). Each is `python -m benchmarks.NAME`, has a
main(argv), and ends with one line `RESULT NAME ...: figures; machine ...; commit ...` (result_tail), the line
that runs are compared by and that tests/test_benchmarks.py looks for."""
import csv
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
PHOTOS = SHARED / "photos"  # BSDS500 photos with MANIFEST.csv (path, split): the benchmarks' default photos


def add_photos_flag(p) -> None:
    """--photos: a folder of photos with MANIFEST.csv (columns path and split), default ../shared's."""
    p.add_argument("--photos", type=Path, default=PHOTOS,
                   help=f"a folder with MANIFEST.csv (columns path, split) (default {PHOTOS})")


def copy_photos(n: int, folder: Path, photos: Path = PHOTOS) -> int:
    """N JPEGs of `photos` (its MANIFEST.csv's .jpg rows, repeated as copy-K/... where there are fewer) into `folder`."""
    with open(photos / "MANIFEST.csv") as f:
        jpegs = [row["path"] for row in csv.DictReader(f) if row["path"].lower().endswith((".jpg", ".jpeg"))]
    if not jpegs:
        raise SystemExit(f"no JPEG photos in {photos}/MANIFEST.csv")
    for i in range(n):
        path = jpegs[i % len(jpegs)]
        target = folder / (path if i < len(jpegs) else f"copy-{i // len(jpegs)}/{path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photos / path, target)
    return n


def commit() -> str:
    """The repository's commit, short ("unknown" outside a git checkout)."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    """The CPU's model name, its count, and whether it has AMX."""
    from colorize_core.runtime import cpu_has_amx

    name = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        name = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), name)
    return f"{name}, {os.cpu_count()} CPUs, {'AMX' if cpu_has_amx() else 'no AMX'}"


def result_tail() -> str:
    """The end of every RESULT line: machine and commit."""
    return f"machine {machine()}; commit {commit()}"


def print_result(name: str, figures: str) -> int:
    """Print the benchmark's RESULT line: its name, its figures, the machine and the commit. 0: main's exit status."""
    print(f"RESULT {name} {figures}; {result_tail()}", flush=True)
    return 0


def run_job(source: Path, target: Path, *flags: str, checkout: Path = ROOT) -> float:
    """`python -m jobs.colorize` of `checkout` (its own code, whatever is installed) over `source` into `target`
    (a fresh folder), in its own process and local Ray, with the shipped model: images/s from its summary line."""
    from colorize_core.model_file import DEFAULT_MODEL

    env = {**os.environ, "PYTHONPATH": str(checkout)}  # in the job's process and in its Ray workers
    done = subprocess.run([sys.executable, "-m", "jobs.colorize", "--input", str(source), "--output", str(target),
                           "--model", str(DEFAULT_MODEL), *flags], cwd=checkout, env=env, capture_output=True, text=True)
    found = re.search(r"done (\d+), .* \(([\d.]+) images/s\)", done.stdout)
    if done.returncode or not found:
        raise SystemExit(f"the job in {checkout} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return float(found.group(2))
