"""The colorize job's stages, each a function (or, for the model, a class) over a batch.

A batch is a dict of equal-length numpy arrays, Ray Data's "numpy" batch format (batches.py), so the same
functions run under Ray Data (pipeline.py), in evaluation and training, and in a plain loop in a test. Each row
carries its `status` through every stage: TODO rows are worked on; SKIPPED (output already there, or in colour
already under --skip-colour) and ERROR rows pass through untouched, so every input ends as exactly one manifest
row (the columns and statuses are declared in manifest.py).
"""
import hashlib
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from colorize_core import codec, colour_profile, crashes, credentials, lab, label, metadata, runtime
from colorize_core.batches import columns, ragged
from colorize_core.manifest import FOLDER, Status, error_kinds
from colorize_core.settings import JobSettings
from colorize_core.storage import within

ALREADY_COLOUR = "already in colour"  # a skipped row's reason, with --skip-colour
LANDS_IN_INPUT = "its output would land inside --input (through a link): refused, so that no original is overwritten"
# An input up to this many pixels has its full-resolution L (8 MB as uint16), alpha and metadata carried from
# the decode stage through the model stage to the encode stage. A larger one (a scan) carries only its model
# input, and the encode stage reads and decodes it again: so no block, no model batch of 128 and no task holds
# more than one large scan at once, whatever the mix of sizes (issue 17; benchmarks/RESULTS.md).
CARRY_PIXELS = 4_000_000
BYTES_PER_PIXEL = 24  # a decode or encode task's peak per pixel of the one image it works on (16-bit)
EMPTY_L = np.zeros((0, 0), np.float32)
EMPTY_FIXED_L = lab.L_to_fixed(EMPTY_L)  # every row's L is uint16, empty ones too: Ray gives a column one dtype
EMPTY_AB = np.zeros((0, 0, 2), np.float32)
SOFTWARE = "colorize"
SIDECAR = ".xmp"  # an output's XMP sidecar is its key and this (photo.bmp.xmp): never two outputs' one name


class RefusedOutput(ValueError):
    """An output the job will not write: it would land inside the input."""


def gpu_ids() -> list:
    """The GPUs Ray gave this worker ([] outside Ray or on a CPU worker)."""
    try:
        import ray

        return list(ray.get_gpu_ids()) if ray.is_initialized() else []
    except (ImportError, RuntimeError):
        return []


def node_id() -> str:
    """The Ray node this stage runs on (the manifest's decode_node, predict_node, encode_node), "" outside Ray."""
    import ray  # only to ask; the stages themselves run without a cluster

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def unsafe_key_reason(key: str) -> str | None:
    """Why `key` may not be written under the output prefix (it would escape it, land in the output's own
    _manifest/ folder, or cannot be named exactly), or None if it is safe."""
    if re.search(r"\\x[89a-f][0-9a-f]", key):  # storage.printable_key's escapes: the name's bytes are not UTF-8
        return ("the file name is not UTF-8 (shown with \\x escapes): S3 keys and the manifest hold UTF-8 only, so "
                "its output could not carry its name; rename it, e.g. convmv -f latin1 -t utf-8")
    if not key or key.startswith("/") or "://" in key or "\\" in key:
        return "absolute path, URI or backslash"
    if any(part in ("", ".", "..") for part in key.split("/")):
        return "empty, '.' or '..' path component"
    if key.split("/")[0] == FOLDER:
        return f"{FOLDER}/ is the output's own folder for manifests and the run lock"
    return None


def lands_in_input(settings: JobSettings, key: str) -> bool:
    """Whether writing `key` under a local output would land inside the input tree, through a link: the job
    checks the folders before it starts (jobs/colorize.py), and each key here, as a link may be anywhere."""
    if settings.output.is_s3 or settings.input.is_s3:
        return False
    return within(os.path.realpath(settings.output.path(key)), settings.input.real_root)


