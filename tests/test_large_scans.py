"""Large scans at GPU batch sizes: no block, model batch or task holds more than one large scan at once, whatever
the mix of sizes; the stages ask Ray for the memory that covers it."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from colorize_core import metadata, stages
from colorize_core.storage import Location
from tests.archive import decode_any, make_archive, run_job
from tests.conftest import colour_photo, plain_settings
from tests.ray_cluster import ray_head

REPO = Path(__file__).resolve().parent.parent


def scan(width: int, height: int, seed: int = 0) -> bytes:
    """A grey scan as a JPEG, cheap to make at any size: a smooth random surface with grain."""
    rng = np.random.default_rng(seed)
    smooth = cv2.resize(rng.integers(40, 215, (12, 16), dtype=np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.integers(0, 12, (height, width), dtype=np.uint8)
    return cv2.imencode(".jpg", cv2.add(smooth, grain), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def small_photo(seed: int) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(colour_photo(seed), cv2.COLOR_BGR2GRAY))[1].tobytes()


def test_a_scan_is_not_carried_and_comes_out_as_if_it_were(tmp_path, model_file, monkeypatch):
    """The stage functions without Ray: a scan above CARRY_PIXELS leaves the decode stage with its model input
    only, and the encode stage, opening it again, writes the same pixels as when it is carried."""
    inputs = {"scan.jpg": scan(3000, 2000), "small.jpg": small_photo(1)}
    archive = make_archive("local", tmp_path, None, "carry", inputs)
    outputs = {}
    for carry in (10**9, 1_000_000):
        monkeypatch.setattr(stages, "CARRY_PIXELS", carry)
        settings = plain_settings(archive.input, archive.output + f"-{carry}", model_file, f"carry-{carry}",
                                  overwrite=True)
        decoded = stages.read_and_decode({"key": np.array(["scan.jpg", "small.jpg"], dtype=object)}, settings)
        assert [L.size for L in decoded["L"]] == ([6_000_000, 120 * 160] if carry > 6_000_000 else [0, 120 * 160])
        assert all(x.shape == (224, 224) for x in decoded["model_input"])
        rows = stages.encode_and_write(stages.Predictor(settings)(decoded), settings)
        assert list(rows["status"]) == ["ok", "ok"], rows["error"]
        outputs[carry] = {key: decode_any(settings.output.read(key)) for key in inputs}
    for key in inputs:  # (the files differ in the time of the colorizing they record)
        assert np.array_equal(outputs[10**9][key], outputs[1_000_000][key]), f"{key}: the same pixels either way"


@pytest.mark.own_ray
def test_a_folder_of_100_megapixel_scans_at_batch_128_on_a_memory_limited_ray(tmp_path, model_file):
    big = scan(12000, 8400)  # 100.8 megapixels
    inputs = {**{f"scans/drum-{i}.jpg": big for i in range(8)},
              **{f"photos/p{i:02d}.jpg": small_photo(i) for i in range(40)}}
    archive = make_archive("local", tmp_path, None, "scans", inputs)
    del big, inputs
    # Ray's memory resource 10 GiB (a model actor's 2 GiB, and two decode or encode tasks' requests), an
    # object store of 2 GiB: the whole folder's L at once would be 1.6 GB, a batch of 128 with them all.
    with ray_head(2, "--memory=10737418240", "--object-store-memory=2147483648") as (address, _, env):
        job = subprocess.run([sys.executable, "-m", "jobs.colorize", "--input", archive.input, "--output",
                              archive.output, "--model", str(model_file), "--batch-size", "128",
                              "--max-pixels", "110000000", "--ray-address", address],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert job.returncode == 0, job.stdout + job.stderr
    assert "done 48, skipped 0, failed 0 of 48 inputs" in job.stdout, job.stdout + job.stderr
    for i in range(8):
        header = metadata.read_header(Location(archive.output).read(f"scans/drum-{i}.jpg"))
        assert (header.width, header.height) == (12000, 8400)
    code, rows = run_job(archive, model_file)  # every one is there: a rerun skips them all
    assert code == 0 and {r["status"] for r in rows.values()} == {"skipped"} and len(rows) == 48


def test_a_scan_that_changes_between_its_two_reads_is_an_error_row(tmp_path, model_file, monkeypatch):
    """A scan opened again by the encode stage must be the bytes the decode stage hashed (input_sha256): an
    original replaced meanwhile would otherwise get the colour of another picture."""
    archive = make_archive("local", tmp_path, None, "changed", {"scan.jpg": scan(1200, 900)})
    monkeypatch.setattr(stages, "CARRY_PIXELS", 100_000)
    settings = plain_settings(archive.input, archive.output, model_file, "changed")
    decoded = stages.read_and_decode({"key": np.array(["scan.jpg"], dtype=object)}, settings)
    assert decoded["L"][0].size == 0, "not carried: opened again"
    archive.put("scan.jpg", scan(1200, 900, seed=7))
    rows = stages.encode_and_write(stages.Predictor(settings)(decoded), settings)
    assert list(rows["status"]) == ["error"] and "the original changed while the job ran" in rows["error"][0]
    assert not Location(archive.output).exists("scan.jpg")
