"""The manifest's declaration (colorize_core/manifest.py) against what the stages really make."""
import numpy as np
import pytest

from colorize_core import manifest
from colorize_core.model_file import file_sha256
from colorize_core.stages import JobSettings, Predictor, encode_and_write, read_and_decode
from colorize_core.storage import Location
from tests.conftest import EXAMPLES


def stage_rows(tmp_path, model_file, keys) -> dict:
    """The three stages in a plain loop (no Ray) over `keys` of examples/: the rows the job would write."""
    settings = JobSettings(Location(str(EXAMPLES)), Location(str(tmp_path)), str(model_file), file_sha256(model_file), "t")
    batch = read_and_decode({"key": np.array(keys, dtype=object)}, settings)
    return encode_and_write(Predictor(settings)(batch), settings)


def test_the_stages_make_exactly_the_declared_columns(tmp_path, model_file):
    rows = stage_rows(tmp_path, model_file, ["boats.jpg", "missing.jpg"])
    assert set(rows) == set(manifest.COLUMNS)
    table = manifest.to_table(rows)
    assert table.schema == manifest.SCHEMA
    by_key = {r["key"]: r for r in table.to_pylist()}
    assert by_key["boats.jpg"]["status"] == manifest.OK and by_key["missing.jpg"]["status"] == manifest.ERROR
    assert set(table.column("status").to_pylist()) <= set(manifest.FINAL_STATUSES)
    assert manifest.counts({"status": np.array([r["status"] for r in by_key.values()])}) == \
        {manifest.OK: 1, manifest.SKIPPED: 0, manifest.ERROR: 1}


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
