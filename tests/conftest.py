"""Shared fixtures: a real S3 server (SeaweedFS) and a real local Ray, both on 127.0.0.1, and a real Keras model.

The S3 server starts only for the tests that ask for it (s3_server); its credentials are exported at once, so
that every Ray started meanwhile hands them to its workers. One local Ray, started by the first test that runs
a job in this process, is shared by every such test; the tests that start Ray clusters of their own run last
(a small machine holds one Ray at a time). Tests that need Ray, S3 or a browser are marked `integration`:
`pytest -m "not integration"` runs the rest in about two minutes on 2 cores.
"""
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from colorize_core import runtime
from tools.local_s3 import LocalS3

# Before Ray is imported: the jobs' own environment (loopback, quiet TensorFlow), and for the tests no token
# file and no usage reporting (no network here), on the TensorFlow backend whatever the shell says.
runtime.prepare_environment()
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"
ODD_NAME = 'odd <b>name & "quotes" <script>.png'  # a file name the HTML report must escape


# The S3 server of this test session: its port and credentials are chosen now and exported the standard AWS way
# before any test starts Ray, so that Ray's workers inherit them and find them through the AWS credential chain,
# as a cluster node would. It starts on first use (s3_server).
S3_FOLDER = Path(tempfile.mkdtemp(prefix="colorize-tests-s3-"))
S3 = LocalS3(S3_FOLDER)
os.environ.update(S3.env())



def pytest_collection_modifyitems(session, config, items):
    """Every test that uses the S3 server, or a Ray of its own, is an integration test; those with a Ray of
    their own (`ray start`: ray_cluster.py) shut the shared local Ray down, so they run after the rest and the
    shared one starts once (the order within each group is kept)."""
    for item in items:
        if "s3_server" in getattr(item, "fixturenames", ()) or item.get_closest_marker("own_ray"):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: item.get_closest_marker("own_ray") is not None)


@pytest.fixture(autouse=True)
def _ray_only_in_integration_tests(request):
    """A test that starts the local Ray is an integration test: one that is not marked so fails, saying so."""
    ray = sys.modules.get("ray")
    running = ray is not None and ray.is_initialized()
    yield
    ray = sys.modules.get("ray")
    if not running and ray is not None and ray.is_initialized() and not request.node.get_closest_marker("integration"):
        pytest.fail("this test started Ray: mark it @pytest.mark.integration (conftest.py)")