def error_text(e: Exception) -> str:
    """An error row's text: the exception's type and message, on one line, at most 1,000 characters."""
    return " ".join(f"{type(e).__name__}: {e}".split())[:1000]


def task_peak_bytes(settings: JobSettings, batch_size: int) -> int:
    """Bytes a decode or encode task may hold at its peak: the largest image the run takes (--max-pixels) being
    worked on, and a batch of carried small ones (pipeline.task_memory_request asks Ray for it)."""
    return BYTES_PER_PIXEL * settings.max_pixels + batch_size * CARRY_PIXELS * 2


@dataclass(frozen=True)
class Opened:
    """An original decoded, read through its ICC profile, and its L: what the decode stage makes of the file's
    bytes, and the encode stage again for a large one."""

    L: np.ndarray  # float32 (H, W), lab.lightness
    chroma: float  # its colour beyond a single tone (lab.lightness)
    fmt: str
    depth: int  # 8 or 16
    alpha: np.ndarray  # EMPTY_L if none
    exv: bytes  # EXIF, IPTC and XMP (metadata.Header.exv)
    icc: bytes  # the output's profile: sRGB where the input's profile was applied, else b""
    profile: str  # what was done with the input's profile (the manifest's input_profile)


def open_original(data: bytes, max_pixels: int) -> Opened:
    """An original's bytes -> Opened; codec.ImageError if it cannot be read."""
    image, fmt, alpha, header = codec.decode_original(data, max_pixels)
    srgb = colour_profile.to_srgb(image, header.icc)  # its profile honoured: now sRGB
    L, chroma = lab.lightness(srgb.image)  # colour beyond a single tone: ~0 for grey and toned prints
    # The output is sRGB; it says so where its input carried a profile (one that was applied).
    icc = colour_profile.srgb() if srgb.converted else b""
    return Opened(L, chroma, fmt, 8 * image.dtype.itemsize, EMPTY_L if alpha is None else alpha, header.exv, icc,
                  srgb.note)


@dataclass
class Decoded:
    """A key after the decode stage: its manifest row so far (manifest.SCHEMA's first columns), then what the
    model and encode stages take from it (dropped before the manifest)."""

    key: str
    status: str = Status.TODO
    error: str = ""
    format: str = ""
    bit_depth: int = 0
    width: int = 0
    height: int = 0
    bytes_in: int = 0
    input_sha256: str = ""  # of the bytes as read (fixity)
    input_profile: str = ""
    input_chroma: float = 0.0
    decode_s: float = 0.0
    decode_node: str = ""
    # Full-resolution L as uint16 fixed point (lab.L_to_fixed): half the object-store bytes of float32. Empty for
    # a scan over CARRY_PIXELS (the encode stage opens it again), and for skipped and error rows.
    L: np.ndarray = field(default_factory=lambda: EMPTY_FIXED_L)
    model_input: np.ndarray = field(default_factory=lambda: EMPTY_L)  # settings.model_size square, TODO rows only
    alpha: np.ndarray = field(default_factory=lambda: EMPTY_L)
    exv: bytes = b""  # the original's metadata, to carry (a few KB)
    icc: bytes = b""  # the output's ICC profile: sRGB where the input's was applied

    def drop_images(self) -> None:
        """Nothing of the image carried on: a skipped or error row, or a scan the encode stage opens again."""
        self.L, self.alpha, self.exv, self.icc = EMPTY_FIXED_L, EMPTY_L, b"", b""


