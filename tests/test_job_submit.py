"""The jobs launched the cluster way: `ray job submit` to a `ray start --head` on 127.0.0.1."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import pytest
import ray

from jobs.local_s3 import free_port
from tests.conftest import write_colour_photos

ROOT = Path(__file__).resolve().parent.parent
RAY_CLI = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head started with `ray start --head` on 127.0.0.1; yields (dashboard address, environment)."""
    if ray.is_initialized():
        ray.shutdown()  # one Ray at a time on a small machine; later tests start their own again
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    head = subprocess.Popen(
        [RAY_CLI, "start", "--head", "--block", f"--port={free_port()}", "--node-ip-address=127.0.0.1",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--num-cpus=2", f"--temp-dir={temp_dir}",
         "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{address}/api/version", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not come up"
                assert head.poll() is None, "ray start --head exited"
                time.sleep(1)
        listeners = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{dashboard}" in listeners and f"0.0.0.0:{dashboard}" not in listeners
        yield address, env
    finally:
        head.send_signal(signal.SIGINT)  # --block: stops the head's processes and exits
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def submit(ray_head, *command: str) -> subprocess.CompletedProcess:
    address, env = ray_head
    submitted = subprocess.run([RAY_CLI, "job", "submit", "--address", address, "--working-dir", str(ROOT), "--",
                                "python", "-m", *command], env=env, capture_output=True, text=True, timeout=600)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "succeeded" in submitted.stdout
    return submitted


def test_colorize_through_ray_job_submit(ray_head, tmp_path, model_file, archive_inputs):
    scans, colour = tmp_path / "scans", tmp_path / "colour"
    for key in ("boats.jpg", "grey16.png", "sub/dir/forest.jpg"):
        (scans / key).parent.mkdir(parents=True, exist_ok=True)
        (scans / key).write_bytes(archive_inputs[key])
    submitted = submit(ray_head, "jobs.colorize", "--input", str(scans), "--output", str(colour),
                       "--model", str(model_file), "--batch-size", "2")
    assert "done 3, skipped 0, failed 0 of 3 inputs" in submitted.stdout
    for key in ("boats.jpg", "grey16.png", "sub/dir/forest.jpg"):
        out = cv2.imread(str(colour / key), cv2.IMREAD_UNCHANGED)
        original = cv2.imread(str(scans / key), cv2.IMREAD_UNCHANGED)
        assert out.shape[:2] == original.shape[:2] and out.ndim == 3 and out.dtype == original.dtype
    assert list((colour / "_manifest").glob("run=*/*.parquet"))


def test_train_through_ray_job_submit(ray_head, tmp_path, model_file):
    photos, runs = write_colour_photos(tmp_path / "photos", 4), tmp_path / "runs"
    submit(ray_head, "jobs.train", "--input", str(photos), "--output", str(runs), "--name", "submitted",
           "--workers", "2", "--batch-size", "2", "--epochs", "1", "--init-model", str(model_file))
    assert len(list((runs / "submitted").glob("checkpoint_*/colorizer.keras"))) == 1
    assert json.loads((runs / "submitted" / "metrics.json").read_text())["epoch"] == 1
    assert (runs / "submitted" / "colorizer.keras").stat().st_size > 1_000_000
