"""The colorizer file without Keras: where the shipped one is, the safety check, its sha256, head and defaults,
the knobs a run resolves against them, and fetching it to a worker.

The driver inspects the file once (no TensorFlow: the check and the defaults come from its config.json); each
model actor fetches its own copy, checks it against the sha256 the driver recorded, and loads it in safe mode
(model.load_colorizer).
"""
import hashlib
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from colorize_core.storage import Location

DEFAULT_MODEL = str(Path(__file__).resolve().parent.parent / "models" / "colorizer.keras")


class Head(StrEnum):
    """A colorizer's head (model.py): ab directly (the thesis's), or a distribution over colour classes."""

    REGRESSION = "regression"
    CLASSIFICATION = "classification"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, recorded with every output so each colour image names the model that made it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_model_file(data: bytes) -> None:
    """Refuse, before any work, a model file that loading could run code from: anything but a Keras 3 `.keras`
    archive (pickles, HDF5, SavedModel), or one holding a Lambda layer. (The actors load in safe mode as well.)"""
    refused = ("not a Keras 3 .keras file (a zip holding config.json): pickled, HDF5 and SavedModel models are "
               "refused, since loading them can run arbitrary code")
    if not data.startswith(b"PK\x03\x04"):
        raise ValueError(refused)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        damaged = archive.testzip()  # every member against its CRC: corrupt weights show here
    except (zipfile.BadZipFile, EOFError, OSError):
        raise ValueError("a truncated or corrupt .keras file (its zip cannot be read): copy it again") from None
    if damaged:
        raise ValueError(f"a corrupt .keras file ({damaged} fails its checksum): copy it again")
    try:
        config = archive.read("config.json").decode("utf-8")
        json.loads(config)
    except (KeyError, UnicodeDecodeError, ValueError):
        raise ValueError(refused) from None
    if '"class_name": "Lambda"' in config or '"__lambda__"' in config:
        raise ValueError("the model holds a Lambda layer (arbitrary Python code): refused; rebuild it without one")


@dataclass(frozen=True)
class ModelFile:
    """What the driver knows of a model file before any actor loads it: its hash, its head and the defaults of
    its knobs (read from its config.json, without TensorFlow)."""

    sha256: str
    head: Head
    temperature: float | None  # the classification head's default annealed-mean temperature
    chroma_gain: float  # the default gain: the file's final chroma_gain layer, else 1.0


def _layer_configs(node):
    """Every layer's {"class_name", "config"} in a Keras config.json, nested models included."""
    if isinstance(node, dict):
        if "class_name" in node and isinstance(node.get("config"), dict):
            yield node
        for value in node.values():
            yield from _layer_configs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _layer_configs(value)


def not_a_colorizer(config: dict, layers: list[dict], classification: bool) -> str | None:
    """Why a model's config.json does not describe a colorizer (one input of L, ab out), or None: from its
    layers' shapes, before any actor loads it."""
    outermost = config.get("config", {}).get("layers", [])
    inputs = [l["config"].get("batch_shape") for l in outermost if l.get("class_name") == "InputLayer"]
    if len(inputs) != 1 or not inputs[0] or len(inputs[0]) != 4 or inputs[0][-1] != 1:
        return f"its input is {inputs}, not one image of lightness (batch, height, width, 1)"
    ab = [l["config"] for l in layers if l["config"].get("name") == "ab"]
    if not classification and (len(ab) != 1 or ab[0].get("filters") != 2):
        return "it has no output layer 'ab' of 2 channels (a and b)"
    return None


def inspect_model_file(uri: str, endpoint: str | None = None) -> ModelFile:
    """The model file's sha256, head and defaults, after check_model_file (SystemExit, saying what to do, if it
    is missing or refused). Read once by the driver; every actor checks its copy against the hash."""
    if uri.startswith("s3://"):
        folder, name = uri.rsplit("/", 1)
        data = Location(folder, endpoint).read(name)
    elif not Path(uri).is_file():
        raise SystemExit(f"model file not found: {uri}\n"
                         "Build the default model with `make model` (or pass --model PATH).")
    else:
        data = Path(uri).read_bytes()
    try:
        check_model_file(data)
    except ValueError as e:
        raise SystemExit(f"model {uri}: {e}") from None
    config = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("config.json"))
    layers = list(_layer_configs(config))
    annealed = [l["config"] for l in layers if l["class_name"] == "AnnealedMean"]
    if reason := not_a_colorizer(config, layers, bool(annealed)):
        raise SystemExit(f"model {uri}: not a colorizer: {reason}")
    outermost = config.get("config", {}).get("layers", [])
    gain = [l["config"]["scale"] for l in outermost[-1:] if l.get("config", {}).get("name") == "chroma_gain"]
    return ModelFile(hashlib.sha256(data).hexdigest(), Head.CLASSIFICATION if annealed else Head.REGRESSION,
                     float(annealed[0]["temperature"]) if annealed else None, float(gain[0]) if gain else 1.0)


def resolve_knobs(model: ModelFile, temperature: float | None, chroma_gain: float | None) -> tuple[float | None, float]:
    """The temperature and chroma gain a run uses: those asked for, else the model file's own defaults (which
    reproduce its output as saved). ValueError for a temperature on a regression model or values out of range."""
    if temperature is not None:
        if model.head != Head.CLASSIFICATION:
            raise ValueError("--temperature applies to the classification head only, and this model has the "
                             "regression head: leave it out (--chroma-gain works with either head)")
        if not 0 < temperature <= 10:
            raise ValueError(f"--temperature must be in (0, 10], not {temperature} (1: the predicted mean; "
                             "smaller: more vivid, toward the most likely colour)")
    if chroma_gain is not None and not 0 <= chroma_gain <= 4:
        raise ValueError(f"--chroma-gain must be in [0, 4], not {chroma_gain} (0: grey, 1: as predicted)")
    return (model.temperature if temperature is None else temperature,
            model.chroma_gain if chroma_gain is None else chroma_gain)


def fetch_model(uri: str, sha256: str, endpoint: str | None = None) -> str:
    """A local path to the model at `uri` (a path or s3://...), checked against the sha256 the job recorded."""
    path = uri
    if uri.startswith("s3://"):
        bucket_dir, name = uri.rsplit("/", 1)
        path = str(Path(tempfile.gettempdir()) / "colorize-models" / f"{sha256}-{name}")
        if not Path(path).exists():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Location(uri=path.rsplit("/", 1)[0]).write_atomic(Path(path).name, Location(bucket_dir, endpoint).read(name))
    if file_sha256(path) != sha256:
        raise RuntimeError(f"model {uri} changed during the job (sha256 differs): rerun to use the new file")
    return path