def decode_into(row: Decoded, settings: JobSettings, done: bool | None, crashed: bool,
                journal: crashes.Journal) -> None:
    """Read and decode `row.key` into `row`, or mark it skipped (done: its output is there; None: ask the
    output) or crashed. Raises for what makes it an error row; the columns filled before then stay (fixity)."""
    if reason := unsafe_key_reason(row.key):
        raise codec.ImageError(f"refused key ({reason}): it would be written outside the output prefix")
    if lands_in_input(settings, row.key):  # before "exists": through such a link the original looks done
        raise RefusedOutput(LANDS_IN_INPUT)
    if not settings.overwrite and (settings.output.exists(row.key) if done is None else done):
        row.status = Status.SKIPPED
        return
    if crashed:
        row.status, row.error = Status.ERROR, crashes.crash_error("decode")
        return
    data = settings.input.read(row.key, settings.max_bytes)
    row.bytes_in, row.input_sha256 = len(data), hashlib.sha256(data).hexdigest()  # fixity: the bytes as read
    with journal.handling("decode", [row.key]):  # a native crash in here is this key's (crashes.py)
        opened = open_original(data, settings.max_pixels)
    row.format, row.bit_depth, row.input_profile, row.input_chroma = opened.fmt, opened.depth, opened.profile, opened.chroma
    row.height, row.width = opened.L.shape
    if settings.skip_colour is not None and opened.chroma > settings.skip_colour:
        row.status, row.error = Status.SKIPPED, ALREADY_COLOUR
        return
    row.model_input = lab.model_input(opened.L, settings.model_size)
    if opened.L.size <= CARRY_PIXELS:  # a scan is opened again by the encode stage instead
        row.L, row.alpha, row.exv, row.icc = lab.L_to_fixed(opened.L), opened.alpha, opened.exv, opened.icc


def read_and_decode(batch: dict[str, np.ndarray], settings: JobSettings) -> dict[str, np.ndarray]:
    """CPU stage: key -> original bytes -> decoded image -> full-resolution L (uint16, lab.L_to_fixed) and the
    model input (settings.model_size square): a Decoded row each.

    Rows whose output exists already become SKIPPED without reading anything (resume), unless overwrite: the
    batch's `skip` column says which (pipeline: from one listing of the output); without it, each key is asked.
    """
    skip = batch["skip"] if "skip" in batch else [None] * len(batch["key"])
    journal = crashes.journal(settings.run_id, settings.failpoints)
    crashed, _ = journal.crashed("decode")
    node, rows = node_id(), []
    for key, done in zip(batch["key"], skip):
        start = time.perf_counter()
        row = Decoded(str(key), decode_node=node)
        try:
            decode_into(row, settings, done, key in crashed, journal)
        except Exception as e:  # whatever one file does (a library's own error types too), it is that file's row
            row.status, row.error, row.model_input = Status.ERROR, error_text(e), EMPTY_L
        if row.status != Status.TODO:
            row.drop_images()
        row.decode_s = time.perf_counter() - start
        rows.append(row)
    return columns(rows, Decoded)


class Predictor:
    """Actor stage: batched predict of ab (and a confidence) from the model-size L (224x224 by default). One
    instance per actor holds the model, built with the run's temperature."""

    def __init__(self, settings: JobSettings):
        from colorize_core.model import Colorizer  # Keras only in the actors
        from colorize_core.model_file import fetch_model

        # "auto" is decided here, by the worker that runs the model: its GPU, or its CPU's flags.
        self.precision, why = runtime.resolve_precision(settings.precision, bool(gpu_ids()))
        print(f"model precision {self.precision} ({why})", flush=True)
        self.colorizer = Colorizer.load(fetch_model(settings.model_uri, settings.model_sha256, settings.model_endpoint),
                                        self.precision, settings.temperature, settings.model_size,
                                        settings.flip_average)
        self.journal = crashes.journal(settings.run_id, settings.failpoints)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys, status, error = batch["key"], batch["status"].astype(object), batch["error"].astype(object)
        crashed, suspects = self.journal.crashed("predict")
        if crashed:
            isolated = (status == Status.TODO) & np.isin(keys, list(crashed))
            status[isolated], error[isolated] = Status.ERROR, crashes.crash_error("predict")
        todo = status == Status.TODO
        ab = [EMPTY_AB] * len(todo)
        seconds = np.zeros(len(todo))
        confidence = np.full(len(todo), np.nan)  # NaN: no confidence (regression head, skipped or error rows)
        rows = np.flatnonzero(todo)
        # The batch at once; one key at a time once a process died predicting some of them (crashes.py).
        for group in [[r] for r in rows] if suspects.intersection(keys[rows]) else [rows] if len(rows) else []:
            start = time.perf_counter()
            x = np.stack(list(batch["model_input"][group]))[..., None]
            with self.journal.handling("predict", keys[group]):
                predicted, confident = self.colorizer.predict(x)
            for i, row in enumerate(group):
                ab[row] = predicted[i]
            if confident is not None:
                confidence[group] = confident
            seconds[group] = (time.perf_counter() - start) / len(group)
        batch = {c: v for c, v in batch.items() if c not in ("model_input", "status", "error")}
        return {**batch, "status": status, "error": error, "ab": ragged(ab), "colour_confidence": confidence,
                "precision": np.where(todo, self.precision, "").astype(object), "predict_s": seconds,
                "predict_node": np.full(len(todo), node_id(), dtype=object)}


