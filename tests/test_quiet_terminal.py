"""What a user sees of the colorize job: one line saying what runs, progress, the summary; nothing of Ray's or
TensorFlow's start-up chatter, which stays in Ray's log folder (and on the terminal with --verbose)."""
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from colorize_core.progress import Progress, duration

pytestmark = pytest.mark.integration

NOISE = re.compile(r"core_worker|oneDNN|absl|Token authentication")
REPO = Path(__file__).resolve().parent.parent


def run_colorize(tmp_path: Path, model_file: Path, *flags: str) -> subprocess.CompletedProcess:
    """The job as a user starts it: its own process, an environment without what this test process has set."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "TF_CPP_MIN_LOG_LEVEL", "RAY_AUTH_MODE", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "jobs.colorize", "--input", str(REPO / "examples"), "--output",
                           str(tmp_path / "out"), "--model", str(model_file), *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_the_job_prints_what_runs_and_its_summary_only(tmp_path, model_file):
    job = run_colorize(tmp_path, model_file)
    lines = (job.stdout + job.stderr).splitlines()
    assert job.returncode == 0, job.stdout + job.stderr
    assert not [line for line in lines if NOISE.search(line)], "\n".join(lines)
    assert lines[0].startswith("colorize: ") and lines[-1].startswith("done 5, skipped 0, failed 0 of 5 inputs")
    assert len(lines) <= 10, "\n".join(lines)  # what runs, progress lines, the summary
    logs = Path(lines[-1].rsplit("logs: ", 1)[1])
    driver_stderr = "".join(p.read_text() for p in logs.glob("colorize-driver-stderr-*.log"))
    assert "core_worker" in driver_stderr, "Ray's native stderr went to its log folder, not away"

    verbose = run_colorize(tmp_path, model_file, "--verbose", "--overwrite")
    assert verbose.returncode == 0 and "core_worker" in verbose.stderr and "Dataset" in verbose.stderr + verbose.stdout


def test_progress_shows_images_done_rate_and_time_left():
    out = io.StringIO()
    progress = Progress(out, every_s=0)
    chunks = list(progress.keys([["a", "b", "c"], ["d"]]))
    assert chunks == [["a", "b", "c"], ["d"]] and progress.listed == 4 and progress.listing_done
    progress.rows(pa.table({"status": ["ok", "error"]}))
    progress.rows(pa.table({"status": ["skipped"]}))
    line = out.getvalue().splitlines()[-1]
    assert re.fullmatch(r"3 of 4 images, 1 skipped, 1 failed; \d+\.\d\d images/s; \d+ s left", line), line
    assert duration(30) == "30 s" and duration(600) == "10 min" and duration(4 * 3600 + 120) == "4 h 2 min"

    listing = Progress(io.StringIO(), every_s=0)
    next(iter(listing.keys([["a"], ["b"]])))
    assert "1+ (still listing)" in listing.line() and "time left: --" in listing.line()
