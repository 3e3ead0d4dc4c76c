"""Decode the original bytes with OpenCV and encode the colour result in the input's own format; the 8-bit
copies and thumbnails the reports show."""
import base64
from typing import NamedTuple

import cv2
import numpy as np

from colorize_core import metadata

# Magic numbers -> format. The format comes from the bytes, not the name: a mislabelled file still
# round-trips in its real format, and a non-image is refused before OpenCV sees it.
_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
)
_EXTENSION = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp", "bmp": ".bmp"}
# What an output is served as from S3 (its Content-Type), and what C2PA calls its format.
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "tiff": "image/tiff", "webp": "image/webp", "bmp": "image/bmp"}
XMP_MEDIA_TYPE = "application/rdf+xml"  # an output's XMP sidecar
SIXTEEN_BIT_FORMATS = ("png", "tiff")
ALPHA_FORMATS = ("png", "webp")  # their transparency is kept in the output
DEFAULT_MAX_PIXELS = 150_000_000  # e.g. 15,000 x 10,000: a 600 dpi scan of a 25 x 16 inch print
THUMBNAIL_HEIGHT = 160  # the HTML reports' pictures (evaluation, preview)


class ImageError(ValueError):
    """An input that cannot be colorized; its message goes into the manifest's error column."""


def sniff_format(data: bytes) -> str:
    """The image format of `data` from its first bytes; ImageError if it is not one we can write back."""
    if not data:
        raise ImageError("empty file")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"GIF8"):
        raise ImageError("GIF is not colorized (a palette of 256 colours, often animated): convert it to PNG")
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    raise ImageError("not a supported image (JPEG, PNG, TIFF, WebP or BMP)")


def decode(data: bytes) -> tuple[np.ndarray, str]:
    """Original bytes -> (BGR image, 8- or 16-bit, EXIF orientation applied; format name)."""
    fmt = sniff_format(data)
    # IMREAD_COLOR turns grey into 3 equal channels; IMREAD_ANYDEPTH keeps 16 bits; OpenCV applies the
    # EXIF orientation unless told to ignore it.
    image = _imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH, fmt)
    if image is None:
        raise ImageError(f"corrupt or truncated {fmt} file (OpenCV could not decode it)")
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"unsupported sample type {image.dtype} (8- and 16-bit images only)")
    return image, fmt


def _imdecode(data: bytes, flags: int, fmt: str) -> np.ndarray | None:
    """cv2.imdecode, with OpenCV's own errors (a canvas its decoder refuses, an allocation it cannot make) as
    ImageError."""
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        raise ImageError(f"corrupt {fmt} file (OpenCV: {' '.join(str(e).split())[-200:]})") from None


class Original(NamedTuple):
    """An input image as the colorize job sees it."""

    image: np.ndarray  # BGR, 8- or 16-bit, upright
    fmt: str
    alpha: np.ndarray | None  # its transparency, upright, where it has one
    header: metadata.Header


# EXIF orientation -> what turns the stored pixels upright (OpenCV does this itself only as it decodes colour).
_UPRIGHT = {2: lambda a: cv2.flip(a, 1), 3: lambda a: cv2.rotate(a, cv2.ROTATE_180), 4: lambda a: cv2.flip(a, 0),
            5: lambda a: cv2.transpose(a), 6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
            7: lambda a: cv2.rotate(cv2.transpose(a), cv2.ROTATE_180),
            8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE)}


def _may_have_alpha(data: bytes, fmt: str) -> bool:
    """Whether to decode the file a second time, as stored, for its alpha channel."""
    if fmt == "png":
        return data[25] in (3, 4, 6)  # IHDR colour type: palette (may have transparency), grey + alpha, RGBA
    return fmt == "webp"


def decode_original(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Original:
    """An archive's file -> Original. Its header is read first: more than `max_pixels` pixels (a decompression
    bomb, or a scan too big for one worker) or more than one page is refused before any pixel is decoded."""
    fmt = sniff_format(data)
    try:
        header = metadata.read_header(data)
    except metadata.HeaderError as e:
        raise ImageError(f"corrupt {fmt} file: its header cannot be read ({e})") from None
    if header.width * header.height > max_pixels:
        raise ImageError(f"{header.width} x {header.height} pixels is over the limit of {max_pixels:,} "
                         "(--max-pixels); refused without decoding it")
    if header.more_pages:
        raise ImageError("multi-page TIFF: only single images are colorized (split the pages, e.g. with tiffsplit)")
    if fmt == "tiff" and header.extra_samples:
        raise ImageError("TIFF with extra channels (alpha): OpenCV reads its colour premultiplied or not depending on "
                         "the bit depth, so it is not colorized; save it as PNG")
    if _may_have_alpha(data, fmt):  # decoded as stored, with its alpha; OpenCV then leaves the orientation to us
        stored = _imdecode(data, cv2.IMREAD_UNCHANGED, fmt)
        if stored is not None and stored.ndim == 3 and stored.shape[2] in (3, 4) and stored.dtype in (np.uint8, np.uint16):
            upright = _UPRIGHT.get(header.orientation, lambda a: a)
            alpha = upright(np.ascontiguousarray(stored[..., 3])) if stored.shape[2] == 4 else None
            # Without alpha (an opaque WebP or palette PNG) this is what decode() would return: not decoded twice.
            return Original(upright(np.ascontiguousarray(stored[..., :3])), fmt, alpha, header)
    image, fmt = decode(data)
    return Original(image, fmt, None, header)


def encode(image: np.ndarray, fmt: str, jpeg_quality: int = 95, alpha: np.ndarray | None = None) -> bytes:
    """BGR image (and its alpha) -> bytes in `fmt`: JPEG at `jpeg_quality`, PNG/TIFF/WebP/BMP lossless, 16 bits
    kept where possible, alpha kept where the format holds it."""
    if alpha is not None and fmt in ALPHA_FORMATS:
        image = np.dstack([image, alpha.astype(image.dtype)])  # both from the same decode: the same depth
    if fmt not in SIXTEEN_BIT_FORMATS:
        image = to_8bit(image)  # these formats hold 8 bits only
    params = {
        "jpeg": [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality],
        "webp": [cv2.IMWRITE_WEBP_QUALITY, 101],  # >100 means lossless
    }.get(fmt, [])
    ok, buffer = cv2.imencode(_EXTENSION[fmt], image, params)
    if not ok:
        raise ImageError(f"OpenCV could not encode the result as {fmt}")
    return buffer.tobytes()


def to_8bit(image: np.ndarray) -> np.ndarray:
    """An image as 8 bits a channel: 16-bit values rounded (65535 -> 255), an 8-bit image as it is."""
    return image if image.dtype == np.uint8 else np.round(image / 257.0).astype(np.uint8)


def thumbnail(bgr: np.ndarray, height: int = THUMBNAIL_HEIGHT) -> str:
    """A small JPEG of the image, `height` high, as a data: URI: an HTML report is then one self-contained file."""
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
    return "data:image/jpeg;base64," + base64.b64encode(encode(to_8bit(small), "jpeg", 85)).decode("ascii")