def reopen_original(settings: JobSettings, key: str, sha256: str) -> Opened:
    """A scan not carried from the decode stage (CARRY_PIXELS), opened again the same way; OSError if its bytes
    are no longer those the decode stage read (the original changed while the job ran)."""
    data = settings.input.read(key, settings.max_bytes)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise OSError(f"the original changed while the job ran (sha256 {sha256[:12]} when decoded): run again")
    return open_original(data, settings.max_pixels)


def record_of(settings: JobSettings, key: str, input_sha256: str, when: str) -> metadata.Record:
    """What the output of `key` says of how it was made and from what."""
    return metadata.Record(SOFTWARE, settings.model_uri.rsplit("/", 1)[-1], settings.model_sha256, when, key,
                           input_sha256, settings.digital_source_type, settings.caption_note)


def described(data: bytes, fmt: str, exv: bytes, icc: bytes, record: metadata.Record) -> metadata.Carried:
    """metadata.carry; where the original's metadata cannot be carried, the record alone (exiv2 still writes
    it), so that no output goes out without saying what it is: failing that too, the row is an error."""
    try:
        return metadata.carry(data, fmt, exv, icc, record)
    except metadata.exiv2.Exiv2Error as e:  # the colour is still worth having: say what did not come
        carried = metadata.carry(data, fmt, b"", icc, record)
        return metadata.Carried(carried.data, f"record only; the original's not carried: "
                                f"{e.args[-1] if e.args else e}", carried.sidecar)


