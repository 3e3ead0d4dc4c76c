"""Peak memory of the whole colorize job (driver, Ray and every worker it starts) as the input grows: a
streaming job's peak should not grow with the number of images. Also the time to the first written output
with an input list of many keys.

    python -m benchmarks.memory --n 500 5000 --list 100000

Inputs are hard links to the photos of ../shared/datasets/photos (or --photos), repeated as needed: real files
to read and decode, and no disk used (copies where the photos are on another filesystem; the job refuses
symbolic links leading outside its input). The model is a tiny stand-in with the colorizer's input and output, built here,
so that 5,000 images take minutes on a CPU: the model's own memory is constant and not what is measured.
Memory is the sum of PSS (proportional set size: shared pages counted once) over the job's process tree,
sampled every 0.2 s. `--list N` runs the job on an input list of N keys, reports the time to its first output
and the peak until then plus 30 s, and stops it.
"""
import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import ROOT, add_photos_flag, print_result


def tiny_model(path: Path) -> Path:
    """A stand-in colorizer, a few KB: the colorizer's input (L, 224x224) and an output layer "ab" of 2 channels
    (what model_file checks), so the job takes it; its memory and time are next to nothing."""
    import keras

    L = keras.Input((224, 224, 1))
    x = keras.layers.AveragePooling2D(8)(L)
    x = keras.layers.Conv2D(2, 3, padding="same", activation="tanh", name="ab")(x)
    keras.Model(L, keras.layers.UpSampling2D(8)(x)).save(path)
    return path


def linked_inputs(folder: Path, n: int, photos: Path) -> list[str]:
    """`n` keys in `folder`, hard links to (or copies of) the photos of `photos`/MANIFEST.csv, repeated."""
    with open(photos / "MANIFEST.csv") as f:
        paths = [row["path"] for row in csv.DictReader(f)]
    folder.mkdir(parents=True)
    keys = [f"scan-{i:06d}.jpg" for i in range(n)]
    for i, key in enumerate(keys):
        try:
            os.link(photos / paths[i % len(paths)], folder / key)
        except OSError:  # another filesystem
            shutil.copyfile(photos / paths[i % len(paths)], folder / key)
    return keys


def tree_pss_bytes(root: int) -> dict[str, int]:
    """PSS over `root` and all its descendants, summed by process name (/proc/PID/comm)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    by_name, todo = {}, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            name = open(f"/proc/{pid}/comm").read().strip()
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    by_name[name] = by_name.get(name, 0) + int(line.split()[1]) * 1024
        except OSError:
            pass
    return by_name


def run(inputs: Path, output: Path, model: Path, extra: list[str], stop_after_first_s: float | None,
        cwd: Path | None = None) -> dict:
    """The job (of the checkout `cwd`, default this one) on `inputs`, its process tree's memory sampled."""
    job = subprocess.Popen([sys.executable, "-m", "jobs.colorize", "--input", str(inputs), "--output", str(output),
                            "--model", str(model), "--batch-size", "16", *extra], cwd=cwd or ROOT, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start, peak, first, at_peak, quarters = time.perf_counter(), 0, None, {}, []
    while job.poll() is None:
        by_name = tree_pss_bytes(job.pid)
        if sum(by_name.values()) > peak:
            peak, at_peak = sum(by_name.values()), by_name
        quarters.append(sum(by_name.values()))
        if first is None and output.exists() and any(e.name.endswith(".jpg") for e in os.scandir(output)):
            first = time.perf_counter() - start
        if first is not None and stop_after_first_s is not None and time.perf_counter() - start > first + stop_after_first_s:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
            break
        time.sleep(0.2)
    # The peak in each quarter of the run: a streaming job's memory levels off; one that keeps growing does not.
    n = max(1, len(quarters) // 4)
    return {"seconds": time.perf_counter() - start, "peak_gib": peak / 2**30, "first_output_s": first,
            "exit": job.returncode,
            "peak_by_quarter_gib": [round(max(quarters[i:i + n]) / 2**30, 2) for i in range(0, n * 4, n)],
            "at_peak_gib": {k: round(v / 2**30, 2) for k, v in sorted(at_peak.items(), key=lambda kv: -kv[1])
                            if v > 2**26}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[500, 5000])
    p.add_argument("--list", type=int, default=0, help="also run an input list of this many keys, to its first output")
    p.add_argument("--job-flags", default="", help="more flags for the job, e.g. '--object-store-mib 256'")
    add_photos_flag(p)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="colorize-memory-"))
    model = tiny_model(work / "tiny.keras")
    results, figures = {}, []
    for n in args.n:
        linked_inputs(work / f"in-{n}", n, args.photos)
        results[n] = run(work / f"in-{n}", work / f"out-{n}", model, args.job_flags.split(), None)
        print(f"{n} images: {results[n]}", flush=True)
        if results[n]["exit"]:
            raise SystemExit(f"the job on {n} images exited {results[n]['exit']}: its figures are not the job's")
        figures.append(f"{n} images peak {results[n]['peak_gib']:.2f} GiB in {results[n]['seconds']:.1f} s")
    if len(args.n) > 1:
        low, high = results[min(args.n)], results[max(args.n)]
        print(f"peak memory {max(args.n)} / {min(args.n)} images: {high['peak_gib'] / low['peak_gib']:.3f}")
        figures.append(f"peak {max(args.n)} / {min(args.n)} images {high['peak_gib'] / low['peak_gib']:.3f}")
    if args.list:
        keys = linked_inputs(work / "in-list", args.list, args.photos)
        (work / "keys.txt").write_text("\n".join(keys) + "\n")
        result = run(work / "in-list", work / "out-list", model,
                     ["--input-list", str(work / "keys.txt"), *args.job_flags.split()], 30.0)
        print(f"input list of {args.list} keys (stopped 30 s after the first output): {result}", flush=True)
        figures.append(f"input list of {args.list} keys first output {result['first_output_s']:.1f} s peak "
                       f"{result['peak_gib']:.2f} GiB")
    return print_result("memory", "; ".join(figures))


if __name__ == "__main__":
    sys.exit(main())
