"""Training on Ray Train: a tiny run with 2 workers, then a resumed one that goes on from its checkpoint."""
import json
import os

import cv2
import numpy as np
import pytest

from colorize_core import losses, training
from colorize_core.model_file import load_colorizer
from colorize_core.storage import Location
from jobs import train
from tests.archive import assert_knobs_work, make_archive
from tests.conftest import write_colour_photos


def test_validation_measures_the_colorized_crops(tmp_path, model_file):
    photos = Location(str(write_colour_photos(tmp_path / "photos", 3)))
    batch = training.validation_examples({"key": np.array(["p0.jpg", "p1.jpg", "p2.jpg", "missing.jpg"])}, photos)
    assert batch["L"].shape == (3, 224, 224, 1) and batch["ab"].shape == (3, 56, 56, 2), "the missing photo is dropped"
    assert batch["truth"].shape == (3, 224, 224, 3)

    model = training.validate(load_colorizer(model_file).predict_on_batch, [batch], losses.mse)
    assert model["val_images"] == 3 and model["val_loss"] > 0
    assert model["val_psnr"] != model["val_grey_psnr"] and model["val_cf"] > 1, "the tinted model shows colour"
    truth_ab = np.stack([cv2.cvtColor((t / 255).astype(np.float32), cv2.COLOR_RGB2Lab)[..., 1:] / 128
                         for t in batch["truth"]])
    perfect = training.validate(lambda L: truth_ab, [batch], losses.mse)  # a perfect colorizer
    assert perfect["val_loss"] < 1e-3 and perfect["val_psnr"] > perfect["val_grey_psnr"] + 5
    assert perfect["val_dcf"] < 1.0 and perfect["val_ciede2000"] < 1.0
    assert perfect["val_grey_psnr"] == model["val_grey_psnr"], "the grey baseline does not depend on the model"


def test_validation_split_is_stable_and_held_out():
    keys = [f"p{i}.jpg" for i in range(40)]
    train_keys, val_keys = training.split_validation(keys, 0.1)
    assert len(val_keys) == 4 and not set(train_keys) & set(val_keys) and len(train_keys) + 4 == 40
    assert training.split_validation(list(reversed(keys)), 0.1)[1] == list(reversed(val_keys)), "same photos held out"
    assert training.split_validation(keys[:2], 0.1)[1] and training.split_validation(keys, 0) == (keys, [])


@pytest.fixture(params=["local", "s3"])
def runs(request, tmp_path) -> str:
    """Where runs are kept: a folder, or a prefix on the S3 server."""
    if request.param == "local":
        return str(tmp_path / "runs")
    request.getfixturevalue("s3_server").client().create_bucket(Bucket="training")
    return "s3://training/runs"


def test_train_two_workers_then_resume(tmp_path, model_file, runs, archive_inputs):
    photos = write_colour_photos(tmp_path / "photos", 5)
    common = ["--input", str(photos), "--output", runs, "--name", "tiny", "--workers", "2",
              "--batch-size", "2", "--init-model", str(model_file), "--learning-rate", "1e-3", "--val-fraction", "0.2"]
    store = Location(runs)
    assert train.main(common + ["--epochs", "1"]) == 0
    first = json.loads(store.read("tiny/metrics.json"))
    assert first["epoch"] == 1 and len(first["history"]) == 1 and first["history"][0]["train_loss"] > 0
    epoch = first["history"][0]
    assert epoch["val_images"] == 1 and epoch["val_loss"] > 0 and 0 < epoch["val_psnr"] < 100 and epoch["val_cf"] >= 0
    assert [k for k in store.list_keys(None) if k.endswith("colorizer.keras") and "checkpoint_" in k], "a checkpoint"

    assert train.main(common + ["--epochs", "2", "--resume"]) == 0
    second = json.loads(store.read("tiny/metrics.json"))
    assert second["epoch"] == 2 and second["history"][0] == first["history"][0], "went on from epoch 1"
    assert second["history"][1]["val_loss"] != first["history"][0]["val_loss"], "validated the trained model again"
    assert len([k for k in store.list_keys(None) if k.endswith("optimizer.npz")]) == 2
    snapshot = store.read("tiny/checkpoint_manager_snapshot.json").decode()
    assert "val_psnr" in snapshot and "val_cf" in snapshot, "the figures were reported through Ray Train"

    exported = tmp_path / "exported.keras"
    exported.write_bytes(store.read("tiny/colorizer.keras"))
    trained, start = load_colorizer(exported), load_colorizer(model_file)
    changed = [not np.array_equal(a, b) for a, b in zip(trained.get_weights(), start.get_weights())]
    assert any(changed), "training changed the decoder"
    assert trained.get_layer("encoder").get_layer("block3_conv1").get_weights()[0].tolist() == \
        start.get_layer("encoder").get_layer("block3_conv1").get_weights()[0].tolist(), "the encoder stays frozen"
    if runs.startswith("s3://"):
        return
    # The exported model runs in the colorize job, with its knob (the regression head has the chroma gain).
    inputs = {k: archive_inputs[k] for k in ("boats.jpg", "grey8.png", "grey16.tif")}
    assert_knobs_work(make_archive("local", tmp_path, None, "trained", inputs), inputs, exported, None, gain=0.5)


def test_a_killed_worker_restarts_from_the_last_checkpoint(tmp_path, model_file):
    import signal
    import subprocess
    import threading
    import time

    photos = write_colour_photos(tmp_path / "photos", 8)
    runs = tmp_path / "runs"
    killed = []

    def kill_a_worker_after_the_first_checkpoint():
        deadline = time.monotonic() + 600
        # The controller has registered the first checkpoint once its snapshot is written: kill after that,
        # during the next epoch.
        while time.monotonic() < deadline and not (runs / "killed" / "checkpoint_manager_snapshot.json").exists():
            time.sleep(0.5)
        time.sleep(1.0)
        pids = subprocess.run(["pgrep", "-f", "RayTrainWorker"], capture_output=True, text=True).stdout.split()
        if pids:
            os.kill(int(pids[0]), signal.SIGKILL)
            killed.append(int(pids[0]))

    watcher = threading.Thread(target=kill_a_worker_after_the_first_checkpoint, daemon=True)
    watcher.start()
    assert train.main(["--input", str(photos), "--output", str(runs), "--name", "killed", "--workers", "2",
                       "--batch-size", "2", "--epochs", "4", "--init-model", str(model_file),
                       "--max-failures", "2"]) == 0
    watcher.join(timeout=5)
    assert killed, "no Ray Train worker was found to kill"
    state = json.loads((runs / "killed" / "metrics.json").read_text())
    assert state["epoch"] == 4 and len(state["history"]) == 4
    assert len(state["starts"]) == 2 and state["starts"][0] == 0 and state["starts"][1] >= 1, \
        f"restarted once, from a checkpoint, not from scratch: {state['starts']}"
