"""The prepared run of the job on a lent GPU (tools/gpu_e2e.sh), here on the CPU with a tiny pack: packed into
parts, refused while a part is missing, then run as the lent machine runs it (its own Ray head, the job, the
model alone, the CPU stages alone), each call's files within the device tool's return limits."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import pytest
import ray

from colorize_core import runtime
from tests.conftest import colour_photo
from tools.local_s3 import free_port

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

ROOT = Path(__file__).resolve().parent.parent
MiB = 2**20


def script(step: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "tools/gpu_e2e.sh", step, *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=1200)


def test_the_prepared_job_run_packs_checks_its_parts_and_reports_every_figure(tmp_path, model_file):
    if ray.is_initialized():
        ray.shutdown()  # one Ray at a time on a small machine
    job_pack = tmp_path / "job-pack"
    (job_pack / "photos").mkdir(parents=True)
    shutil.copyfile(model_file, job_pack / "model.keras")
    for seed in range(3):  # as tools/gpu_pack.py --job packs them: grey JPEGs
        cv2.imwrite(str(job_pack / "photos" / f"p{seed}.jpg"), cv2.cvtColor(colour_photo(seed), cv2.COLOR_BGR2GRAY))
    work = Path(tempfile.mkdtemp(prefix="e2e-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    out = tmp_path / "out"
    env = {"PARTS": str(tmp_path / "parts"), "JOB_PACK": str(job_pack), "WHEELS": "", "WORK": str(work),
           "OUT": str(out), "PYTHON": sys.executable, "KERAS_BACKEND": "tensorflow", "REPEAT": "2",
           "CPU_REPEAT": "1", "MODEL_SECONDS": "1", "RAY_PORT": str(free_port())}
    try:
        size = sum(f.stat().st_size for f in job_pack.rglob("*") if f.is_file())
        packed = script("pack", {**env, "PART_BYTES": str(size // 2)})
        assert packed.returncode == 0, packed.stderr
        parts = sorted(p.name for p in (tmp_path / "parts").iterdir())
        assert parts == ["part-1-of-3", "part-2-of-3", "part-3-of-3"], parts

        held_back = tmp_path / "parts" / "part-2-of-3"
        held_back.rename(tmp_path / "held-back")
        refused = script("run", env)
        assert refused.returncode == 2 and "part-2-of-3 did not arrive" in (out / "log.txt").read_text()
        (tmp_path / "held-back").rename(held_back)

        done = script("run", env)
        log = (out / "log.txt").read_text()
        assert done.returncode == 0, log[-4000:]
        assert "summary.json" in done.stdout or '"job"' in done.stdout, "the call's output ends with the log's end"
        summary = json.loads((out / "summary.json").read_text())
        job = summary["job"]
        assert (job["inputs"], job["ok"], job["errors"]) == (6, 6, 0), job  # 3 photos, 2 copies
        assert job["precision"] == {runtime.resolve_precision("auto", gpus=False)[0]: 6}, "auto on this CPU"
        assert "gpus_per_actor=0.0" in job["resources"] and job["images_per_s"] > 0
        assert summary["model_only_images_per_s"] > 0 and summary["cpu_stages_images_per_s"] > 0
        assert summary["job_over_limit"] == pytest.approx(
            job["images_per_s"] / min(summary["model_only_images_per_s"], summary["cpu_stages_images_per_s"]), abs=1e-3)
        assert summary["gpu"] is None, "no GPU here: no samples"
        assert "Ray sees" in (out / "ray.txt").read_text()
        files = [f for f in out.rglob("*") if f.is_file()]
        assert len(files) <= 8 and all(f.stat().st_size <= 16 * MiB for f in files), files
    finally:
        shutil.rmtree(work, ignore_errors=True)
