"""Small malformed (or merely unusual) image files, each a real grey photo, for tests of what the stages make of
them: every input must end as exactly one manifest row, "ok" or "error", never an exception that escapes a stage.

Each builder returns the file's bytes. They are made with the real libraries (OpenCV encodes the pixels, exiv2
writes the metadata) and only the one field that no library will write wrong is patched by hand; each
docstring says which, and what the file did to the code when the builder was written (before the fixes that
turn any exception from one input into that input's error row).
"""
import struct

import cv2
import exiv2
import numpy as np

from tests.conftest import EXAMPLES

WIDTH, HEIGHT = 96, 64
WEBP_CANVAS = (64, 1_441_840)  # 92,277,760 pixels: under the default --max-pixels, over OpenCV's 1<<20 rows


def photo(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A small grey photograph (8-bit, one channel): castle.jpg shrunk to width x height."""
    grey = cv2.imread(str(EXAMPLES / "castle.jpg"), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)


def _with_exif(data: bytes, key: str, value: exiv2.Value) -> bytes:
    """`data` (an encoded image) with one EXIF tag of exactly this value (type and count) written by exiv2."""
    image = exiv2.ImageFactory.open(data)
    image.readMetadata()
    image.exifData().add(exiv2.ExifKey(key), value)
    image.writeMetadata()
    with image.io().mmap() as view:
        return bytes(view)


def _jpeg() -> bytes:
    return cv2.imencode(".jpg", photo(), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def jpeg_orientation_count_zero() -> bytes:
    """A 96 x 64 JPEG whose EXIF IFD0 holds Orientation (0x0112) as type SHORT with count 0: no value at all.

    exiv2 writes it so (an empty UShortValue), no bytes patched. It reads back as an Exifdatum with no
    components, so `Exifdatum.toInt64()` raises IndexError (vector::_M_range_check), out of
    colorize_core.metadata.read_header (so codec.decode_original, so stages.read_and_decode).
    """
    data = _with_exif(_jpeg(), "Exif.Image.Orientation", exiv2.UShortValue())
    assert b"\x12\x01\x03\x00\x00\x00\x00\x00" in data  # the IFD entry: tag 0x0112, SHORT, count 0 (little endian)
    return data


def jpeg_orientation_undefined() -> bytes:
    """A 96 x 64 JPEG whose EXIF Orientation (0x0112) has type UNDEFINED (7), count 2, bytes 01 00.

    exiv2 writes it so (a DataValue), no bytes patched. read_header reads it (toInt64 gives 1) and puts it
    into the .exv it carries; colorize_core.metadata.carry then does `exif["Exif.Image.Orientation"] = 1`,
    which python-exiv2 turns into a DataValue of the existing datum's type, from an int: TypeError
    ("in method 'new_DataValue', argument 1 of type 'bytes-like object'"), out of stages.encode_and_write.
    """
    data = _with_exif(_jpeg(), "Exif.Image.Orientation", exiv2.DataValue(b"\x01\x00"))
    assert b"\x12\x01\x07\x00\x02\x00\x00\x00\x01\x00" in data  # tag 0x0112, UNDEFINED, count 2, value 01 00
    return data


def webp_huge_canvas() -> bytes:
    """A real 96 x 64 lossy WebP (OpenCV) with a VP8X chunk (exiv2 adds one as it writes an EXIF Artist) whose
    canvas is then patched to say 64 x 1,441,840: the one hand-made change (VP8X bytes 24-29, width-1 and
    height-1 as 24-bit little-endian numbers).

    exiv2 reports the canvas, 92,277,760 pixels: under the default --max-pixels (150,000,000), so the file
    passes the header check and reaches OpenCV, whose cv2.imdecode RAISES cv2.error (it does not return None):
    "(-215:Assertion failed) static_cast<size_t>(size.height) <= CV_IO_MAX_IMAGE_HEIGHT in function
    'validateInputImageSize'", out of colorize_core.codec.decode_original (its IMREAD_UNCHANGED decode for
    WebP's alpha; codec.decode's IMREAD_COLOR one raises the same). Under a --max-pixels below 92,277,760
    (the fuzz test's 4,000,000) it is refused by the header check instead, as an ImageError.
    """
    webp = cv2.imencode(".webp", cv2.cvtColor(photo(), cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_WEBP_QUALITY, 90])[1]
    data = bytearray(_with_exif(webp.tobytes(), "Exif.Image.Artist", exiv2.AsciiValue("A. Photographer")))
    assert data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8X", "exiv2 writes EXIF into a VP8X WebP"
    width, height = WEBP_CANVAS
    data[24:27], data[27:30] = (width - 1).to_bytes(3, "little"), (height - 1).to_bytes(3, "little")
    return bytes(data)


def bmp_top_down() -> bytes:
    """A valid 96 x 64 24-bit BMP stored top-down: its BITMAPINFOHEADER height is -64 and its first row of
    pixels is the top one (the BMP specification allows it; PIL and OpenCV read it upright at 96 x 64).

    No library at hand writes top-down BMPs (OpenCV and PIL write bottom-up), so OpenCV's bottom-up BMP is
    turned round by hand: the rows reversed and the height negated. exiv2 reads the height field as unsigned,
    4,294,967,232, so colorize_core.codec.decode_original refuses it as "96 x 4294967232 pixels is over the
    limit" (an ImageError: an error row, not an escape) although it is a valid image that should be colorized
    at 96 x 64.
    """
    grey_bgr = cv2.cvtColor(photo(), cv2.COLOR_GRAY2BGR)
    data = cv2.imencode(".bmp", grey_bgr)[1].tobytes()
    pixels_at, = struct.unpack_from("<I", data, 10)
    header_size, width, height, _, bits = struct.unpack_from("<IiiHH", data, 14)
    assert (header_size, width, height, bits) == (40, WIDTH, HEIGHT, 24), "OpenCV's bottom-up BMP"
    stride = (width * 3 + 3) & ~3
    rows = [data[pixels_at + i * stride:pixels_at + (i + 1) * stride] for i in range(height)]
    top_down = bytearray(data[:pixels_at] + b"".join(reversed(rows)))
    struct.pack_into("<i", top_down, 22, -height)
    top_down = bytes(top_down)
    decoded = cv2.imdecode(np.frombuffer(top_down, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and np.array_equal(decoded, grey_bgr), "OpenCV reads it upright"
    return top_down


BUILDERS = {
    "orientation-count-zero.jpg": jpeg_orientation_count_zero,
    "orientation-undefined.jpg": jpeg_orientation_undefined,
    "huge-canvas.webp": webp_huge_canvas,
    "top-down.bmp": bmp_top_down,
}
