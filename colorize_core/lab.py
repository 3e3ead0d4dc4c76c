"""Lab colour: the L the network sees, and putting predicted ab back onto the original L.

All conversions are OpenCV's sRGB (D65) <-> CIE Lab on float32 images in [0, 1]:
L is in [0, 100], a and b roughly in [-128, 127]. The model predicts ab / AB_SCALE in [-1, 1].
"""
import cv2
import numpy as np

MODEL_SIZE = 224  # VGG16's input size: the model is trained at 224x224, and runs there by default
MODEL_SIZES = (224, 320, 448)  # the job's --model-size: VGG16 without its top is fully convolutional
AB_SCALE = 128.0  # the thesis's scaling of ab into [-1, 1]
BAND_ROWS = 256  # lightness, recombine and the ICC conversion work a band of rows at a time: temporaries stay
# small on large scans
L_FIXED = 65535 / 100  # L carried between stages as uint16 L * L_FIXED: half of float32, steps of 0.0015 L
# How the model's ab (56x56 or 224x224) is brought to the image's size (--upsampling). "guided": bicubic, then
# OpenCV's guided filter (He et al. 2010) with the original L as the guide, so colour edges move onto L's edges
# instead of bleeding across them. The job's default is decided here, on the val split (MODEL_CARD.md).
UPSAMPLINGS = ("bicubic", "guided")
UPSAMPLING = "bicubic"
GUIDE_CELLS = 2.0  # the guided filter's radius, in cells of the model's ab grid (one cell: 8.6 px on a 481 px photo)
GUIDE_EPS = 1e-3  # its regularization, on L / 100: L edges of more than ~3 L units steer the colour
GUIDE_SIDE = 2048  # it runs at most at this long side, then bicubic to full size: chroma needs no finer edges, and
# a 100-megapixel scan at full size would take GBs of filter temporaries


def max_value(image: np.ndarray) -> float:
    """The white level of an integer image's dtype (255 for 8-bit, 65535 for 16-bit)."""
    return float(np.iinfo(image.dtype).max)


def bgr_to_lab(bgr: np.ndarray) -> np.ndarray:
    """8- or 16-bit BGR image (H, W, 3) -> float32 Lab (H, W, 3)."""
    return cv2.cvtColor(bgr.astype(np.float32) / max_value(bgr), cv2.COLOR_BGR2Lab)


def lightness(bgr: np.ndarray) -> tuple[np.ndarray, float]:
    """8- or 16-bit BGR image -> (its L (H, W) float32, as bgr_to_lab's; and how much colour it has beyond a
    single tone), a band of rows at a time: the whole image as float Lab would be three 288 MB temporaries on
    a 24-megapixel scan.

    The colour measure is the mean chroma less the chroma of the mean (a, b): a toned print (sepia, selenium,
    cyanotype: one hue, stronger or weaker with density) reads near 0, like a grey one, since all its (a, b)
    point one way; a colour photo, or a hand-tinted print with washes of different hues, reads several units
    (benchmarks/colour_originals.py)."""
    h, w = bgr.shape[:2]
    L = np.empty((h, w), np.float32)
    sum_a = sum_b = sum_chroma = 0.0
    for top in range(0, h, BAND_ROWS):
        band = bgr_to_lab(bgr[top:top + BAND_ROWS])
        L[top:top + BAND_ROWS] = band[..., 0]
        sum_a += float(band[..., 1].sum(dtype=np.float64))
        sum_b += float(band[..., 2].sum(dtype=np.float64))
        sum_chroma += float(np.hypot(band[..., 1], band[..., 2]).sum(dtype=np.float64))
    n = max(1, h * w)
    return L, max(0.0, sum_chroma / n - float(np.hypot(sum_a / n, sum_b / n)))


def lab_to_bgr(lab: np.ndarray) -> np.ndarray:
    """float32 Lab (..., 3) -> float32 BGR in [0, 1] where in gamut (not clipped)."""
    return cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2BGR)


def L_to_fixed(L: np.ndarray) -> np.ndarray:
    """Float L in [0, 100] -> uint16 fixed point (L * L_FIXED, rounded): what the stages pass along, since a
    24-megapixel L is 96 MB as float32 and 48 MB this way; a step is 1/256 of an 8-bit output level."""
    return np.clip(L * np.float32(L_FIXED) + np.float32(0.5), 0, 65535).astype(np.uint16)


