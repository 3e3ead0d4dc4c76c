import cv2
import numpy as np
import pytest

from colorize_core import codec
from tests.conftest import exif_rotated_jpeg


def test_decode_applies_exif_orientation():
    data, upright = exif_rotated_jpeg()
    image, fmt = codec.decode(data)
    assert fmt == "jpeg" and image.shape[:2] == upright.shape
    assert np.abs(image[..., 0].astype(int) - upright).mean() < 3  # the upright picture, up to JPEG loss


@pytest.mark.parametrize("ext,fmt", [(".png", "png"), (".tif", "tiff")])
def test_16_bit_round_trips_losslessly(ext, fmt):
    image = (np.random.default_rng(0).random((20, 30, 3)) * 65535).astype(np.uint16)
    decoded, found = codec.decode(cv2.imencode(ext, image)[1].tobytes())
    assert found == fmt and decoded.dtype == np.uint16
    again, _ = codec.decode(codec.encode(decoded, fmt))
    assert np.array_equal(again, image)


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"plain text, not a picture", "not a supported image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "corrupt or truncated jpeg"),
])
def test_bad_bytes_raise_image_error(data, message):
    with pytest.raises(codec.ImageError, match=message):
        codec.decode(data)


def test_16_bit_to_jpeg_is_scaled_to_8_bit():
    image = np.full((8, 8, 3), 65535, np.uint16)
    decoded, _ = codec.decode(codec.encode(image, "jpeg"))
    assert decoded.dtype == np.uint8 and decoded.min() >= 254
