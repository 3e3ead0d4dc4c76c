"""Seeded fuzzing of the decode and encode stages: small valid JPEG, PNG, TIFF (8 and 16 bit), WebP and BMP files,
some carrying EXIF, IPTC, XMP and an ICC profile (written by exiv2), with bytes of their headers and metadata
mutated: bits flipped, random bytes, truncation, length fields set to 0, 0xFFFF or huge, segments duplicated
or dropped, TIFF/EXIF IFD entries given odd tags, types, counts and offsets, image sizes made odd.

Every case goes through stages.read_and_decode, a stand-in for the model (zero ab: the Predictor's columns
without TensorFlow) and stages.encode_and_write, in batches as the job runs them, and must end as exactly one
row, "ok" (within --max-pixels, with an output file that decodes at the row's size) or "error" (with a
reason): no exception may escape a stage. The cases are deterministic: case i is made by numpy's
default_rng([SEED, i]) alone, so one case is rebuilt with `mutated_case(i)` whatever the number of cases
(COLORIZE_FUZZ_CASES=20000 searches further, in ~35 s).

The stages run in this process: a native crash in a decoder (none in 25,000 cases when this was written) would
end pytest itself; crashes.py is what isolates such an input in a real run.
"""
import dataclasses
import os
import struct
import time
import traceback
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
import pytest

from colorize_core import codec, crashes, stages
from colorize_core.batches import ragged
from colorize_core.manifest import Status
from colorize_core.settings import JobSettings
from colorize_core.storage import Location
from tests import malformed
from tests.test_hostile_inputs import with_metadata

SEED = 20_260_301
CASES = int(os.environ.get("COLORIZE_FUZZ_CASES", "1000"))  # more for a longer search; case i is the same
BATCH = 10  # rows a stage call gets at once, as a Ray Data batch
MAX_PIXELS = 4_000_000  # a mutated size cannot make a stage allocate much
HOT_PREFIX = 512  # bytes at the start of every file that are mutated, besides its metadata segments


# --- the valid files the cases start from -------------------------------------------------------------------

@cache
def base_files() -> dict[str, bytes]:
    """name -> a small valid file (the name's extension is its format)."""
    grey = malformed.photo()
    bgr = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    grey16 = grey.astype(np.uint16) * 257

    def enc(ext: str, image: np.ndarray, *params: int) -> bytes:
        ok, buffer = cv2.imencode(ext, image, list(params))
        assert ok
        return buffer.tobytes()

    return {
        "plain.jpg": enc(".jpg", grey, cv2.IMWRITE_JPEG_QUALITY, 90),
        "meta.jpg": with_metadata(enc(".jpg", np.ascontiguousarray(np.rot90(grey)), cv2.IMWRITE_JPEG_QUALITY, 90), 6),
        "plain.png": enc(".png", grey),
        "meta.png": with_metadata(enc(".png", bgr)),
        "grey16.png": enc(".png", grey16),
        "grey8.tif": enc(".tif", grey),
        "meta-rgb8.tif": with_metadata(enc(".tif", bgr)),
        "grey16.tif": enc(".tif", grey16),
        "meta-grey16.tif": with_metadata(enc(".tif", grey16)),
        "lossy.webp": enc(".webp", bgr, cv2.IMWRITE_WEBP_QUALITY, 90),
        "meta-lossless.webp": with_metadata(enc(".webp", bgr, cv2.IMWRITE_WEBP_QUALITY, 101)),
        "meta-lossy.webp": with_metadata(enc(".webp", bgr, cv2.IMWRITE_WEBP_QUALITY, 90)),
        "plain.bmp": enc(".bmp", bgr),
    }


# --- where a file's header and metadata are ------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    """A JPEG segment, PNG chunk, WebP chunk or TIFF IFD entry: [start, end), and its length field if any."""

    kind: str
    start: int
    end: int
    length_at: int = -1  # where its length field is (-1: none)
    length_size: int = 0  # 2 or 4 bytes
    order: str = ">"  # the length field's byte order (struct)


TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
IFD_POINTERS = (0x8769, 0x8825, 0xA005)  # the EXIF, GPS and interoperability IFDs


@dataclass(frozen=True)
class Entry:
    """A 12-byte TIFF IFD entry (tag, type, count, value or offset) at `at`; offsets count from `base`."""

    at: int
    base: int
    order: str  # "<" (II) or ">" (MM)
    ifd_start: int  # the IFD's first entry
    ifd_entries: int


def tiff_structure(data: bytes, base: int, limit: int) -> tuple[list[Entry], list[tuple[int, int]]]:
    """The IFD entries of the TIFF structure at `base` (a TIFF file, or the EXIF in a JPEG, PNG or WebP) and the
    [start, end) of the values they point to."""
    order = {b"II": "<", b"MM": ">"}.get(data[base:base + 2])
    if order is None or base + 8 > limit:
        return [], []
    entries, blobs, seen = [], [], set()
    queue = [struct.unpack_from(order + "I", data, base + 4)[0]]
    while queue and len(seen) < 8:
        offset = queue.pop(0)
        at = base + offset
        if offset in seen or offset == 0 or at + 2 > limit:
            continue
        seen.add(offset)
        n = struct.unpack_from(order + "H", data, at)[0]
        if n > 500:
            continue
        blobs.append((at, at + 2))  # the entry count
        for i in range(n):
            entry_at = at + 2 + 12 * i
            if entry_at + 12 > limit:
                break
            entries.append(Entry(entry_at, base, order, at + 2, n))
            tag, kind, count, value = struct.unpack_from(order + "HHII", data, entry_at)
            size = TYPE_SIZES.get(kind, 1) * count
            if tag in IFD_POINTERS:
                queue.append(value)
            elif 4 < size and base + value + size <= limit:
                blobs.append((base + value, base + value + min(size, 4096)))
        next_at = at + 2 + 12 * n
        if next_at + 4 <= limit:
            blobs.append((next_at, next_at + 4))
            queue.append(struct.unpack_from(order + "I", data, next_at)[0])
    return entries, blobs


@dataclass(frozen=True)
class Layout:
    fmt: str
    segments: list[Segment]
    entries: list[Entry]  # TIFF IFD entries (a TIFF's own, or its EXIF's)
    hot: list[tuple[int, int]]  # the [start, end) ranges that are mutated


def layout(data: bytes) -> Layout:
    """Where `data`'s header, segments and metadata are (as far as they can still be found: it may be mutated)."""
    segments, entries, blobs = [], [], []

    def exif_at(base: int, limit: int) -> None:
        found, found_blobs = tiff_structure(data, base, limit)
        entries.extend(found), blobs.extend(found_blobs)

    if data[:3] == b"\xff\xd8\xff":
        fmt, pos = "jpeg", 2
        while pos + 4 <= len(data) and data[pos] == 0xFF:
            marker = data[pos + 1]
            if 0xD0 <= marker <= 0xD9 or marker in (0x01, 0xFF):
                pos += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack_from(">H", data, pos + 2)[0]
            segments.append(Segment(f"jpeg-{marker:02X}", pos, min(pos + 2 + length, len(data)), pos + 2, 2, ">"))
            if marker == 0xE1 and data[pos + 4:pos + 10] == b"Exif\0\0":
                exif_at(pos + 10, min(pos + 2 + length, len(data)))
            if marker == 0xDA:  # the entropy-coded data follows: not a segment
                break
            pos += 2 + length
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        fmt, pos = "png", 8
        while pos + 12 <= len(data):
            length, kind = struct.unpack_from(">I4s", data, pos)
            end = min(pos + 12 + length, len(data))
            segments.append(Segment(f"png-{kind.decode('latin-1')}", pos, end, pos, 4, ">"))
            if kind == b"eXIf":
                exif_at(pos + 8, end)
            if kind == b"IDAT":
                break
            pos = end
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt, pos = "webp", 12
        segments.append(Segment("riff", 0, 12, 4, 4, "<"))
        while pos + 8 <= len(data):
            kind, length = struct.unpack_from("<4sI", data, pos)
            end = min(pos + 8 + length + (length & 1), len(data))
            segments.append(Segment(f"webp-{kind.decode('latin-1')}", pos, end, pos + 4, 4, "<"))
            if kind == b"EXIF":
                exif_at(pos + 8 + (6 if data[pos + 8:pos + 14] == b"Exif\0\0" else 0), end)
            pos = end
    elif data[:4] in (b"II*\0", b"MM\0*"):
        fmt = "tiff"
        exif_at(0, len(data))
        segments.extend(Segment("tiff-entry", e.at, e.at + 12) for e in entries)
    elif data[:2] == b"BM":
        fmt = "bmp"
        segments.append(Segment("bmp-header", 0, min(54, len(data)), 2, 4, "<"))
    else:
        fmt = "unknown"
    pixels = [s for s in segments if s.kind in ("png-IDAT", "webp-VP8 ", "webp-VP8L", "jpeg-DA")]
    # The first HOT_PREFIX bytes, but of a PNG's or WebP's compressed pixels only their first 32 bytes.
    hot = [(0, min(HOT_PREFIX, len(data), pixels[0].start + 32 if pixels and fmt != "jpeg" else len(data)))]
    for s in segments:  # image data only at its start (the first 32 bytes of an IDAT, a VP8 chunk...)
        big = s in pixels or s.end - s.start > 8192
        hot.append((s.start, min(s.end, s.start + 32) if big else s.end))
    hot.extend(blobs)
    return Layout(fmt, segments, entries, [(a, b) for a, b in hot if a < b <= len(data)])


