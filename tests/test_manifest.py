"""The manifest's declaration (colorize_core/manifest.py) against what the stages really make."""
import json

import cv2
import numpy as np
import pyarrow.fs as pafs
import pytest

from colorize_core import crashes, manifest, stages
from colorize_core.stages import Predictor, encode_and_write, read_and_decode
from colorize_core.storage import Location
from tests.archive import make_archive, run_job
from tests.conftest import EXAMPLES, plain_settings


def stage_rows(tmp_path, model_file, keys) -> dict:
    """The three stages in a plain loop (no Ray) over `keys` of examples/: the rows the job would write."""
    settings = plain_settings(EXAMPLES, tmp_path, model_file)
    batch = read_and_decode({"key": np.array(keys, dtype=object)}, settings)
    return encode_and_write(Predictor(settings)(batch), settings)


def test_the_stages_make_exactly_the_declared_columns(tmp_path, model_file):
    rows = stage_rows(tmp_path, model_file, ["boats.jpg", "missing.jpg"])
    assert set(rows) == set(manifest.COLUMNS)
    table = manifest.to_table(rows)
    assert table.schema == manifest.SCHEMA
    by_key = {r["key"]: r for r in table.to_pylist()}
    assert by_key["boats.jpg"]["status"] == manifest.Status.OK and by_key["missing.jpg"]["status"] == manifest.Status.ERROR
    assert set(table.column("status").to_pylist()) <= set(manifest.FINAL_STATUSES)
    assert manifest.counts_of_rows({"status": np.array([r["status"] for r in by_key.values()])}) == \
        {manifest.Status.OK: 1, manifest.Status.SKIPPED: 0, manifest.Status.ERROR: 1}


def test_each_error_row_has_its_kind_from_the_fixed_vocabulary(tmp_path, model_file):
    """The stages' own errors, each of its kind; skipped and ok rows have none."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not an image")
    photo = (EXAMPLES / "boats.jpg").read_bytes()
    (tmp_path / "in" / "big.png").write_bytes(photo + b"x")
    (tmp_path / "in" / "ok.jpg").write_bytes(photo)
    settings = plain_settings(tmp_path / "in", tmp_path / "out", model_file, max_bytes=len(photo))
    keys = ["bad.jpg", "big.png", "missing.jpg", "_manifest/x.jpg", "ok.jpg"]
    rows = encode_and_write(Predictor(settings)(read_and_decode({"key": np.array(keys, dtype=object)}, settings)),
                            settings)
    kinds = dict(zip(rows["key"], rows["error_kind"]))
    kind = manifest.ErrorKind
    assert kinds == {"bad.jpg": kind.UNREADABLE, "big.png": kind.REFUSED, "missing.jpg": kind.STORAGE,
                     "_manifest/x.jpg": kind.REFUSED, "ok.jpg": ""}
    assert manifest.error_kind(manifest.Status.ERROR, crashes.crash_error("decode")) == manifest.ErrorKind.CRASHED
    assert manifest.error_kind(manifest.Status.ERROR, stages.error_text(KeyError("a bug"))) == manifest.ErrorKind.OTHER
    assert manifest.error_kind(manifest.Status.SKIPPED, stages.ALREADY_COLOUR) == ""
    noted = manifest.noted_rows(["a/", "._b.jpg"], [manifest.Status.ERROR, manifest.Status.SKIPPED],
                                ["folder cannot be listed (Permission denied)", "hidden"])
    assert noted.column("error_kind").to_pylist() == [manifest.ErrorKind.STORAGE, ""]


def test_an_undeclared_column_is_refused(tmp_path, model_file):
    rows = stage_rows(tmp_path, model_file, ["boats.jpg"])
    with pytest.raises(ValueError, match="undeclared \\['surprise'\\]"):
        manifest.to_table({**rows, "surprise": np.zeros(1)})
    with pytest.raises(ValueError, match="missing \\['run_id'\\]"):
        manifest.to_table({k: v for k, v in rows.items() if k != "run_id"})


def test_an_all_error_block_keeps_the_declared_types(tmp_path, model_file):
    """A block of only bad files has no numbers to infer types from: the declared schema still holds."""
    table = manifest.to_table(stage_rows(tmp_path, model_file, ["missing-1.jpg", "missing-2.png"]))
    assert table.schema == manifest.SCHEMA
    assert all(np.isnan(table.column("colour_confidence").to_numpy()))


@pytest.mark.integration
@pytest.mark.parametrize("where", ["local", "s3"])
def test_only_complete_runs_are_read(request, tmp_path, model_file, where):
    """A run marks its manifest complete last; an unmarked run folder (a killed run's) is skipped and counted."""
    server = request.getfixturevalue("s3_server") if where == "s3" else None
    grey = (np.arange(64 * 96).reshape(64, 96) % 251).astype(np.uint8)
    archive = make_archive(where, tmp_path, server, f"marker-{where}", {
        f"scan-{i}.png": cv2.imencode(".png", np.roll(grey, 7 * i, axis=1))[1].tobytes() for i in range(3)})
    code, rows = run_job(archive, model_file)
    assert code == 0 and len(rows) == 3
    output = Location(archive.output)
    (run,), incomplete = manifest.runs(output)
    assert incomplete == []
    marker = json.loads(output.read(f"{manifest.FOLDER}/run={run}/{manifest.MARKER}"))
    assert (marker["rows"], marker[manifest.Status.OK]) == (3, 3)

    # A killed run: Parquet written, no marker.
    files = output.fs.get_file_info(pafs.FileSelector(output.path(f"{manifest.FOLDER}/run={run}")))
    parquet = next(f for f in files if f.path.endswith(".parquet"))
    output.write_atomic(f"{manifest.FOLDER}/run=killed/part.parquet", output.fs.open_input_stream(parquet.path).read())
    assert manifest.runs(output) == ([run], ["killed"])
    table, skipped = manifest.read_all(output)
    assert skipped == 1 and set(table.column("run").to_pylist()) == {run} and table.num_rows == 3
