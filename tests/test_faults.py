"""Faults in the middle of a run: the job killed, an inference actor killed, the S3 server restarted.

Afterwards no final key holds a partial or corrupt image, and a rerun finishes the work, redoing only what
was in flight.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from colorize_core import manifest
from colorize_core.storage import Location
from tests.archive import decode_any, make_archive, run_job
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration


def inputs(count: int) -> dict[str, bytes]:
    grey = cv2.imread(str(EXAMPLES / "forest.jpg"), cv2.IMREAD_GRAYSCALE)
    return {f"scan-{i:02d}.jpg": cv2.imencode(".jpg", cv2.resize(np.roll(grey, 40 * i, axis=1), (96, 64)))[1].tobytes()
            for i in range(count)}


def written(folder) -> set[str]:
    return {p.name for p in folder.glob("scan-*.jpg")}


def assert_whole(get, keys) -> None:
    for key in keys:
        image = decode_any(get(key))
        assert image is not None and image.shape == (64, 96, 3), f"{key} is partial or corrupt"


def wait_until(condition, timeout: float = 300.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), whatever session it started for itself."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_job(job: subprocess.Popen) -> None:
    """Kill a job started in a session of its own, at once, and every process below it: the driver and the Ray
    it started (Ray's own processes run in sessions of their own); nothing gets to clean up."""
    ray_processes = descendants(job.pid)
    os.killpg(job.pid, signal.SIGKILL)
    for pid in ray_processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    job.wait()


def settled(look, quiet: float = 5.0, timeout: float = 60.0):
    """What `look()` returns once it has not changed for `quiet` seconds."""
    last, since, deadline = look(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.5)
        if (now := look()) != last:
            last, since = now, time.monotonic()
    return last


def test_job_killed_half_way_then_rerun(tmp_path, model_file):
    images = inputs(72)  # enough that the kill lands part-way: the job writes a small image in a few ms
    archive = make_archive("local", tmp_path, None, "killed", images)
    job = subprocess.Popen([sys.executable, "-m", "jobs.colorize", "--input", archive.input, "--output",
                            archive.output, "--model", str(model_file), "--batch-size", "2"],
                           cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = tmp_path / "colour"
    try:
        assert wait_until(lambda: len(written(out)) >= 8), "the job wrote nothing"
    finally:
        kill_job(job)
    done = settled(lambda: written(out))  # a write already in the kernel's hands may still land
    assert 0 < len(done) < len(images), f"killed about half way: {len(done)} of {len(images)} written"
    assert_whole(archive.get, done)
    output = Location(archive.output)
    complete, killed = manifest.runs(output)  # its folder, if Ray got as far as writing a file of rows
    assert complete == [] and len(killed) <= 1, "the killed run is not marked complete"
    # What a run killed mid-write leaves: a hidden temporary file. An old one is a dead run's; a fresh one
    # could be a live concurrent run's and must stay.
    stale, fresh = out / ".colorize-dead.tmp", out / ".colorize-live.tmp"
    stale.write_bytes(b"partial"), fresh.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    code, rows = run_job(archive, model_file)
    assert code == 0 and sorted(rows) == sorted(images)
    assert {k for k, r in rows.items() if r["status"] == "skipped"} == done, "finished work is not redone"
    assert {k for k, r in rows.items() if r["status"] == "ok"} == set(images) - done
    assert_whole(archive.get, images)
    assert not stale.exists() and fresh.exists(), "only the dead run's temporary file is removed"
    table, incomplete = manifest.read_all(output)
    assert incomplete == len(killed) and sorted(table.column("key").to_pylist()) == sorted(images), \
        "readers take the complete run and count the killed one"


def test_an_inference_actor_killed_mid_run_loses_no_image(tmp_path, model_file):
    images = inputs(16)
    archive = make_archive("local", tmp_path, None, "actor", images)
    killed = []

    def kill_the_predictor():
        if wait_until(lambda: len(written(tmp_path / "colour")) >= 2):
            pids = subprocess.run(["pgrep", "-f", "MapWorker\\(MapBatches\\(Predictor"], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))

    watcher = threading.Thread(target=kill_the_predictor, daemon=True)
    watcher.start()
    code, rows = run_job(archive, model_file, "--batch-size", "2")
    watcher.join(timeout=5)
    assert killed, "no inference actor was found to kill"
    assert code == 0 and sorted(rows) == sorted(images)
    assert all(r["status"] == "ok" for r in rows.values()), {k: r["error"] for k, r in rows.items() if r["error"]}
    assert_whole(archive.get, images)


def test_s3_server_restarted_during_a_run(tmp_path, s3_server, model_file):
    images = inputs(16)
    archive = make_archive("s3", tmp_path, s3_server, "restart", images)
    client = s3_server.client()
    bucket = archive.output[len("s3://"):].split("/")[0]

    def outputs() -> set[str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix="colour/").get("Contents", [])
        return {o["Key"][len("colour/"):] for o in listed if o["Key"].endswith(".jpg")}

    restarted = []

    def restart_the_server():
        if wait_until(lambda: len(outputs()) >= 2):
            s3_server.stop()
            time.sleep(3)
            s3_server.start()
            restarted.append(True)

    watcher = threading.Thread(target=restart_the_server, daemon=True)
    watcher.start()
    code, rows = run_job(archive, model_file, "--batch-size", "2", "--max-error-fraction", "1")
    watcher.join(timeout=120)
    assert restarted, "the server was not restarted during the run"
    assert sorted(rows) == sorted(images), "every input accounted for, whatever failed"
    failed = {k: r["error"] for k, r in rows.items() if r["status"] == "error"}
    assert all(error for error in failed.values()), "a failure says why"
    assert_whole(archive.get, outputs())

    code, rows = run_job(archive, model_file, "--batch-size", "2")
    assert code == 0 and all(r["status"] in ("ok", "skipped") for r in rows.values())
    assert outputs() == set(images)
    assert_whole(archive.get, images)


def test_the_drivers_own_requests_wait_out_a_restart(monkeypatch):
    from colorize_core import storage

    waits, calls = [], []
    monkeypatch.setattr(storage.time, "sleep", waits.append)

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise OSError("Could not connect to server")
        return "listed"

    assert storage.retrying(flaky) == "listed" and waits == [0.5, 1.0, 2.0]

    def down():
        raise OSError("still down")

    with pytest.raises(OSError, match="still down"):  # the last failure is raised, not swallowed
        storage.retrying(down, attempts=3)