def encode_and_write(batch: dict[str, np.ndarray], settings: JobSettings) -> dict[str, np.ndarray]:
    """CPU stage: predicted ab onto the ORIGINAL full-resolution L, encode in the input's format, describe
    (metadata.carry), write (an XMP sidecar first where the format cannot hold the record).

    Returns the manifest rows, with the sha256 of what was written: the heavy image columns are dropped here.
    """
    n = len(batch["key"])
    status, error = batch["status"].astype(object), batch["error"].astype(object)
    bytes_out, encode_s, write_s = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    carried, output_sha256 = np.full(n, "", dtype=object), np.full(n, "", dtype=object)
    sidecar_key, sidecar_sha256 = np.full(n, "", dtype=object), np.full(n, "", dtype=object)
    signed = np.full(n, credentials.NONE, dtype=object)
    when = str(np.datetime64("now", "s")) + "Z"
    journal = crashes.journal(settings.run_id, settings.failpoints)
    crashed, _ = journal.crashed("encode")
    for i in np.flatnonzero(status == Status.TODO):
        key, fmt = batch["key"][i], batch["format"][i]
        if key in crashed:
            status[i], error[i] = Status.ERROR, crashes.crash_error("encode")
            continue
        try:
            start = time.perf_counter()
            with journal.handling("encode", [key]):  # a native crash in here is this key's
                L, alpha, exv, icc = batch["L"][i], batch["alpha"][i], batch["exv"][i], batch["icc"][i]
                if lands_in_input(settings, key):
                    raise RefusedOutput(LANDS_IN_INPUT)
                if not L.size:  # a scan, not carried (CARRY_PIXELS): opened again, the same way
                    opened = reopen_original(settings, key, batch["input_sha256"][i])
                    L, alpha, exv, icc = lab.L_to_fixed(opened.L), opened.alpha, opened.exv, opened.icc
                    del opened
                dtype = np.uint16 if batch["bit_depth"][i] == 16 else np.uint8
                image = lab.recombine(L, batch["ab"][i], dtype, settings.chroma_gain, settings.upsampling)
                del L
                if settings.label:
                    image = label.draw(image, settings.label)
                data = codec.encode(image, fmt, settings.jpeg_quality, alpha if alpha.size else None)
                del image
                record = record_of(settings, key, batch["input_sha256"][i], when)
                described_output = described(data, fmt, exv, icc, record)
                data, carried[i] = described_output.data, described_output.what
                if settings.signing is not None and fmt in credentials.MEDIA_TYPES:  # last: nothing is written after
                    data, signed[i] = credentials.sign(data, fmt, record, settings.signing), credentials.SIGNED
            encode_s[i] = time.perf_counter() - start
            start = time.perf_counter()
            if described_output.sidecar:  # before the output: an output that is there has its sidecar (resume)
                sidecar_key[i] = key + SIDECAR
                settings.output.write_atomic(sidecar_key[i], described_output.sidecar, codec.XMP_MEDIA_TYPE)
                sidecar_sha256[i] = hashlib.sha256(described_output.sidecar).hexdigest()
            settings.output.write_atomic(key, data, codec.MEDIA_TYPES[fmt])
            write_s[i] = time.perf_counter() - start
            status[i], bytes_out[i], output_sha256[i] = Status.OK, len(data), hashlib.sha256(data).hexdigest()
        except Exception as e:  # whatever one image does, it is that image's row; the rest of the batch goes on
            status[i], error[i] = Status.ERROR, error_text(e)
            if sidecar_key[i]:  # written, but its output was not: no sidecar without its output
                try:
                    settings.output.delete(sidecar_key[i])
                except OSError:
                    pass
            sidecar_key[i] = sidecar_sha256[i] = ""
            signed[i] = credentials.NONE
    manifest = {c: v for c, v in batch.items() if c not in ("L", "ab", "alpha", "exv", "icc")}
    return {
        **manifest,
        "output_key": np.where(status == Status.ERROR, "", batch["key"]).astype(object),
        "status": status,
        "error": error,
        "error_kind": error_kinds(status, error),
        "bytes_out": bytes_out,
        "output_sha256": output_sha256,
        "metadata": carried,
        "sidecar_key": sidecar_key,
        "sidecar_sha256": sidecar_sha256,
        "c2pa": signed,
        "encode_s": encode_s,
        "write_s": write_s,
        "encode_node": np.full(n, node_id(), dtype=object),
        # The run's own: its model and the knobs as used (resolved on the driver: settings.py).
        "temperature": np.full(n, np.nan if settings.temperature is None else settings.temperature),
        "chroma_gain": np.full(n, settings.chroma_gain),
        "model_size": np.full(n, settings.model_size),
        "flip_average": np.full(n, settings.flip_average),
        "upsampling": np.full(n, settings.upsampling, dtype=object),
        "model": np.full(n, settings.model_uri, dtype=object),
        "model_sha256": np.full(n, settings.model_sha256, dtype=object),
        "run_id": np.full(n, settings.run_id, dtype=object),
        "timestamp": np.full(n, np.datetime64("now", "ms")),
    }
