"""Training on Ray Train: a tiny run with 2 workers, then a resumed one that goes on from its checkpoint and
survives a killed worker."""
import json
import os

import cv2
import numpy as np

from colorize_core import losses, training
from colorize_core.model import load_colorizer
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


def test_train_on_s3_resume_and_a_killed_worker(tmp_path, model_file, s3_server, archive_inputs):
    """Runs kept on the S3 server: a first epoch; then a resumed run to epoch 3 that goes on from the first run's
    checkpoint, has a worker killed after its own first checkpoint, and restarts from that one, not from scratch;
    the exported model then runs in the colorize job. (One test: each Ray Train start costs about a minute here.)"""
    import signal
    import subprocess
    import threading
    import time

    s3_server.client().create_bucket(Bucket="training")
    runs, store = "s3://training/runs", Location("s3://training/runs")
    photos = write_colour_photos(tmp_path / "photos", 5)
    common = ["--input", str(photos), "--output", runs, "--name", "tiny", "--workers", "2",
              "--batch-size", "2", "--init-model", str(model_file), "--learning-rate", "1e-3", "--val-fraction", "0.2"]
    assert train.main(common + ["--epochs", "1"]) == 0
    first = json.loads(store.read("tiny/metrics.json"))
    assert first["epoch"] == 1 and len(first["history"]) == 1 and first["history"][0]["train_loss"] > 0
    epoch = first["history"][0]
    assert epoch["val_images"] == 1 and epoch["val_loss"] > 0 and 0 < epoch["val_psnr"] < 100 and epoch["val_cf"] >= 0
    assert [k for k in store.list_keys(None) if k.endswith("colorizer.keras") and "checkpoint_" in k], "a checkpoint"

    snapshot = "tiny/checkpoint_manager_snapshot.json"
    registered, killed = store.read(snapshot), []

    def kill_a_worker_after_the_resumed_runs_first_checkpoint():
        deadline = time.monotonic() + 600
        # The controller rewrites its snapshot once it has registered a checkpoint: kill after that, during
        # the next epoch.
        while time.monotonic() < deadline and store.read(snapshot) == registered:
            time.sleep(0.5)
        time.sleep(1.0)
        pids = subprocess.run(["pgrep", "-f", "RayTrainWorker"], capture_output=True, text=True).stdout.split()
        if pids:
            os.kill(int(pids[0]), signal.SIGKILL)
            killed.append(int(pids[0]))

    watcher = threading.Thread(target=kill_a_worker_after_the_resumed_runs_first_checkpoint, daemon=True)
    watcher.start()
    assert train.main(common + ["--epochs", "3", "--resume", "--max-failures", "2"]) == 0
    watcher.join(timeout=5)
    assert killed, "no Ray Train worker was found to kill"
    state = json.loads(store.read("tiny/metrics.json"))
    assert state["epoch"] == 3 and len(state["history"]) == 3 and state["history"][0] == first["history"][0], \
        "went on from epoch 1"
    assert state["starts"][:2] == [0, 1] and len(state["starts"]) == 3 and state["starts"][2] >= 2, \
        f"resumed from epoch 1, then restarted once from a checkpoint of its own, not from scratch: {state['starts']}"
    assert state["history"][1]["val_loss"] != first["history"][0]["val_loss"], "validated the trained model again"
    assert len([k for k in store.list_keys(None) if k.endswith("optimizer.npz")]) >= 2
    assert "val_psnr" in store.read(snapshot).decode(), "the figures were reported through Ray Train"

    exported = tmp_path / "exported.keras"
    exported.write_bytes(store.read("tiny/colorizer.keras"))
    trained, start = load_colorizer(exported), load_colorizer(model_file)
    changed = [not np.array_equal(a, b) for a, b in zip(trained.get_weights(), start.get_weights())]
    assert any(changed), "training changed the decoder"
    assert trained.get_layer("encoder").get_layer("block3_conv1").get_weights()[0].tolist() == \
        start.get_layer("encoder").get_layer("block3_conv1").get_weights()[0].tolist(), "the encoder stays frozen"
    # The exported model runs in the colorize job, with its knob (the regression head has the chroma gain).
    inputs = {k: archive_inputs[k] for k in ("boats.jpg", "grey8.png", "grey16.tif")}
    assert_knobs_work(make_archive("local", tmp_path, None, "trained", inputs), inputs, exported, None, gain=0.5)
