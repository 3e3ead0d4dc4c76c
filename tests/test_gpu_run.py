"""The prepared GPU run (tools/gpu_train.sh) on a tiny pack, as the lent machine runs it: the portfolio in the
background, then one call per recipe, each call's files within the device tool's return limits."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import pytest

from tests.conftest import colour_photo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ["regression", "classification-mix0.25", "classification-mix0.75"]
MiB = 2**20


def tiny_pack(pack: Path, model_file: Path) -> None:
    """tools/gpu_pack.py's layout: a/ (model, val crops, val.txt, some photos, train.txt) and b.zip (photos)."""
    (pack / "a" / "val").mkdir(parents=True)
    (pack / "a" / "init.keras").write_bytes(model_file.read_bytes())
    for i in range(2):
        cv2.imwrite(str(pack / "a" / "val" / f"v{i}.jpg"), cv2.resize(colour_photo(10 + i), (224, 224)))
    (pack / "a" / "val.txt").write_text("a/val/v0.jpg\na/val/v1.jpg\n")
    for part, seeds in (("a", range(3)), ("b", range(3, 6))):
        (pack / part).mkdir(exist_ok=True)
        for i in seeds:
            cv2.imwrite(str(pack / part / f"p{i}.webp"), cv2.resize(colour_photo(i), (224, 224)))
        (pack / part / "train.txt").write_text("".join(f"{part}/p{i}.webp\n" for i in seeds))
    with zipfile.ZipFile(pack / "b.zip", "w") as z:
        for path in sorted((pack / "b").iterdir()):
            z.write(path, path.relative_to(pack))
    for path in (pack / "b").iterdir():  # only the zip travels
        path.unlink()
    (pack / "b").rmdir()


def call(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / "out" / name
    env = {**os.environ, "OUT": str(out), "PACK": str(tmp_path / "pack"), "RUN": str(tmp_path / "run"),
           "PYTHON": sys.executable, "KERAS_BACKEND": "tensorflow", "PRECISION": "float32", "VALIDATE_EVERY": "2"}
    subprocess.run(["sh", "tools/gpu_train.sh", *args], cwd=ROOT, env=env, check=True, timeout=900)
    files = [f for f in out.rglob("*") if f.is_file()]
    assert len(files) <= 8 and all(f.stat().st_size <= 16 * MiB for f in files), files
    assert sum(f.stat().st_size for f in files) <= 64 * MiB, "a call returns at most 64 MiB"
    return out


def test_the_prepared_gpu_run_trains_the_portfolio_and_each_recipe_comes_back_within_the_limits(tmp_path, model_file):
    tiny_pack(tmp_path / "pack", model_file)
    first = call(tmp_path, "train", "run", "9", "--batch-size", "2")
    summary = json.loads((first / "summary.json").read_text())
    assert list(summary["recipes"]) == RECIPES and (first / "exit").read_text().strip() == "0"
    assert all(r["steps"] > 0 and r["best"]["val_images"] == 2 for r in summary["recipes"].values())
    run = json.loads((tmp_path / "run" / "regression" / "run.json").read_text())
    assert run["train_photos"] == 6, "the photos of both parts: b.zip unzipped on arrival"
    assert run["recipe"]["unfreeze"] == ["block4", "block5"] and run["recipe"]["encoder_lr_scale"] == 0.1
    returned = {RECIPES[0]: first}
    for name in RECIPES[1:]:
        returned[name] = call(tmp_path, name, "fetch", name)
    for name, out in returned.items():
        best = out / name / "best"
        assert {f.name for f in best.iterdir()} == {"run.json", "decoder.npz", "encoder_block4.npz", "encoder_block5.npz"}
        assert json.loads((best / "run.json").read_text())["best"]["step"] == summary["recipes"][name]["best"]["step"]
    # What came back builds the model file here (the starting model: the pack's).
    model = tmp_path / "new.keras"
    subprocess.run([sys.executable, "-m", "jobs.train_gpu", "--out", str(returned[RECIPES[2]] / RECIPES[2] / "best"),
                    "--init-model", str(tmp_path / "pack" / "a" / "init.keras"), "--export", str(model)],
                   cwd=ROOT, check=True, timeout=300)
    assert model.stat().st_size > 10 * MiB
