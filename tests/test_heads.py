"""Both heads trained for a few steps through each launcher (jobs.train on Ray Train, jobs.train_gpu without
Ray), exported, and run by the colorize job with its knobs recorded in every manifest row."""
import json

import numpy as np
import pytest

from colorize_core.model import Colorizer
from colorize_core.model_file import inspect_model_file
from jobs import colorize, train, train_gpu
from tests.archive import assert_knobs_work, make_archive
from tests.conftest import write_colour_photos


@pytest.fixture
def grey_archive(tmp_path, archive_inputs):
    inputs = {k: archive_inputs[k] for k in ("boats.jpg", "grey8.png", "grey16.tif")}
    return make_archive("local", tmp_path, None, "heads", inputs), inputs


@pytest.mark.integration
@pytest.mark.parametrize("head", ["classification"])  # the regression head: tests/test_train.py
def test_train_job_each_head_then_colorize(tmp_path, model_file, grey_archive, head):
    photos = write_colour_photos(tmp_path / "photos", 5)
    runs = tmp_path / "runs"
    temperature = ["--default-temperature", "0.5"] if head == "classification" else []
    assert train.main(["--input", str(photos), "--output", str(runs), "--name", head, "--workers", "2",
                       "--batch-size", "2", "--epochs", "1", "--head", head, "--init-model", str(model_file),
                       "--learning-rate", "1e-3", "--val-fraction", "0.2", *temperature]) == 0
    metrics = json.loads((runs / head / "metrics.json").read_text())
    assert metrics["recipe"]["head"] == head and metrics["history"][0]["val_loss"] > 0
    model = runs / head / "colorizer.keras"
    facts = inspect_model_file(str(model))
    assert facts.head == head and facts.temperature == (0.5 if head == "classification" else None)
    assert_knobs_work(*grey_archive, model, temperature=0.2 if head == "classification" else None, gain=1.5)

    # One run folder for both launchers: jobs.train_gpu exports the Ray Train run as it exports its own.
    exported = tmp_path / "exported.keras"
    assert train_gpu.main(["--out", str(runs / head), "--export", str(exported),
                           "--init-model", str(runs / head / "init.keras")]) == 0
    L = np.random.default_rng(0).uniform(0, 100, (2, 224, 224, 1)).astype(np.float32)
    ours, theirs = (Colorizer.load(path).predict(L)[0] for path in (exported, model))
    assert np.abs(ours - theirs).max() < 1e-4 and np.abs(theirs).max() > 0


@pytest.mark.integration
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
    best = json.loads((run / "best" / "run.json").read_text())["best"]
    assert best == first["best"] and best["val_ciede2000"] == min(h["val_ciede2000"] for h in first["history"]), \
        "the checkpoint with the best validation CIEDE2000 is kept, not only the last"
    assert (run / "best" / "decoder.npz").is_file()

    resumed = tmp_path / "resumed"
    assert train_gpu.main(data + ["--out", str(resumed), "--resume-from", str(run), "--budget", "9"]) == 0
    second = json.loads((resumed / "run.json").read_text())
    assert second["history"][: len(first["history"])] == first["history"] and second["recipe"] == first["recipe"]
    # The loop stops at the first step past the budget; a fresh budget on top would reach first + 9 s. (An upper
    # bound of budget + a step's time fails when a loaded machine makes one step slow.)
    assert second["steps"] > first["steps"] and 9 <= second["trained_s"] < first["trained_s"] + 9, \
        "on to the same budget, 9 s in all"

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


@pytest.mark.integration  # no Ray, but three recipes trained, cut and resumed: minutes, not seconds
def test_a_portfolio_trains_every_recipe_keeps_each_best_and_resumes_after_a_cut(tmp_path, model_file):
    """jobs.train_gpu --recipes: each recipe in OUT/NAME with its own best/, summary.json naming each best
    checkpoint; a portfolio cut off in its second recipe goes on from there, the first kept as it was."""
    photos = write_colour_photos(tmp_path / "photos", 6)
    (photos / "train.txt").write_text("".join(f"p{i}.jpg\n" for i in range(4)))
    (photos / "val.txt").write_text("p4.jpg\np5.jpg\n")
    names = ["regression", "classification-mix0.25", "classification-mix0.75"]
    data = ["--input", str(photos), "--input-list", str(photos / "train.txt"), "--val-list", str(photos / "val.txt"),
            "--init-model", str(model_file), "--threads", "2", "--batch-size", "2", "--checkpoint-every", "2",
            "--recipes", *names, "--photo-cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]
    assert train_gpu.main(data + ["--budget", "12"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert list(summary["recipes"]) == names
    for name in names:
        run = json.loads((tmp_path / "run" / name / "run.json").read_text())
        entry = summary["recipes"][name]
        # At least a third of the 12 s budget, and short of all of it (not a timing window, which a loaded machine
        # breaks by making one step slow).
        assert run["finished"] and run["steps"] > 0 and 4 <= run["trained_s"] < 12, "a third of the budget each"
        assert entry["best"]["val_ciede2000"] == min(h["val_ciede2000"] for h in run["history"])
        assert json.loads((tmp_path / "run" / name / "best" / "run.json").read_text())["best"]["step"] == entry["best"]["step"]
        assert entry["closest"]["val_rule_shortfall"] == min(h["val_rule_shortfall"] for h in run["history"]), \
            "the checkpoint nearest the ship rule is kept too"
        assert (tmp_path / "run" / name / "closest" / "decoder.npz").is_file()
    assert summary["recipes"]["regression"]["recipe"]["head"] == "regression"
    assert [summary["recipes"][n]["recipe"]["mix"] for n in names[1:]] == [0.25, 0.75]
    assert list((tmp_path / "cache").glob("*.pixels.npy")), "the decoded photos kept for the next run"

    # A cut in the second recipe: its run.json says it is not finished; the resumed portfolio trains it on.
    second = tmp_path / "run" / names[1] / "run.json"
    cut = json.loads(second.read_text())
    first_before = (tmp_path / "run" / names[0] / "run.json").read_text()
    second.write_text(json.dumps({**cut, "finished": False, "trained_s": 1.0}))
    assert train_gpu.main(data + ["--budget", "12", "--resume-from", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / names[0] / "run.json").read_text() == first_before, "a finished recipe is kept"
    resumed = json.loads(second.read_text())
    assert resumed["finished"] and resumed["steps"] > cut["steps"] and resumed["resumed_from"].endswith(names[1])
