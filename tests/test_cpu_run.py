"""The prepared CPU run (tools/cpu_train.sh) on a tiny set of photos: a 60 s budget shared by every recipe of the
portfolio, in mixed bfloat16 as it runs on an AMX CPU, then resumed after a cut. On a CPU without AMX it refuses
unless FORCE=1."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from colorize_core import training
from colorize_core.runtime import cpu_has_amx
from tests.conftest import write_colour_photos

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
RECIPES = list(training.PORTFOLIO)


def cpu_train(tmp_path: Path, *args: str, force: bool = True) -> subprocess.CompletedProcess:
    photos = tmp_path / "photos"
    env = {**os.environ, "PYTHON": sys.executable, "KERAS_BACKEND": "tensorflow", "ROOT": str(photos),
           "TRAIN": str(photos / "train.txt"), "VAL": str(photos / "val.txt"), "RECIPES": " ".join(RECIPES),
           "BATCH": "2", "VALIDATE_EVERY": "5", "CACHE": str(tmp_path / "cache"), "FORCE": "1" if force else "0"}
    return subprocess.run(["sh", "tools/cpu_train.sh", "1", str(tmp_path / "run"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def test_the_prepared_cpu_run_trains_every_recipe_in_a_minute_and_resumes(tmp_path, model_file):
    photos = write_colour_photos(tmp_path / "photos", 6)
    (photos / "train.txt").write_text("".join(f"p{i}.jpg\n" for i in range(4)))
    (photos / "val.txt").write_text("p4.jpg\np5.jpg\n")
    if not cpu_has_amx():
        refused = cpu_train(tmp_path, "--init-model", str(model_file), force=False)
        assert refused.returncode == 2 and "no AMX" in refused.stderr and "FORCE=1" in refused.stderr
        assert not (tmp_path / "run" / "summary.json").exists()

    done = cpu_train(tmp_path, "--init-model", str(model_file))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert list(summary["recipes"]) == RECIPES
    for name in RECIPES:
        run = json.loads((tmp_path / "run" / name / "run.json").read_text())
        assert run["finished"] and run["steps"] > 0 and run["budget_s"] == pytest.approx(60 / len(RECIPES), rel=0.01)
        assert run["recipe"]["precision"] == "bfloat16" and run["recipe"]["unfreeze"] == ["block5"]
        assert (tmp_path / "run" / name / "best" / "decoder.npz").is_file(), "each recipe keeps its best"
    assert list((tmp_path / "cache").glob("*.pixels.npy")), "the decoded photos kept for the next run"

    # Cut in the last recipe: the resumed run trains it on to its share and keeps the finished ones as they were.
    last = tmp_path / "run" / RECIPES[-1] / "run.json"
    cut = json.loads(last.read_text())
    first_before = (tmp_path / "run" / RECIPES[0] / "run.json").read_text()
    last.write_text(json.dumps({**cut, "finished": False, "trained_s": 1.0}))
    resumed = cpu_train(tmp_path, "--init-model", str(model_file), "--resume-from", str(tmp_path / "run"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "run" / RECIPES[0] / "run.json").read_text() == first_before
    after = json.loads(last.read_text())
    assert after["finished"] and after["steps"] > cut["steps"] and after["resumed_from"].endswith(RECIPES[-1])
