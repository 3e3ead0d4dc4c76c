"""Ten million keys against a hundred thousand: the job's driver memory and its time to the first output, with an
input list (text, a key a line) of which only the first few hundred keys exist.

    python -m benchmarks.key_stream --sizes 100000 10000000 [--repo PATH]

Each run is the real job (python -m jobs.colorize --input-list ...) in its own process, with a tiny stand-in
model of the colorizer's shape; it is stopped SECONDS after its first output is written (or GIVE_UP seconds
without one). The driver's peak RSS is the kernel's high-water mark (VmHWM) just before the stop. --repo runs another checkout's job (say, the one
before keys streamed) on the same lists, for a before/after in one run.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import ROOT, print_result
from tests.test_faults import kill_job  # the job and every process below it, whatever session Ray started it in

EXISTING = 300
SECONDS = 20
GIVE_UP = 300  # seconds without any output: stopped, reported as "> GIVE_UP"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_once(repo: Path, key_list: Path, scans: Path, out: Path, model: str, seconds: float = SECONDS
             ) -> tuple[float | None, float]:
    """(seconds to the first output, or None after GIVE_UP; the driver's peak RSS in MiB `seconds` later)."""
    job = subprocess.Popen([sys.executable, "-m", "jobs.colorize", "--input", str(scans), "--input-list", str(key_list),
                            "--output", str(out), "--model", model, "--max-error-fraction", "1"],
                           cwd=repo, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.perf_counter()
    try:
        first = None
        while time.perf_counter() - start < GIVE_UP:
            if any(out.glob("*.jpg")):
                first = time.perf_counter() - start
                break
            if job.poll() is not None:
                raise SystemExit(f"the job exited ({job.returncode}) before writing anything")
            time.sleep(0.05)
        time.sleep(seconds)
        return first, peak_rss_mib(job.pid)
    finally:
        kill_job(job)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 10_000_000])
    p.add_argument("--repo", type=Path, action="append", default=[], help="another checkout to run as well")
    p.add_argument("--seconds", type=float, default=SECONDS, help=f"how long after the first output (default {SECONDS})")
    args = p.parse_args(argv)
    figures = []
    import cv2
    import numpy as np

    from benchmarks.memory import tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scans = tmp / "scans"
        scans.mkdir()
        grey = cv2.resize(cv2.imread(str(ROOT / "examples" / "forest.jpg"), cv2.IMREAD_GRAYSCALE), (96, 64))
        for i in range(EXISTING):
            cv2.imwrite(str(scans / f"s{i:08d}.jpg"), np.roll(grey, 7 * i, axis=1))
        model = str(tiny_model(tmp / "tiny.keras"))
        lists = {}
        for n in args.sizes:
            lists[n] = tmp / f"keys-{n}.txt"
            with open(lists[n], "w") as f:
                for start in range(0, n, 1_000_000):
                    f.write("".join(f"s{i:08d}.jpg\n" for i in range(start, min(n, start + 1_000_000))))
        print(f"input lists of {', '.join(f'{n:,}' for n in args.sizes)} keys ({EXISTING} exist); "
              f"stopped {args.seconds:g} s after the first output")
        print("| checkout | keys | first output (s) | driver peak RSS (MiB) |")
        print("|---|---|---|---|")
        for repo in [ROOT, *args.repo]:
            for n, key_list in lists.items():
                first, rss = run_once(repo, key_list, scans, tmp / f"out-{repo.name}-{n}", model, args.seconds)
                shown = f"> {GIVE_UP}" if first is None else f"{first:.1f}"
                print(f"| {repo.name} | {n:,} | {shown} | {rss:.0f} |", flush=True)
                figures.append(f"{repo.name} {n} keys first output {shown} s, driver peak {rss:.0f} MiB")
    return print_result("key_stream", ", ".join(figures))


if __name__ == "__main__":
    sys.exit(main())
