"""Both heads trained for a few steps through each launcher (jobs.train on Ray Train, jobs.train_gpu without
Ray), exported, and run by the colorize job with its knobs recorded in every manifest row."""
import json
import math

import numpy as np
import pytest

from colorize_core.lab import bgr_to_lab
from colorize_core.storage import inspect_model_file
from jobs import colorize, train, train_gpu
from tests.archive import decode_any, make_archive, run_job
from tests.conftest import write_colour_photos


@pytest.fixture
def grey_archive(tmp_path, archive_inputs):
    inputs = {k: archive_inputs[k] for k in ("boats.jpg", "grey8.png", "grey16.tif")}
    return make_archive("local", tmp_path, None, "heads", inputs), inputs


def assert_knobs_work(archive, inputs, model, temperature: float | None, gain: float) -> None:
    """The job at the model's defaults, then with the knobs turned: each row records them; the gain scales
    chroma; the classification head's confidence is in [0, 1]."""
    facts = inspect_model_file(str(model))
    code, default_rows = run_job(archive, model)
    assert code == 0 and all(r["status"] == "ok" for r in default_rows.values())
    knobs = ["--chroma-gain", str(gain), "--overwrite"] + (["--temperature", str(temperature)] if temperature else [])
    chroma_default = {k: np.hypot(*bgr_to_lab(decode_any(archive.get(k)))[..., 1:].transpose(2, 0, 1)).mean()
                      for k in inputs}
    code, rows = run_job(archive, model, *knobs)
    assert code == 0 and all(r["status"] == "ok" for r in rows.values())
    for key, row in rows.items():
        assert row["chroma_gain"] == pytest.approx(gain) and default_rows[key]["chroma_gain"] == facts.chroma_gain
        out = bgr_to_lab(decode_any(archive.get(key)))
        assert np.abs(out[..., 0] - bgr_to_lab(decode_any(inputs[key]))[..., 0]).mean() < 2.0, "L kept"
        if facts.head == "classification":
            assert default_rows[key]["temperature"] == pytest.approx(facts.temperature)
            assert row["temperature"] == pytest.approx(temperature)
            assert 0 <= row["colour_confidence"] <= 1 and row["colour_confidence"] == pytest.approx(
                default_rows[key]["colour_confidence"], abs=0.2)
        else:
            assert math.isnan(row["temperature"]) and math.isnan(row["colour_confidence"])
            chroma = np.hypot(out[..., 1], out[..., 2]).mean()  # gamut limits strong colour: compare, not scale
            assert (chroma < chroma_default[key] - 1) == (gain < facts.chroma_gain), key


def test_train_job_classification_head_then_colorize(tmp_path, model_file, grey_archive):
    photos = write_colour_photos(tmp_path / "photos", 5)
    runs = tmp_path / "runs"
    assert train.main(["--input", str(photos), "--output", str(runs), "--name", "cls", "--workers", "2",
                       "--batch-size", "2", "--epochs", "1", "--head", "classification", "--init-model",
                       str(model_file), "--learning-rate", "1e-3", "--val-fraction", "0.2",
                       "--default-temperature", "0.5"]) == 0
    metrics = json.loads((runs / "cls" / "metrics.json").read_text())
    assert metrics["recipe"]["head"] == "classification" and metrics["history"][0]["val_loss"] > 0
    model = runs / "cls" / "colorizer.keras"
    facts = inspect_model_file(str(model))
    assert facts.head == "classification" and facts.temperature == 0.5
    assert_knobs_work(*grey_archive, model, temperature=0.2, gain=1.5)


@pytest.mark.parametrize("head", ["regression", "classification"])
def test_single_gpu_launcher_trains_exports_and_the_job_runs_it(tmp_path, model_file, grey_archive, head):
    photos = write_colour_photos(tmp_path / "photos", 6)
    (photos / "train.txt").write_text("".join(f"p{i}.jpg\n" for i in range(4)))
    (photos / "val.txt").write_text("p4.jpg\np5.jpg\n")
    run = tmp_path / "run"
    data = ["--input", str(photos), "--input-list", str(photos / "train.txt"), "--val-list", str(photos / "val.txt"),
            "--init-model", str(model_file), "--threads", "2"]
    assert train_gpu.main(data + ["--out", str(run), "--head", head, "--batch-size", "2", "--budget", "6",
                                  "--checkpoint-every", "3"]) == 0
    first = json.loads((run / "run.json").read_text())
    assert first["recipe"]["head"] == head and first["steps"] > 0 and first["train_photos"] == 4
    assert len(first["history"]) >= 2 and all(h["val_images"] == 2 for h in first["history"]), "a checkpoint a 3 s"
    assert (first["classes"] is not None) == (head == "classification")

    resumed = tmp_path / "resumed"
    assert train_gpu.main(data + ["--out", str(resumed), "--resume-from", str(run), "--budget", "2"]) == 0
    second = json.loads((resumed / "run.json").read_text())
    assert second["history"][: len(first["history"])] == first["history"] and second["recipe"] == first["recipe"]

    model = tmp_path / f"{head}.keras"
    assert train_gpu.main(["--out", str(resumed), "--export", str(model), "--init-model", str(model_file),
                           "--chroma-gain", "1.2"]) == 0
    facts = inspect_model_file(str(model))
    assert facts.head == head and facts.chroma_gain == pytest.approx(1.2)
    assert_knobs_work(*grey_archive, model, temperature=0.3 if head == "classification" else None, gain=0.5)


def test_wrong_knobs_stop_the_job_with_a_message(tmp_path, model_file, grey_archive):
    archive, _ = grey_archive
    for flags, message in ((["--temperature", "0.5"], "classification head only"),
                           (["--chroma-gain", "-1"], "--chroma-gain must be")):
        with pytest.raises(SystemExit, match=message):
            colorize.main(["--input", archive.input, "--output", archive.output, "--model", str(model_file), *flags])
