"""Poison inputs: a native crash (here os.abort(), from the fault point) while one key is handled in a stage.

After Ray's retries, the key gets an error row saying it crashed its stage, every other key of its batch is
colorized as usual, and the run exits as --max-error-fraction says.
"""
import faulthandler
import multiprocessing

import cv2
import numpy as np
import pytest

from colorize_core import crashes
from tests.archive import decode_any, make_archive, run_job
from tests.conftest import EXAMPLES


def handle_and_die(run_id: str, stage: str, keys: list[str]) -> None:
    """A worker process that crashes its stage while it handles `keys`."""
    faulthandler.disable()  # pytest's, inherited: its dump of the abort is noise here
    journal = crashes.journal(run_id, tuple((stage, k) for k in keys))
    with journal.handling(stage, keys):
        pass  # not reached: the fault point aborts the process


def handle_and_wait(run_id: str, stage: str, key: str, ready, stop) -> None:
    """A live worker process in the middle of handling `key`."""
    with crashes.journal(run_id).handling(stage, [key]):
        ready.set()
        stop.wait(30)


def crash(run_id: str, stage: str, keys: list[str]) -> None:
    process = multiprocessing.get_context("fork").Process(target=handle_and_die, args=(run_id, stage, keys))
    process.start()
    process.join()
    assert process.exitcode == -6, "the fault point aborts its process (SIGABRT)"


def test_the_journal_isolates_a_key_that_crashes_alone_twice(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    run_id = "journal-test"
    me = crashes.Journal(run_id)
    crash(run_id, "predict", ["a", "b", "c"])
    assert me.crashed("predict") == (set(), {"a", "b", "c"}), "a batch's keys become suspects, none is blamed"
    assert me.crashed("decode") == (set(), set()), "stages are told apart"
    crash(run_id, "predict", ["b"])
    assert me.crashed("predict") == (set(), {"a", "b", "c"}), "one crash alone may be a kill from outside"
    crash(run_id, "predict", ["b"])
    assert me.crashed("predict") == ({"b"}, {"a", "b", "c"})

    context = multiprocessing.get_context("fork")
    ready, stop = context.Event(), context.Event()
    live = context.Process(target=handle_and_wait, args=(run_id, "decode", "x", ready, stop))
    live.start()
    try:
        assert ready.wait(30)
        assert me.crashed("decode") == (set(), set()), "a live process's note is not a crash"
    finally:
        stop.set()
        live.join()
    crashes.remove_journal(run_id)
    assert not crashes.journal_folder(run_id).exists()


def test_a_failpoint_names_a_stage():
    assert crashes.parse_failpoint("encode:a/b:c.jpg") == ("encode", "a/b:c.jpg")
    for wrong in ("write:a.jpg", "decode", "decode:"):
        with pytest.raises(ValueError):
            crashes.parse_failpoint(wrong)


@pytest.mark.integration
@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_key_that_crashes_its_stage_is_isolated(request, tmp_path, model_file, where):
    grey = cv2.imread(str(EXAMPLES / "forest.jpg"), cv2.IMREAD_GRAYSCALE)
    images = {f"scan-{i:02d}.jpg": cv2.imencode(".jpg", cv2.resize(np.roll(grey, 40 * i, axis=1), (96, 64)))[1]
              .tobytes() for i in range(12)}
    s3 = request.getfixturevalue("s3_server") if where == "s3" else None
    archive = make_archive(where, tmp_path, s3, f"crashes-{where}", images)
    # One poison key per stage, each in a batch of 4 with good keys (--batch-size 4, from run_job).
    poison = {"scan-01.jpg": "decode", "scan-05.jpg": "predict", "scan-10.jpg": "encode"}
    failpoints = [f"{stage}:{key}" for key, stage in poison.items()]

    # The exit follows --max-error-fraction: 3 of 12 failed is more than the default 0.01, less than 0.3.
    allowed = {"local": [], "s3": ["--max-error-fraction", "0.3"]}[where]
    code, rows = run_job(archive, model_file, "--failpoint", *failpoints, *allowed)
    assert code == (0 if allowed else 1)
    assert sorted(rows) == sorted(images), "every key accounted for"
    for key, stage in poison.items():
        assert rows[key]["status"] == "error" and f"the {stage} stage's worker process died" in rows[key]["error"]
    good = set(images) - set(poison)
    assert {k for k, r in rows.items() if r["status"] == "ok"} == good, "the rest of each batch goes on"
    for key in good:
        assert decode_any(archive.get(key)).shape == (64, 96, 3)
    assert not crashes.journal_folder(rows["scan-00.jpg"]["run_id"]).exists(), "the run's journal is removed"
