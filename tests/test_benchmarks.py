"""Every benchmark runs as RESULTS.md says: each at its smallest size, as `python -m benchmarks.NAME`, ends with
its RESULT line, with figures, the machine and the commit (benchmarks.result_tail). Marked `benchmark`, so that
`pytest -m "not benchmark"` leaves them out while iterating; `make test` runs them."""
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from tests.conftest import EXAMPLES, ROOT, colour_photo

pytestmark = [pytest.mark.integration, pytest.mark.benchmark]

BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Path:
    """A stand-in for ../shared/datasets, a few files each: photos/ (colour JPEGs, MANIFEST.csv with a train and
    a val split) and bw-real/ (the grey examples)."""
    root = tmp_path_factory.mktemp("datasets")
    (root / "photos").mkdir()
    rows = ["path,split"]
    for seed in range(6):
        cv2.imwrite(str(root / "photos" / f"p{seed}.jpg"), colour_photo(seed))
        rows.append(f"p{seed}.jpg,{'val' if seed >= 4 else 'train'}")
    (root / "photos" / "MANIFEST.csv").write_text("\n".join(rows) + "\n")
    (root / "bw-real").mkdir()
    for photo in sorted(EXAMPLES.glob("*.jpg"))[:2]:
        (root / "bw-real" / photo.name).write_bytes(photo.read_bytes())
    return root


def smallest(name: str, datasets: Path) -> list[str]:
    """The benchmark's flags at its smallest size: a handful of images, one round."""
    photos = ["--photos", str(datasets / "photos")]
    return {
        "colour_originals": ["--datasets", str(datasets), "--limit", "2"],
        "cpu_stages": ["--n", "4", "--cpus", "2", "--batch-size", "2", *photos],
        "encode_cost": ["--n", "2", *photos],
        "key_stream": ["--sizes", "400", "--seconds", "1"],
        "large_image": ["--sizes", "320x240", "--repeat", "1"],
        "memory": ["--n", "4", *photos],
        "metrics_cost": ["--n", "4", "--rounds", "1", *photos],
        "model_speed": ["--seconds", "1", "--batch-sizes", "2"],
        "provenance_cost": ["--n", "2", *photos],
        "s3_requests": ["--n", "3", "--batch-size", "2"],
        "scan_memory": ["--sizes", "1", "--batch-sizes", "16"],
        "stage_bytes": ["--size", "400x300", "--images", "1"],
        "throughput": ["--n", "4", "--precision", "float32", "--batch-size", "2", *photos],
        "train_precision": ["--train", "4", "--val", "2", "--epochs", "1", "--unfreeze", *photos],
        "train_throughput": ["--input", str(datasets / "photos"), "--limit", "4", "--steps", "1", "--rounds", "1",
                             "--batch-size", "2"],
    }[name]


def test_every_benchmark_has_a_smoke_test(datasets):
    for name in BENCHMARKS:
        assert smallest(name, datasets), name


@pytest.mark.parametrize("name", BENCHMARKS)
def test_the_benchmark_runs_and_prints_its_result_line(name, datasets):
    if name == "provenance_cost" and subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", "bbff3a1^{commit}"],
                                                    capture_output=True).returncode:
        pytest.skip("provenance_cost runs the job of commit bbff3a1, which this clone does not have")
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *smallest(name, datasets)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    last = done.stdout.strip().splitlines()[-1]
    assert re.match(rf"RESULT {name}\b.*\d", last), last
    assert re.search(r"; machine .+, \d+ CPUs, (AMX|no AMX); commit \w+$", last), last
