"""Lab colour: the L the network sees, and putting predicted ab back onto the original L.

All conversions are OpenCV's sRGB (D65) <-> CIE Lab on float32 images in [0, 1]:
L is in [0, 100], a and b roughly in [-128, 127]. The model predicts ab / AB_SCALE in [-1, 1].
"""
import cv2
import numpy as np

MODEL_SIZE = 224  # VGG16's input size: the model always sees 224x224
AB_SCALE = 128.0  # the thesis's scaling of ab into [-1, 1]


def max_value(image: np.ndarray) -> float:
    """The white level of an integer image's dtype (255 for 8-bit, 65535 for 16-bit)."""
    return float(np.iinfo(image.dtype).max)


def bgr_to_lab(bgr: np.ndarray) -> np.ndarray:
    """8- or 16-bit BGR image (H, W, 3) -> float32 Lab (H, W, 3)."""
    return cv2.cvtColor(bgr.astype(np.float32) / max_value(bgr), cv2.COLOR_BGR2Lab)


def lab_to_bgr(lab: np.ndarray) -> np.ndarray:
    """float32 Lab (..., 3) -> float32 BGR in [0, 1] where in gamut (not clipped)."""
    return cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2BGR)


def model_input(L: np.ndarray) -> np.ndarray:
    """Full-resolution L (H, W) -> the network's (224, 224) L; area resampling avoids aliasing."""
    return cv2.resize(L, (MODEL_SIZE, MODEL_SIZE), interpolation=cv2.INTER_AREA)


# sRGB's primaries and D65 white (OpenCV's constants), to tell where a Lab colour leaves the sRGB gamut:
# OpenCV's own Lab -> BGR clips silently there, and clipping would change L.
_XYZ_TO_LINEAR_RGB = np.array([[3.240479, -1.53715, -0.498535],
                               [-0.969256, 1.875991, 0.041556],
                               [0.055648, -0.204043, 1.057311]], np.float32)
_D65_WHITE = np.array([0.950456, 1.0, 1.088754], np.float32)


def in_gamut(lab: np.ndarray, tolerance: float = 1e-5) -> np.ndarray:
    """Where Lab (..., 3) is inside sRGB: linear RGB (CIE Lab -> XYZ -> RGB, unclipped) within [0, 1]."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 6.0 / 29.0, f**3, 3.0 * (6.0 / 29.0) ** 2 * (f - 4.0 / 29.0)) * _D65_WHITE
    rgb = xyz @ _XYZ_TO_LINEAR_RGB.T
    return np.all((rgb >= -tolerance) & (rgb <= 1.0 + tolerance), axis=-1)


def recombine(L: np.ndarray, ab_model: np.ndarray, dtype: type = np.uint8) -> np.ndarray:
    """Original full-resolution L (H, W) + predicted ab (224, 224, 2) in [-1, 1] -> BGR image of `dtype`.

    ab is upsampled to the original size and put on the ORIGINAL L. Where (L, a, b) falls outside
    sRGB, clipping RGB would change L, so instead each such pixel's chroma is shrunk toward grey
    (always in gamut) by bisection: the output's L stays the input's L.
    """
    h, w = L.shape
    ab = cv2.resize(ab_model.astype(np.float32) * AB_SCALE, (w, h), interpolation=cv2.INTER_CUBIC)
    lab = np.dstack([L, ab])
    outside = ~in_gamut(lab)
    if outside.any():
        L_out, ab_out = lab[outside][:, None, :1], lab[outside][:, None, 1:]
        lo = np.zeros((len(L_out), 1, 1), np.float32)  # chroma scale known to be in gamut
        hi = np.ones_like(lo)  # chroma scale known to be outside
        for _ in range(8):  # 1/256 of the chroma
            mid = (lo + hi) / 2
            ok = in_gamut(np.concatenate([L_out, ab_out * mid], axis=-1))[..., None]
            lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
        lab[outside] = np.concatenate([L_out, ab_out * lo], axis=-1)[:, 0]
    white = float(np.iinfo(dtype).max)
    return np.round(lab_to_bgr(lab) * white).astype(dtype)
