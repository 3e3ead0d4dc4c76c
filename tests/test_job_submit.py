"""The jobs launched the cluster way: `ray job submit` to a `ray start --head` on 127.0.0.1."""
import json
import subprocess
from pathlib import Path

import cv2
import pytest

from tests import ray_cluster
from tests.conftest import write_colour_photos

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head started with `ray start --head` on 127.0.0.1; yields (dashboard address, environment)."""
    with ray_cluster.ray_head() as (_, address, env):
        dashboard = address.rsplit(":", 1)[1]
        listeners = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{dashboard}" in listeners and f"0.0.0.0:{dashboard}" not in listeners
        yield address, env


def submit(ray_head, *command: str, env_vars: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`ray job submit` as the README has it; `env_vars` go in the runtime environment, as an operator sets them."""
    address, env = ray_head
    runtime_env = ["--runtime-env-json", json.dumps({"env_vars": env_vars})] if env_vars else []
    submitted = subprocess.run([ray_cluster.RAY_CLI, "job", "submit", "--address", address, "--working-dir", str(ROOT),
                                *runtime_env, "--", "python", "-m", *command],
                               env=env, capture_output=True, text=True, timeout=600)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "succeeded" in submitted.stdout
    return submitted


def test_colorize_through_ray_job_submit(ray_head, tmp_path, model_file, archive_inputs):
    scans, colour = tmp_path / "scans", tmp_path / "colour"
    for key in ("boats.jpg", "grey16.png", "sub/dir/forest.jpg"):
        (scans / key).parent.mkdir(parents=True, exist_ok=True)
        (scans / key).write_bytes(archive_inputs[key])
    # Settings from the environment (COLORIZE_<FLAG>), as in a RayJob's pod spec; a flag given wins over it.
    submitted = submit(ray_head, "jobs.colorize", "--batch-size", "2",
                       env_vars={"COLORIZE_INPUT": str(scans), "COLORIZE_OUTPUT": str(colour),
                                 "COLORIZE_MODEL": str(model_file), "COLORIZE_BATCH_SIZE": "1000"})
    assert "done 3, skipped 0, failed 0 of 3 inputs" in submitted.stdout
    assert "batch_size=2," in submitted.stdout
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