def model_input(L: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """Full-resolution L (H, W) -> the network's (size, size) L; area resampling avoids aliasing."""
    return cv2.resize(L, (size, size), interpolation=cv2.INTER_AREA)


def centre_crop(image: np.ndarray, size: int = 256) -> np.ndarray:
    """Short side resized to `size`, then the centre size x size square."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    resized = cv2.resize(image, (max(size, round(w * scale)), max(size, round(h * scale))), interpolation=cv2.INTER_AREA)
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    return resized[top:top + size, left:left + size]


# Where a Lab colour leaves the sRGB gamut: OpenCV's own Lab -> BGR clips silently there, and clipping would
# change L. CIE Lab -> f(X/Xn), f(Y/Yn), f(Z/Zn) is affine; f^-1 then linear RGB (sRGB primaries, D65 white:
# OpenCV's constants) is checked unclipped. cv2.transform and inRange keep it fast on 24-megapixel scans.
_LAB_TO_F = np.array([[1 / 116, 1 / 500, 0, 16 / 116],
                      [1 / 116, 0, 0, 16 / 116],
                      [1 / 116, 0, -1 / 200, 16 / 116]], np.float32)
_XYZ_TO_LINEAR_RGB = np.array([[3.240479, -1.53715, -0.498535],
                               [-0.969256, 1.875991, 0.041556],
                               [0.055648, -0.204043, 1.057311]], np.float32)
_D65_WHITE = np.array([0.950456, 1.0, 1.088754], np.float32)
_F_TO_LINEAR_RGB = (_XYZ_TO_LINEAR_RGB * _D65_WHITE[None, :]).astype(np.float32)


def in_gamut(lab: np.ndarray, tolerance: float = 1e-5) -> np.ndarray:
    """Where Lab (H, W, 3) float32 is inside sRGB: linear RGB (CIE Lab -> XYZ -> RGB, unclipped) within [0, 1]."""
    f = cv2.transform(lab, _LAB_TO_F)
    xyz_over_white = cv2.multiply(cv2.multiply(f, f), f)
    dark = f <= 6 / 29  # the linear toe of CIE Lab, rare in photographs
    if dark.any():
        xyz_over_white[dark] = 3 * (6 / 29) ** 2 * (f[dark] - 4 / 29)
    rgb = cv2.transform(xyz_over_white, _F_TO_LINEAR_RGB)
    return cv2.inRange(rgb, (-tolerance,) * 3, (1 + tolerance,) * 3).astype(bool)


def _pull_into_gamut(lab: np.ndarray) -> None:
    """In place: shrink the chroma of each out-of-gamut pixel toward grey (always in gamut) by bisection, L kept."""
    pixels = np.reshape(lab, (-1, 3), copy=False)  # a view (raises if it cannot be one), so writes reach lab
    outside = np.flatnonzero(~in_gamut(lab))  # indices, not a mask: one gather and one scatter of the few pixels
    if outside.size:
        L_out, ab_out = np.split(pixels[outside][:, None, :], [1], axis=-1)
        lo = np.zeros((len(L_out), 1, 1), np.float32)  # chroma scale known to be in gamut
        hi = np.ones_like(lo)  # chroma scale known to be outside
        for _ in range(8):  # 1/256 of the chroma
            mid = (lo + hi) / 2
            ok = in_gamut(np.concatenate([L_out, ab_out * mid], axis=-1))[..., None]
            lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
        pixels[outside, 1:] = (ab_out * lo)[:, 0]


def upsampled_ab(L: np.ndarray, ab_model: np.ndarray, chroma_gain: float = 1.0, upsampling: str = UPSAMPLING) -> np.ndarray:
    """Predicted ab (h, w, 2) / 128 -> ab in Lab units (H, W, 2) float32 at L's size (H, W; float, or uint16 from
    L_to_fixed), times `chroma_gain`; `upsampling` one of UPSAMPLINGS."""
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLINGS)}, not {upsampling!r}")
    h, w = L.shape
    ab = ab_model.astype(np.float32) * np.float32(AB_SCALE * chroma_gain)
    if upsampling == "guided":
        scale = min(1.0, GUIDE_SIDE / max(h, w))
        gw, gh = max(1, round(w * scale)), max(1, round(h * scale))
        guide = cv2.resize(L, (gw, gh), interpolation=cv2.INTER_AREA).astype(np.float32)
        guide *= np.float32(1 / (L_FIXED * 100) if L.dtype == np.uint16 else 1 / 100)
        radius = max(1, round(GUIDE_CELLS * max(gw, gh) / max(ab.shape[:2])))
        ab = cv2.resize(ab, (gw, gh), interpolation=cv2.INTER_CUBIC).reshape(gh, gw, 2)
        ab = cv2.ximgproc.guidedFilter(guide, ab, radius, GUIDE_EPS)
    return cv2.resize(ab, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, 2)


def recombine(L: np.ndarray, ab_model: np.ndarray, dtype: type = np.uint8, chroma_gain: float = 1.0,
              upsampling: str = UPSAMPLING) -> np.ndarray:
    """Original full-resolution L (H, W; float, or uint16 from L_to_fixed) + predicted ab (h, w, 2) / 128 -> BGR
    image of `dtype`.

    ab, times `chroma_gain` (more or less colour, hue kept), is upsampled to the original size (upsampled_ab) and
    put on the ORIGINAL L. Where (L, a, b) falls outside
    sRGB, clipping RGB would change L, so instead each such pixel's chroma is shrunk toward grey
    (always in gamut) by bisection: the output's L stays the input's L.
    """
    h, w = L.shape
    ab = upsampled_ab(L, ab_model, chroma_gain, upsampling)
    white = float(np.iinfo(dtype).max)  # bgr is in [0, 1]: scale and round
    out = np.empty((h, w, 3), dtype)
    for top in range(0, h, BAND_ROWS):
        rows = slice(top, top + BAND_ROWS)
        L_band = L[rows].astype(np.float32) * np.float32(1 / L_FIXED) if L.dtype == np.uint16 else L[rows].astype(np.float32)
        lab = cv2.merge([L_band, *cv2.split(ab[rows])])
        _pull_into_gamut(lab)
        bgr = lab_to_bgr(lab)
        out[rows] = cv2.convertScaleAbs(bgr, alpha=white) if dtype == np.uint8 else (bgr * white + 0.5).astype(dtype)
    return out
