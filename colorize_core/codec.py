"""Decode the original bytes with OpenCV and encode the colour result in the input's own format."""
import cv2
import numpy as np

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
SIXTEEN_BIT_FORMATS = ("png", "tiff")


class ImageError(ValueError):
    """An input that cannot be colorized; its message goes into the manifest's error column."""


def sniff_format(data: bytes) -> str:
    """The image format of `data` from its first bytes; ImageError if it is not one we can write back."""
    if not data:
        raise ImageError("empty file")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    raise ImageError("not a supported image (JPEG, PNG, TIFF, WebP or BMP)")


def decode(data: bytes) -> tuple[np.ndarray, str]:
    """Original bytes -> (BGR image, 8- or 16-bit, EXIF orientation applied; format name)."""
    fmt = sniff_format(data)
    # IMREAD_COLOR turns grey into 3 equal channels; IMREAD_ANYDEPTH keeps 16 bits; OpenCV applies the
    # EXIF orientation unless told to ignore it.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ImageError(f"corrupt or truncated {fmt} file (OpenCV could not decode it)")
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"unsupported sample type {image.dtype} (8- and 16-bit images only)")
    return image, fmt


def encode(image: np.ndarray, fmt: str, jpeg_quality: int = 95) -> bytes:
    """BGR image -> bytes in `fmt`: JPEG at `jpeg_quality`, PNG/TIFF/WebP/BMP lossless, 16 bits kept where possible."""
    if image.dtype == np.uint16 and fmt not in SIXTEEN_BIT_FORMATS:
        image = np.round(image / 257.0).astype(np.uint8)  # these formats hold 8 bits only
    params = {
        "jpeg": [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality],
        "webp": [cv2.IMWRITE_WEBP_QUALITY, 101],  # >100 means lossless
    }.get(fmt, [])
    ok, buffer = cv2.imencode(_EXTENSION[fmt], image, params)
    if not ok:
        raise ImageError(f"OpenCV could not encode the result as {fmt}")
    return buffer.tobytes()
