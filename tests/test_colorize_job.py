"""The colorize job end to end on a real local Ray, against local folders and against a real S3 server."""
import numpy as np
import pytest

from colorize_core import codec, runtime
from colorize_core.lab import bgr_to_lab, model_input, recombine
from colorize_core.model import load_colorizer
from jobs import colorize
from tests.archive import Archive, decode_any, make_archive, run_job
from tests.conftest import exif_rotated_jpeg

pytestmark = pytest.mark.integration

GOOD = ["boats.jpg", "grey16.png", "grey16.tif", "grey8.png", "rgb8.tif", "rotated.jpg", "sub/dir/forest.jpg"]
BAD = ["bad/notes.jpg", "bad/truncated.jpg"]


@pytest.fixture(params=["local", "s3"])
def archive(request, tmp_path, archive_inputs) -> Archive:
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return make_archive(request.param, tmp_path, server, request.node.name[-12:], archive_inputs)


def test_colorize_resume_and_overwrite(archive, archive_inputs, model_file):
    code, rows = run_job(archive, model_file, "--max-error-fraction", "0.5")
    assert code == 0
    # --precision auto, decided by the model's worker (a CPU here), recorded per row.
    precision = runtime.resolve_precision("auto", gpus=False)[0]
    assert {r["precision"] for r in rows.values() if r["status"] == "ok"} == {precision}
    assert {rows[k]["precision"] for k in BAD} == {""}, "the model never ran on them"
    model = load_colorizer(model_file, precision)
    assert sorted(rows) == sorted(GOOD + BAD), "exactly one row per input"
    assert {k for k, r in rows.items() if r["status"] == "ok"} == set(GOOD)
    assert "corrupt or truncated" in rows["bad/truncated.jpg"]["error"]
    assert "not a supported image" in rows["bad/notes.jpg"]["error"]
    assert all(rows[k]["output_key"] == "" for k in BAD)

    for key in GOOD:
        original = decode_any(archive_inputs[key])
        output = decode_any(archive.get(key))
        row = rows[key]
        assert output.shape == original.shape, key  # original size, upright
        assert output.dtype == original.dtype, key  # 16-bit in, 16-bit out
        assert (row["width"], row["height"], row["bit_depth"]) == (original.shape[1], original.shape[0],
                                                                    8 * original.dtype.itemsize)
        assert row["bytes_in"] == len(archive_inputs[key]) and row["bytes_out"] == len(archive.get(key))
        assert row["predict_s"] > 0 and len(row["model_sha256"]) == 64
        if archive.output.startswith("s3://"):  # served as what it is, not as application/octet-stream
            assert archive.content_type(key) == codec.MEDIA_TYPES[row["format"]], key
        out_lab, in_lab = bgr_to_lab(output), bgr_to_lab(original)
        # In colour: the model's own colours for this image, put on its L (compared in Lab a, b).
        L = in_lab[..., 0]
        expected = bgr_to_lab(recombine(L, np.asarray(model.predict_on_batch(model_input(L)[None, ..., None]))[0],
                                        original.dtype))
        assert np.hypot(expected[..., 1], expected[..., 2]).mean() > 10.0, key
        assert np.abs(out_lab[..., 1:] - expected[..., 1:]).mean() < (3.0 if key.endswith(".jpg") else 0.5), key
        L_error = np.abs(out_lab[..., 0] - in_lab[..., 0]) * 255 / 100  # in 8-bit levels
        if key.endswith(".jpg"):  # JPEG re-encoding is lossy: L is kept before the encode, close after it
            assert L_error.mean() < 2.0, key
        else:
            assert L_error.max() <= 1.0, key
    _, upright = exif_rotated_jpeg()
    rotated = bgr_to_lab(decode_any(archive.get("rotated.jpg")))[..., 0] * 255 / 100
    assert rotated.shape == upright.shape and np.abs(rotated - upright).mean() < 3  # written upright

    stamps = {key: archive.stamp(key) for key in GOOD}
    code, rows = run_job(archive, model_file, "--max-error-fraction", "0.5")
    assert code == 0
    assert {k for k, r in rows.items() if r["status"] == "skipped"} == set(GOOD)
    assert all(r["predict_s"] == 0 for r in rows.values()), "a resumed run does no model work"
    assert {k for k, r in rows.items() if r["status"] == "error"} == set(BAD)  # retried, still bad
    assert {key: archive.stamp(key) for key in GOOD} == stamps, "nothing rewritten"

    code, rows = run_job(archive, model_file, "--overwrite", "--max-error-fraction", "0.5")
    assert code == 0 and {k for k, r in rows.items() if r["status"] == "ok"} == set(GOOD)
    assert all(archive.stamp(key) != stamps[key] for key in GOOD), "--overwrite redoes them"


def test_errors_over_the_limit_fail_the_job_after_finishing(archive, model_file):
    code, rows = run_job(archive, model_file)  # default --max-error-fraction 0.01; 2 of 9 fail
    assert code == 1
    assert len(rows) == len(GOOD) + len(BAD) and sum(r["status"] == "ok" for r in rows.values()) == len(GOOD)


@pytest.mark.parametrize("kind", ["txt", "csv", "parquet"])
def test_input_list_takes_only_the_listed_keys(tmp_path, archive_inputs, model_file, kind):
    scans = tmp_path / "scans"
    for key, data in archive_inputs.items():
        (scans / key).parent.mkdir(parents=True, exist_ok=True)
        (scans / key).write_bytes(data)
    keys = ["grey8.png", "sub/dir/forest.jpg"]
    listing = tmp_path / f"keys.{kind}"
    if kind == "txt":
        listing.write_text("\n".join(keys) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pa.table({"key": keys})
        pq.write_table(table, listing) if kind == "parquet" else pacsv.write_csv(table, listing)
    archive = Archive(str(scans), str(tmp_path / "colour"), None, None, None, None)
    code, rows = run_job(archive, model_file, "--input-list", str(listing))
    assert code == 0 and sorted(rows) == keys and all(r["status"] == "ok" for r in rows.values())
    assert sorted(p.name for p in (tmp_path / "colour").rglob("*.*") if "_manifest" not in str(p)) == \
        ["forest.jpg", "grey8.png"]


def test_wrong_s3_credentials_stop_at_once(s3_server, model_file, monkeypatch, capsys):
    s3_server.client().create_bucket(Bucket="locked")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(SystemExit, match=r"(?s)cannot access s3://locked/scans.*ACCESS_DENIED.*AWS_ACCESS_KEY_ID"):
        colorize.main(["--input", "s3://locked/scans", "--output", "s3://locked/colour", "--model", str(model_file)])


def test_output_inside_input_is_refused(tmp_path, model_file):
    (tmp_path / "scans").mkdir()
    with pytest.raises(SystemExit, match="must not be --input or inside it"):
        colorize.main(["--input", str(tmp_path / "scans"), "--output", str(tmp_path / "scans" / "colour"),
                       "--model", str(model_file)])


def test_wrong_flag_stops_with_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        colorize.main(["--input", "a", "--output", "b", "--batch-size", "0"])
    assert stop.value.code == 2 and "--batch-size must be at least 1" in capsys.readouterr().err
