"""Never write outside the output prefix, never run a model file's code, never show a credential (two runs into
one output at once: tests/test_nothing_lost.py)."""
import pickle
from pathlib import Path

import cv2
import keras
import pytest

from colorize_core.model import load_colorizer
from colorize_core.storage import Location
from jobs import colorize, evaluate
from tests.archive import make_archive, run_job
from tests.conftest import EXAMPLES, colour_photo

ESCAPING = ["../escaped.jpg", "/tmp/absolute.jpg", "s3://other-bucket/x.jpg", "sub/../../escaped.jpg",
            "sub/./x.jpg", "back\\slash.jpg"]


def small_jpeg() -> bytes:
    grey = cv2.imread(str(EXAMPLES / "boats.jpg"), cv2.IMREAD_GRAYSCALE)
    return cv2.imencode(".jpg", cv2.resize(grey, (64, 48)))[1].tobytes()


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_keys_that_would_escape_the_output_are_refused(tmp_path, s3_server, model_file, kind):
    archive = make_archive(kind, tmp_path, s3_server, f"escape-{kind}", {"fine.jpg": small_jpeg()})
    (tmp_path / "escaped.jpg").write_bytes(small_jpeg())  # what "../escaped.jpg" would read, next to scans/
    listing = tmp_path / "keys.txt"
    listing.write_text("\n".join(["fine.jpg", *ESCAPING]) + "\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, rows = run_job(archive, model_file, "--input-list", str(listing), "--max-error-fraction", "1")
    assert rows["fine.jpg"]["status"] == "ok"
    for key in ESCAPING:
        assert rows[key]["status"] == "error" and "refused key" in rows[key]["error"], (key, rows[key])
        assert rows[key]["output_key"] == ""
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    new = [p for p in after if p not in before]
    assert all(p.parts[0] == "colour" for p in new), f"written outside the output: {new}"
    if kind == "s3":
        objects = [o["Key"] for o in s3_server.client().list_objects_v2(
            Bucket=Location(archive.output).root.split("/")[0])["Contents"]]
        assert all(k.startswith(("scans/", "colour/")) for k in objects), objects
        written = [k for k in objects if k.startswith("colour/") and "_manifest" not in k and not k.endswith("/")]
        assert written == ["colour/fine.jpg"], objects


def test_model_files_that_could_run_code_are_refused(tmp_path, model_file):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "a.jpg").write_bytes(small_jpeg())
    inputs = keras.Input((4,))
    with_lambda = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    with_lambda.save(tmp_path / "lambda.keras")
    (tmp_path / "pickled.keras").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with_lambda.save(tmp_path / "old.h5")
    for name, message in [("lambda.keras", "Lambda layer"), ("pickled.keras", "not a Keras 3 .keras file"),
                          ("old.h5", "not a Keras 3 .keras file")]:
        with pytest.raises(SystemExit, match=message):
            colorize.main(["--input", str(scans), "--output", str(tmp_path / f"out-{name}"),
                           "--model", str(tmp_path / name)])
        assert not (tmp_path / f"out-{name}").exists(), "stopped before any work"
    with pytest.raises(ValueError, match="(?i)lambda"):  # and Keras's safe mode, where the actors load it
        load_colorizer(tmp_path / "lambda.keras")


def test_credentials_never_appear_in_output_logs_manifest_or_report(tmp_path, s3_server, model_file, capfd):
    archive = make_archive("s3", tmp_path, s3_server, "secrets", {
        "a.jpg": small_jpeg(), "bad.jpg": b"not an image", "colour.png": cv2.imencode(".png", colour_photo(4))[1].tobytes()})
    code, rows = run_job(archive, model_file, "--max-error-fraction", "1")
    assert rows["a.jpg"]["status"] == "ok"
    assert evaluate.main(["--input", archive.input, "--input-list", str(write_list(tmp_path, ["colour.png"])),
                          "--out", str(tmp_path / "eval"), "--model", str(model_file)]) == 0
    secrets = [s3_server.env()["AWS_SECRET_ACCESS_KEY"], s3_server.env()["AWS_ACCESS_KEY_ID"]]
    printed = capfd.readouterr()
    output = Location(archive.output)
    manifest = b"".join(output.read(k) for k in output.list_keys(None) if k.startswith("_manifest/"))
    report = b"".join(p.read_bytes() for p in (tmp_path / "eval").rglob("*") if p.is_file())
    ray_logs = b"".join(p.read_bytes() for p in Path("/tmp/ray/session_latest/logs").rglob("*") if p.is_file())
    assert b"colour.png" in report, "the report was written"
    for secret in secrets:
        assert secret not in printed.out + printed.err and secret.encode() not in manifest, "in the job's output"
        assert secret.encode() not in report, "in the evaluation's report or tables"
        assert secret.encode() not in ray_logs, "in Ray's logs"


def write_list(folder: Path, keys: list[str]) -> Path:
    path = folder / "keys.txt"
    path.write_text("\n".join(keys) + "\n")
    return path