# --- mutations ------------------------------------------------------------------------------------------------

def hot_position(rng: np.random.Generator, lay: Layout) -> int:
    start, end = lay.hot[rng.integers(len(lay.hot))]
    return int(rng.integers(start, end))


def flip_bits(rng, data: bytearray, lay: Layout) -> str:
    where = [hot_position(rng, lay) for _ in range(rng.integers(1, 9))]
    for at in where:
        data[at] ^= 1 << int(rng.integers(8))
    return f"flip@{','.join(map(str, where))}"


def random_bytes(rng, data: bytearray, lay: Layout) -> str:
    at, n = hot_position(rng, lay), int(rng.integers(1, 17))
    data[at:at + n] = rng.bytes(len(data[at:at + n]))
    return f"random@{at}+{n}"


def truncate(rng, data: bytearray, lay: Layout) -> str:
    cut = hot_position(rng, lay) if rng.random() < 0.6 else int(rng.integers(1, len(data)))
    del data[max(1, cut):]
    return f"truncate@{max(1, cut)}"


def set_length(rng, data: bytearray, lay: Layout) -> str:
    fields = [s for s in lay.segments if s.length_at >= 0 and s.length_at + s.length_size <= len(data)]
    if not fields:
        return flip_bits(rng, data, lay)
    s = fields[rng.integers(len(fields))]
    code = {2: "H", 4: "I"}[s.length_size]
    top = (1 << 8 * s.length_size) - 1
    old = struct.unpack_from(s.order + code, data, s.length_at)[0]
    new = [0, 1, 2, 0xFFFF, top, top - 1, 0x7FFFFFFF, old - 1, old + 1, old * 2 + 7, len(data)][rng.integers(11)]
    struct.pack_into(s.order + code, data, s.length_at, min(max(new, 0), top))
    return f"length({s.kind}@{s.start})={min(max(new, 0), top):#x}"


def duplicate(rng, data: bytearray, lay: Layout) -> str:
    if lay.fmt == "tiff" or (lay.entries and rng.random() < 0.3):  # an IFD entry over its neighbour: a tag twice
        if not lay.entries:
            return flip_bits(rng, data, lay)
        e = lay.entries[rng.integers(len(lay.entries))]
        other = e.ifd_start + 12 * int(rng.integers(e.ifd_entries))
        if other + 12 <= len(data):
            data[other:other + 12] = data[e.at:e.at + 12]
        return f"duplicate-entry@{e.at}->{other}"
    segments = [s for s in lay.segments if s.end - s.start <= 65536]
    if not segments:
        return flip_bits(rng, data, lay)
    s = segments[rng.integers(len(segments))]
    data[s.end:s.end] = data[s.start:s.end]
    return f"duplicate({s.kind}@{s.start})"


