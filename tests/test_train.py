"""Training on Ray Train: a tiny run with 2 workers, then a resumed one that goes on from its checkpoint."""
import json
import os

import numpy as np

from colorize_core.model import load_colorizer
from jobs import train
from tests.conftest import write_colour_photos


def test_train_two_workers_then_resume(tmp_path, model_file):
    photos = write_colour_photos(tmp_path / "photos", 4)
    runs = tmp_path / "runs"
    common = ["--input", str(photos), "--output", str(runs), "--name", "tiny", "--workers", "2",
              "--batch-size", "2", "--init-model", str(model_file), "--learning-rate", "1e-3"]
    assert train.main(common + ["--epochs", "1"]) == 0
    first = json.loads((runs / "tiny" / "metrics.json").read_text())
    assert first["epoch"] == 1 and len(first["history"]) == 1 and first["history"][0]["train_loss"] > 0
    assert len(list((runs / "tiny").glob("checkpoint_*/colorizer.keras"))) == 1

    assert train.main(common + ["--epochs", "2", "--resume"]) == 0
    second = json.loads((runs / "tiny" / "metrics.json").read_text())
    assert second["epoch"] == 2 and second["history"][0] == first["history"][0], "went on from epoch 1"
    assert len(list((runs / "tiny").glob("checkpoint_*/optimizer.npz"))) == 2

    trained, start = load_colorizer(runs / "tiny" / "colorizer.keras"), load_colorizer(model_file)
    changed = [not np.array_equal(a, b) for a, b in zip(trained.get_weights(), start.get_weights())]
    assert any(changed), "training changed the decoder"
    assert trained.get_layer("encoder").get_layer("block3_conv1").get_weights()[0].tolist() == \
        start.get_layer("encoder").get_layer("block3_conv1").get_weights()[0].tolist(), "the encoder stays frozen"


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
