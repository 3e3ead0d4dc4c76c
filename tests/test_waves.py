"""Keys in waves: the driver reads them a chunk at a time and runs the chain a wave at a time, all waves into
one manifest, with what is done already skipped from one listing of the output (pipeline.DoneKeys)."""
import cv2
import numpy as np
import pytest

from colorize_core import manifest, pipeline
from colorize_core.storage import Location
from tests.archive import make_archive, run_job
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration


def test_waves_regroup_chunks():
    waves = pipeline.waves([["k"] * 7] * 5, first=4, size=10)
    assert [len(w) for w in waves] == [4, 10, 10, 10, 1], "a short first wave, then full ones, nothing lost"
    assert list(pipeline.waves([], 4, 10)) == []


def test_done_keys_are_exact(tmp_path):
    for key in ("a.jpg", "sub/b.png", "c d.tif"):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"x")
    done = pipeline.DoneKeys(Location(str(tmp_path)))
    assert done.contains(["a.jpg", "sub/b.png", "b.png", "c d.tif", "c_d.tif", ""]).tolist() == \
        [True, True, False, True, False, False]
    assert pipeline.DoneKeys(Location(str(tmp_path / "empty"))).contains(["a.jpg"]).tolist() == [False]


def test_a_run_in_several_waves_writes_one_manifest(tmp_path, model_file, monkeypatch):
    grey = cv2.resize(cv2.imread(str(EXAMPLES / "forest.jpg"), cv2.IMREAD_GRAYSCALE), (48, 32))
    images = {f"s{i:02d}.jpg": cv2.imencode(".jpg", np.roll(grey, 5 * i, axis=1))[1].tobytes() for i in range(11)}
    archive = make_archive("local", tmp_path, None, "waves", images)
    done = ["s01.jpg", "s04.jpg", "s09.jpg"]
    for key in done:
        (tmp_path / "colour").mkdir(exist_ok=True)
        (tmp_path / "colour" / key).write_bytes(images[key])  # as if an earlier run had written them
    monkeypatch.setattr(pipeline, "FIRST_WAVE_KEYS", 3)
    monkeypatch.setattr(pipeline, "WAVE_KEYS", 8)  # waves of 3 and 8
    wave_sizes = []
    chain = pipeline.colorize_dataset
    monkeypatch.setattr(pipeline, "colorize_dataset", lambda keys, *a: wave_sizes.append(len(keys)) or chain(keys, *a))
    code, rows = run_job(archive, model_file)
    assert wave_sizes == [3, 8]
    assert code == 0 and sorted(rows) == sorted(images), "every key once, from every wave"
    assert sorted(k for k, r in rows.items() if r["status"] == "skipped") == done
    assert all(r["status"] == "ok" for k, r in rows.items() if k not in done)
    complete, incomplete = manifest.runs(Location(archive.output))
    assert len(complete) == 1 and incomplete == []