def drop(rng, data: bytearray, lay: Layout) -> str:
    segments = [s for s in lay.segments if s.kind not in ("riff", "bmp-header")]
    if not segments:
        return truncate(rng, data, lay)
    s = segments[rng.integers(len(segments))]
    del data[s.start:s.end]
    return f"drop({s.kind}@{s.start})"


# Tags whose odd values the stages read or copy: orientation, size, storage, pages, alpha, the metadata blobs.
TAGS = (0x0112, 0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0111, 0x0115, 0x0116, 0x0117, 0x011C, 0x0152, 0x00FE,
        0x014A, 0x8769, 0x8825, 0x8773, 0x02BC, 0x83BB, 0x9003, 0x0132)


def ifd_entry(rng, data: bytearray, lay: Layout) -> str:
    if not lay.entries:
        return set_length(rng, data, lay)
    e = lay.entries[rng.integers(len(lay.entries))]
    field = ("tag", "type", "count", "value", "orientation")[rng.integers(5)]
    at = e.at
    if field == "tag":
        struct.pack_into(e.order + "H", data, at, TAGS[rng.integers(len(TAGS))])
    elif field == "type":
        struct.pack_into(e.order + "H", data, at + 2, int(rng.integers(0, 20)))
    elif field == "count":
        struct.pack_into(e.order + "I", data, at + 4, [0, 1, 2, 3, 0xFFFF, 0xFFFFFFFF, 0x40000000,
                                                        int(rng.integers(1 << 32))][rng.integers(8)])
    elif field == "value":
        struct.pack_into(e.order + "I", data, at + 8, [0, 1, 9, 0xFFFF, len(data) - e.base, len(data) - e.base - 1,
                                                        0xFFFFFFFF, int(rng.integers(1 << 32))][rng.integers(8)])
    else:  # an Orientation of any type, count and value
        kind, count = int(rng.integers(0, 20)), [0, 1, 2, 0xFFFF, 0xFFFFFFFF][rng.integers(5)]
        value = [0, 1, 6, 9, 0xFFFF, 0xFFFFFFFF][rng.integers(6)]
        struct.pack_into(e.order + "HHII", data, at, 0x0112, kind, count, value)
    return f"entry-{field}@{at}"


# Sizes that are odd: none, one, the most a field holds, one row or column over OpenCV's 1<<20 limit with few
# pixels (under MAX_PIXELS), and over MAX_PIXELS.
SIZES = ((0, 64), (96, 0), (1, 1), (1, 1_100_000), (3, 1_300_000), (1_100_000, 3), (65535, 61), (61, 65535),
         (0xFFFFFF, 0xFFFFFF), (2001, 2000), (97, 64), (96, 65), (48, 32), (192, 128))


def resize_header(rng, data: bytearray, lay: Layout) -> str:
    width, height = SIZES[rng.integers(len(SIZES))]
    if lay.fmt == "jpeg":
        sof = [s for s in lay.segments if s.kind in ("jpeg-C0", "jpeg-C1", "jpeg-C2") and s.start + 9 <= len(data)]
        if not sof:
            return flip_bits(rng, data, lay)
        struct.pack_into(">HH", data, sof[0].start + 5, min(height, 0xFFFF), min(width, 0xFFFF))
    elif lay.fmt == "png" and len(data) >= 24:
        struct.pack_into(">II", data, 16, width, height)
    elif lay.fmt == "webp" and data[12:16] == b"VP8X" and len(data) >= 30:
        data[24:27] = max(0, min(width - 1, 0xFFFFFF)).to_bytes(3, "little")
        data[27:30] = max(0, min(height - 1, 0xFFFFFF)).to_bytes(3, "little")
    elif lay.fmt == "webp" and data[12:16] == b"VP8 " and len(data) >= 30:  # the key frame's 14-bit sizes
        struct.pack_into("<HH", data, 26, min(width, 0x3FFF), min(height, 0x3FFF))
    elif lay.fmt == "tiff" and lay.entries:
        for e in lay.entries:
            tag = struct.unpack_from(e.order + "H", data, e.at)[0]
            if tag in (0x0100, 0x0101):  # as LONG, whatever it was, so that any size fits
                struct.pack_into(e.order + "HHI", data, e.at + 2, 4, 1, width if tag == 0x0100 else height)
    elif lay.fmt == "bmp" and len(data) >= 26:
        struct.pack_into("<ii", data, 18, min(width, 0x7FFFFFFF), min(height, 0x7FFFFFFF))
    else:
        return flip_bits(rng, data, lay)
    return f"size={width}x{height}"