@pytest.fixture(scope="session")
def s3_server():
    """SeaweedFS serving S3 on 127.0.0.1 with its own credentials (already in the environment): started by
    the first test that asks for it, stopped at the end of the session."""
    S3.start()
    yield S3
    S3.stop()
    shutil.rmtree(S3_FOLDER, ignore_errors=True)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """A real colorizer saved as one .keras file: random weights, except that its output layer is set to
    give a clear tint (a ~ +19, b ~ +32) that varies a little with the image, so tests can see colour."""
    import keras

    from colorize_core.model import build_colorizer

    keras.utils.set_random_seed(1)
    model = build_colorizer(encoder_weights=None)
    kernel, _ = model.get_layer("ab").get_weights()
    model.get_layer("ab").set_weights([kernel * 1e-3, np.arctanh(np.array([0.15, 0.25], np.float32))])
    path = tmp_path_factory.mktemp("model") / "colorizer.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def classification_model_file(tmp_path_factory) -> Path:
    """A real colorizer with the classification head: random decoder whose distributions vary with the image,
    colour classes from the made-up colour photos."""
    import keras

    from colorize_core import colour_classes, lab
    from colorize_core.model import build_colorizer

    keras.utils.set_random_seed(2)
    ab = np.concatenate([lab.bgr_to_lab(colour_photo(seed))[..., 1:] for seed in range(4)])
    model = build_colorizer(None, head="classification", classes=colour_classes.classes_from_data(ab))
    logits = model.get_layer("ab_logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 300, bias])
    path = tmp_path_factory.mktemp("classification") / "classification.keras"
    model.save(path)
    return path


def plain_settings(input: str | Path, output: str | Path, model: str | Path, run_id: str = "t", **fields):
    """JobSettings for the stage functions run in a plain loop (no Ray) over a local `input` into `output`, with
    `model`'s own knobs, as the job resolves them."""
    from colorize_core.model_file import inspect_model_file, resolve_knobs
    from colorize_core.settings import JobSettings
    from colorize_core.storage import Location

    facts = inspect_model_file(str(model))
    temperature, chroma_gain = resolve_knobs(facts, None, None)
    return JobSettings(input=Location(str(input)), output=Location(str(output)), run_id=run_id, model_uri=str(model),
                       model_sha256=facts.sha256, temperature=temperature, chroma_gain=chroma_gain, **fields)


def grey_bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def exif_rotated_jpeg() -> tuple[bytes, np.ndarray]:
    """A photo stored sideways with EXIF Orientation 6 (turn 90 degrees clockwise to view), and its upright pixels.

    Upright it is 96 wide and 160 tall.
    """
    from PIL import Image

    photo = cv2.imread(str(EXAMPLES / "forest.jpg"), cv2.IMREAD_GRAYSCALE)
    upright = cv2.resize(photo[:, 200:520], (96, 160), interpolation=cv2.INTER_AREA)
    stored = np.rot90(upright, k=1)  # what a camera held sideways stores; Orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(stored)).save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue(), upright


@pytest.fixture(scope="session")
def archive_inputs() -> dict[str, bytes]:
    """The inputs of an archive run: key -> bytes. Keys starting "bad/" are not images the job can colorize."""
    photo = cv2.imread(str(EXAMPLES / "castle.jpg"), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(photo, (240, 160), interpolation=cv2.INTER_AREA)
    rotated, _ = exif_rotated_jpeg()
    inputs = {
        "boats.jpg": (EXAMPLES / "boats.jpg").read_bytes(),
        "sub/dir/forest.jpg": (EXAMPLES / "forest.jpg").read_bytes(),
        "grey8.png": cv2.imencode(".png", small)[1].tobytes(),
        "grey16.png": cv2.imencode(".png", small.astype(np.uint16) * 257 + 100)[1].tobytes(),
        "grey16.tif": cv2.imencode(".tif", small.astype(np.uint16) * 250)[1].tobytes(),
        "rgb8.tif": cv2.imencode(".tif", grey_bgr(small))[1].tobytes(),
        "rotated.jpg": rotated,
    }
    full = (EXAMPLES / "ladybird.jpg").read_bytes()
    inputs["bad/truncated.jpg"] = full[: len(full) // 3]
    inputs["bad/notes.jpg"] = b"Scanned by the archive, box 12. Not an image.\n" * 20
    return inputs


def colour_photo(seed: int) -> np.ndarray:
    """A made-up colour picture: coloured blocks and a gradient, blurred a little, 8-bit BGR."""
    rng = np.random.default_rng(seed)
    image = np.zeros((120, 160, 3), np.uint8)
    image[:] = np.linspace(40, 220, 160)[None, :, None].astype(np.uint8)
    for _ in range(6):
        x, y = rng.integers(0, 120), rng.integers(0, 80)
        image[y:y + 40, x:x + 40] = rng.integers(0, 255, 3)
    return cv2.GaussianBlur(image, (0, 0), 1.5)


def write_colour_photos(folder: Path, count: int) -> Path:
    """`count` made-up colour photos p0.jpg.. in `folder` (training inputs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        cv2.imwrite(str(folder / f"p{seed}.jpg"), colour_photo(seed))
    return folder


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "a.jpg"), colour_photo(1), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(folder / "b16.png"), colour_photo(2).astype(np.uint16) * 257)
    cv2.imwrite(str(folder / ODD_NAME), colour_photo(3))
    return folder


@pytest.fixture(scope="session")
def evaluated(photos, model_file, tmp_path_factory):
    """A real evaluation of three made-up colour photos (one 16-bit, one with a name that needs escaping)."""
    out = tmp_path_factory.mktemp("eval")
    from jobs import evaluate

    assert evaluate.main(["--input", str(photos), "--out", str(out), "--model", str(model_file), "--batch-size", "2"]) == 0
    return out, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="session")
def evaluated_classification(photos, classification_model_file, tmp_path_factory):
    """The same evaluation with a classification-head model: it has a confidence per image."""
    out = tmp_path_factory.mktemp("eval-classification")
    from jobs import evaluate

    assert evaluate.main(["--input", str(photos), "--out", str(out), "--model", str(classification_model_file),
                          "--batch-size", "2", "--temperature", "0.3"]) == 0
    return out, json.loads((out / "summary.json").read_text())
