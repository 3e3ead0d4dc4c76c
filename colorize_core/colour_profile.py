"""Embedded ICC profiles: an input's pixels converted through their profile into sRGB before L is computed
(LittleCMS, through imagecodecs: 8 and 16 bits, grey and RGB), and the sRGB profile its output then carries.

Outputs are sRGB, whatever the input's profile. The colour is predicted and put back in sRGB (lab.py works in
OpenCV's sRGB Lab); a grey profile (Gray Gamma 2.2, Dot Gain 20%) cannot describe a colour image at all; and an
archive's colour copies are for screens and the web, which read sRGB. Converting the colour back into an input's
Adobe RGB would be a second transform for no gain: the predicted colour is well inside sRGB.
"""
import functools
import struct
from typing import NamedTuple

import imagecodecs
import numpy as np

from colorize_core.lab import BAND_ROWS  # a 200-megapixel scan is never copied whole as 16-bit RGB

GREY, RGB = b"GRAY", b"RGB "  # an ICC profile's colour space (header bytes 16-19)


@functools.cache
def srgb() -> bytes:
    """The sRGB profile (LittleCMS's built-in, about 600 bytes), embedded in outputs whose input had a profile.

    Its creation date (header bytes 24-35) is fixed, so that the same input gives the same output bytes."""
    profile = imagecodecs.cms_profile("srgb")
    return profile[:24] + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + profile[36:]


def space(icc: bytes) -> bytes:
    """The colour space a profile describes: GREY, RGB, or another (b"CMYK", b"Lab ")."""
    return icc[16:20]


class InSrgb(NamedTuple):
    """An image read through its profile: now sRGB."""

    image: np.ndarray  # BGR, the input's shape and depth
    note: str  # what was done with the profile, for the manifest's input_profile ("" none: read as sRGB)
    converted: bool  # whether the profile was applied: then the output says it is sRGB (carries srgb())


def to_srgb(image: np.ndarray, icc: bytes) -> InSrgb:
    """A decoded image (BGR, 8 or 16 bits; a grey one has three equal channels) and its embedded profile ->
    InSrgb: the image in sRGB, what was done, and whether a profile was applied.

    A grey profile converts the grey values (one channel), an RGB profile the colour; no profile means sRGB
    already. A profile that does not fit (CMYK: OpenCV has already turned such a file into RGB; a grey profile
    on colour pixels) or that LittleCMS cannot read is not applied: the image is read as sRGB, and the note
    says so."""
    if not icc:
        return InSrgb(image, "", False)
    kind = space(icc)
    if kind not in (GREY, RGB):
        return InSrgb(image, f"{kind.decode('latin-1').strip() or 'unknown'} profile not applied (read as sRGB)", False)
    if kind == GREY and not (np.array_equal(image[..., 0], image[..., 1])
                             and np.array_equal(image[..., 0], image[..., 2])):
        return InSrgb(image, "grey profile on colour pixels not applied (read as sRGB)", False)
    out = np.empty_like(image)
    try:
        for top in range(0, image.shape[0], BAND_ROWS):
            band = image[top:top + BAND_ROWS]
            if kind == GREY:  # one channel in, sRGB's three (equal) out
                out[top:top + BAND_ROWS] = imagecodecs.cms_transform(
                    np.ascontiguousarray(band[..., 0]), icc, srgb(), colorspace="gray", outcolorspace="bgr")
            else:
                out[top:top + BAND_ROWS] = imagecodecs.cms_transform(
                    np.ascontiguousarray(band), icc, srgb(), colorspace="bgr", outcolorspace="bgr")
    except imagecodecs.CmsError as e:
        return InSrgb(image, f"unreadable ICC profile not applied (read as sRGB): {e}", False)
    return InSrgb(out, f"{'grey' if kind == GREY else 'RGB'} profile converted to sRGB", True)