MUTATIONS = ((flip_bits, 3), (random_bytes, 2), (truncate, 1), (set_length, 3), (duplicate, 2), (drop, 1),
             (ifd_entry, 4), (resize_header, 2))


def fix_checksums(data: bytearray) -> None:
    """PNG CRCs and the RIFF size recomputed, so that a mutation gets past the first check and deeper."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        pos = 8
        while pos + 12 <= len(data):
            length = struct.unpack_from(">I", data, pos)[0]
            if pos + 12 + length > len(data):
                break
            struct.pack_into(">I", data, pos + 8 + length, zlib.crc32(data[pos + 4:pos + 8 + length]))
            pos += 12 + length
    elif data[:4] == b"RIFF" and len(data) >= 8:
        struct.pack_into("<I", data, 4, len(data) - 8)


def mutated_case(i: int) -> tuple[str, bytes, str]:
    """Case i: (key, bytes, what was done), from default_rng([SEED, i]) alone."""
    rng = np.random.default_rng([SEED, i])
    names = sorted(base_files())
    name = names[i % len(names)]  # every format about equally often
    data = bytearray(base_files()[name])
    functions, weights = zip(*MUTATIONS)
    done = []
    for _ in range(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))):  # one, mostly: a file still worth decoding
        mutation = functions[rng.choice(len(functions), p=np.array(weights) / sum(weights))]
        done.append(mutation(rng, data, layout(bytes(data))))
        if not data:
            data = bytearray(b"\xff")
    if rng.random() < 0.8:
        fix_checksums(data)
        done.append("checksums fixed")
    return f"case{i:03d}-{name}", bytes(data), "; ".join(done)


# --- the stages ----------------------------------------------------------------------------------------------

def predict_stand_in(batch: dict[str, np.ndarray], settings: JobSettings) -> dict[str, np.ndarray]:
    """stages.Predictor's output without a model: ab of zeros (grey) for each Status.TODO row, its other columns as the
    Predictor gives them for the regression head."""
    status = batch["status"].astype(object)
    n, size = len(status), settings.model_size
    ab = [np.zeros((size, size, 2), np.float32) if s == Status.TODO else stages.EMPTY_AB for s in status]
    rest = {c: v for c, v in batch.items() if c not in ("model_input", "status", "error")}
    return {**rest, "status": status, "error": batch["error"].astype(object), "ab": ragged(ab),
            "colour_confidence": np.full(n, np.nan), "precision": np.full(n, "float32", dtype=object),
            "predict_s": np.zeros(n),
            "predict_node": np.full(n, "", dtype=object)}


def run_stages(keys: list[str], settings: JobSettings) -> dict[str, np.ndarray]:
    batch = stages.read_and_decode({"key": np.array(keys, dtype=object)}, settings)
    return stages.encode_and_write(predict_stand_in(batch, settings), settings)


def escaped(e: BaseException) -> tuple[str, str, str]:
    """An exception that escaped a stage: (its type, the function of its traceback's last colorize_core frame,
    its message's first line)."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/colorize_core/" in f.filename]
    where = (f"{frames[-1].name} (colorize_core/{frames[-1].filename.rsplit('/colorize_core/', 1)[1]}, line "
             f"{frames[-1].lineno})") if frames else "outside colorize_core"
    kind = type(e).__qualname__ if type(e).__module__ == "builtins" else f"{type(e).__module__}.{type(e).__qualname__}"
    return kind, where, (str(e).splitlines() or [""])[0][:200]


def run_batches(inputs: dict[str, bytes], settings: JobSettings, batch_size: int = BATCH):
    """The stages over `inputs` (already under settings.input) in batches: (key -> manifest row, key -> the
    exception that escaped a stage). A batch that raises is run again a key at a time (overwriting what it
    wrote), to find which of its inputs it was."""
    rows, escapes = {}, {}
    keys = list(inputs)
    for start in range(0, len(keys), batch_size):
        group = keys[start:start + batch_size]
        try:
            out = run_stages(group, settings)
        except Exception:
            for key in group:
                try:
                    out = run_stages([key], dataclasses.replace(settings, overwrite=True))
                except Exception as e:
                    escapes[key] = escaped(e)
                else:
                    rows.update(rows_of(out, [key]))
        else:
            rows.update(rows_of(out, group))
    return rows, escapes


def rows_of(out: dict[str, np.ndarray], keys: list[str]) -> dict[str, dict]:
    assert list(out["key"]) == keys, "exactly one row per input, in order"
    assert all(len(v) == len(keys) for v in out.values()), "every column a value per row"
    return {key: {c: v[i] for c, v in out.items()} for i, key in enumerate(keys)}


def check_rows(rows: dict[str, dict], output_folder, what: dict[str, str], max_pixels: int) -> list[str]:
    """What is wrong with the rows: a status other than ok or error, an error without a reason, an ok row over
    the pixel limit, an ok row whose output is missing or does not decode at its size."""
    problems = []
    for key, row in rows.items():
        if row["status"] == Status.OK and row["width"] * row["height"] > max_pixels:
            problems.append(f"{key} ({what[key]}): ok at {row['width']} x {row['height']}, over --max-pixels")
        if row["status"] not in (Status.OK, Status.ERROR):
            problems.append(f"{key} ({what[key]}): status {row['status']!r}")
        elif row["status"] == Status.ERROR and not str(row["error"]).strip():
            problems.append(f"{key} ({what[key]}): an error row without a reason")
        elif row["status"] == Status.OK:
            path = output_folder / key
            data = path.read_bytes() if path.is_file() else b""
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) \
                if data else None
            if image is None:
                problems.append(f"{key} ({what[key]}): ok, but its output "
                                f"{'does not decode' if data else 'is missing'}")
            elif image.shape[:2] != (row["height"], row["width"]) or len(data) != row["bytes_out"]:
                problems.append(f"{key} ({what[key]}): ok, but its output is {image.shape[1]} x {image.shape[0]}, "
                                f"{len(data)} bytes; its row says {row['width']} x {row['height']}, {row['bytes_out']}")
    return problems


@pytest.fixture(autouse=True)
def quiet_opencv():
    """OpenCV's and libtiff's complaints about each broken file (thousands of lines) not logged while these run:
    a failure's captured output is then the test's own."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    yield
    cv2.utils.logging.setLogLevel(level)


def settings_for(tmp_path, max_pixels: int) -> JobSettings:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    # A run id of its own: the crash journal (crashes.py) of an earlier, killed test run is not this one's.
    return JobSettings(input=Location(str(tmp_path / "in")), output=Location(str(tmp_path / "out")),
                       run_id=f"fuzz-{uuid.uuid4().hex[:12]}", model_uri="m.keras", model_sha256="0" * 64,
                       temperature=None, chroma_gain=1.0, max_pixels=max_pixels)


def report(escapes: dict[str, tuple[str, str, str]], what: dict[str, str]) -> str:
    """The escapes by type and function: how many, and an example of each."""
    kinds = Counter(e[:2] for e in escapes.values())
    lines = [f"{len(escapes)} inputs raised out of a stage instead of ending as a row:"]
    for (kind, where), count in kinds.most_common():
        key = next(k for k, e in escapes.items() if e[:2] == (kind, where))
        lines.append(f"  {count} x {kind} from {where}; e.g. {key} ({what[key]}): {escapes[key][2]}")
    return "\n".join(lines)


def test_mutated_headers_and_metadata_end_as_one_ok_or_error_row_each(tmp_path):
    settings = settings_for(tmp_path, MAX_PIXELS)
    inputs, what = {}, {}
    for i in range(CASES):
        key, data, done = mutated_case(i)
        inputs[key], what[key] = data, done
        (tmp_path / "in" / key).write_bytes(data)
    start = time.perf_counter()
    try:
        rows, escapes = run_batches(inputs, settings)
    finally:
        crashes.remove_journal(settings.run_id)
    seconds = time.perf_counter() - start
    statuses = Counter(r["status"] for r in rows.values())
    slowest = max(rows, key=lambda k: rows[k]["decode_s"] + rows[k]["encode_s"], default=None)
    print(f"\n{CASES} fuzz cases in {seconds:.1f} s: {dict(statuses)}, {len(escapes)} escaped"
          + (f"; slowest {slowest} {rows[slowest]['decode_s'] + rows[slowest]['encode_s']:.2f} s" if slowest else ""))
    problems = check_rows(rows, tmp_path / "out", what, settings.max_pixels)
    assert not escapes and not problems, "\n".join(([report(escapes, what)] if escapes else []) + problems)
    assert sorted(rows) == sorted(inputs)
    assert statuses[Status.OK] and statuses[Status.ERROR], "both outcomes reached (else the mutations are too weak or too strong)"


# What each of malformed.py's files must end as: the broken ones an error row, the top-down BMP (a valid image)
# colorized at its real size.
# An Orientation tag without a number (count 0, or type UNDEFINED) reads as upright: the photo is colorized, with
# a fresh Orientation 1 in its output.
EXPECTED = {"orientation-count-zero.jpg": Status.OK, "orientation-undefined.jpg": Status.OK, "huge-canvas.webp": Status.ERROR,
            "top-down.bmp": Status.OK}


@pytest.mark.parametrize("name", list(malformed.BUILDERS))
def test_malformed_files_end_as_one_row(tmp_path, name):
    """Each of malformed.py's files in a batch with a good JPEG, through the same stages, at the default
    --max-pixels (the huge WebP canvas is under it, so it reaches OpenCV): it ends as EXPECTED says (the top-down
    BMP ok at 96 x 64, upright), and the good JPEG ok beside it."""
    settings = settings_for(tmp_path, codec.DEFAULT_MAX_PIXELS)
    inputs = {name: malformed.BUILDERS[name](), "good.jpg": base_files()["plain.jpg"]}
    for key, data in inputs.items():
        (tmp_path / "in" / key).write_bytes(data)
    try:
        out = run_stages(list(inputs), settings)
    except Exception as e:
        kind, where, message = escaped(e)
        pytest.fail(f"{name}: {kind} from {where} escaped the stages: {message}")
    finally:
        crashes.remove_journal(settings.run_id)
    rows = rows_of(out, list(inputs))
    assert not (problems := check_rows(rows, tmp_path / "out", dict.fromkeys(inputs, name), settings.max_pixels)), \
        problems
    assert rows["good.jpg"]["status"] == Status.OK, rows["good.jpg"]["error"]
    row = rows[name]
    assert row["status"] == EXPECTED[name], \
        f"{name}: {row['status']} ({row['error'] or 'no error'}), expected {EXPECTED[name]}"
    if row["status"] == Status.OK:
        assert (row["width"], row["height"]) == (malformed.WIDTH, malformed.HEIGHT), "its real size"
        image = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_COLOR)
        assert image.shape == (malformed.HEIGHT, malformed.WIDTH, 3), "colorized at its real size"
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(int)
        assert np.abs(grey - malformed.photo()).mean() < 3, "upright: its own top row at the top"
