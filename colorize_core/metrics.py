"""Colour metrics on RGB images: PSNR, SSIM and CIEDE2000 from scikit-image, colourfulness, and whether the colour
is right where it matters: green and blue recall, and the harm rate.

Colourfulness (Hasler and Suesstrunk 2003) is written here only because no standard library has it. The recalls
test the thesis's claim that its model colours grass, foliage and skies well: of the truth's pixels that are
clearly green (or blue), the share the output also makes green (or blue). The harm rate is the share of images
a person would reject: those whose CIEDE2000 is more than HARM_MARGIN above their own grey version's. Face
blotch tests "faces should not be blotched": faces found by scikit-image's LBP frontal-face cascade in the grey
image, kept where the truth is skin-coloured in their middle; of those skin pixels, the share the output colours
with a hue no skin has (red, pink, olive, green, blue; a skin tone a little off is not counted).
"""
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.data import lbp_frontal_face_cascade_filename
from skimage.feature import Cascade
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

METRICS = ("psnr", "ssim", "ciede2000", "cf")
HUE_BANDS = {"green": (100.0, 200.0), "blue": (220.0, 300.0)}  # CIELAB hue angle, degrees: grass, foliage; sky
TRUTH_CHROMA, OUTPUT_CHROMA = 15.0, 7.0  # "clearly" coloured in the truth; coloured at all in the output
MIN_SHARE = 0.01  # an image counts toward a recall where such pixels cover at least this share of it
HARM_MARGIN = 1.0  # CIEDE2000 above the grey version's by more than this: an image made worse by its colour
SKIN_HUE, SKIN_CHROMA = (20.0, 90.0), (8.0, 60.0)  # CIELAB hue angle (degrees) and chroma of skin, light or dark
MIN_SKIN = 0.7  # a face counts where the truth is skin over this share of its middle (the cascade fires on fur, bark)
COUNTED = ("green_recall", "blue_recall", "face_blotch")  # figures an image counts toward only where it has the
# thing measured (NaN otherwise): means over those images, and how many there were (green_images, ...)
# Issue 24's rule for replacing the shipped model (val split, full resolution): figure -> ("max" | "min", limit,
# scale). The scale is what one unit of shortfall is worth: about the distance from the grey baseline to the limit.
SHIP_RULE = {"ciede2000": ("max", 12.46, 0.5), "dcf": ("max", 10.0, 25.0), "green_recall": ("min", 0.5, 0.5),
             "blue_recall": ("min", 0.5, 0.5), "harm_rate": ("max", 0.15, 0.15), "psnr": ("min", 21.96, 0.3)}


def bgr_to_rgb255(bgr: np.ndarray) -> np.ndarray:
    """An 8- or 16-bit BGR image -> float64 RGB on the 0..255 scale, the scale every metric here uses."""
    scale = 255.0 / np.iinfo(bgr.dtype).max
    return bgr[..., ::-1].astype(np.float64) * scale


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's CF of RGB 0..255: sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = np.abs(r - g)
    yb = np.abs((r + g) / 2.0 - b)
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def in_hue_band(lab: np.ndarray, band: tuple[float, float], min_chroma: float) -> np.ndarray:
    """Which pixels of a CIELAB image have a hue angle in `band` (degrees) and at least `min_chroma`."""
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360.0
    return (hue >= band[0]) & (hue <= band[1]) & (np.hypot(lab[..., 1], lab[..., 2]) >= min_chroma)


def hue_recall(truth_lab: np.ndarray, output_lab: np.ndarray, band: tuple[float, float]) -> float:
    """Of the truth's pixels clearly in the hue band, the share the output puts in it too; NaN where they cover
    less than MIN_SHARE of the image (it does not count toward the mean)."""
    wanted = in_hue_band(truth_lab, band, TRUTH_CHROMA)
    if wanted.mean() < MIN_SHARE:
        return float("nan")
    return float(in_hue_band(output_lab, band, OUTPUT_CHROMA)[wanted].mean())


def face_skin(truth: np.ndarray) -> np.ndarray | None:
    """Where the faces' skin is in the truth (RGB 0..255): the middle half of each face the cascade finds in its
    grey version, where the truth is skin-coloured; None where no face counts."""
    truth_lab = rgb2lab(truth / 255.0)
    found = Cascade(lbp_frontal_face_cascade_filename()).detect_multi_scale(  # on L: what the model sees
        img=truth_lab[..., 0] / 100.0, scale_factor=1.2, step_ratio=1, min_size=(24, 24), max_size=truth.shape[:2])
    skin = in_hue_band(truth_lab, SKIN_HUE, SKIN_CHROMA[0]) & (np.hypot(truth_lab[..., 1], truth_lab[..., 2]) <= SKIN_CHROMA[1])
    mask = np.zeros(truth.shape[:2], bool)
    for face in found:
        quarter = face["width"] // 4
        middle = (slice(face["r"] + quarter, face["r"] + face["height"] - quarter),
                  slice(face["c"] + quarter, face["c"] + face["width"] - quarter))
        if skin[middle].mean() >= MIN_SKIN:
            mask[middle] |= skin[middle]
    return mask if mask.any() else None


def compare(truth: np.ndarray, output: np.ndarray, skin: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of `output` against `truth`, both RGB 0..255 of one shape; `cf` is the output's colourfulness,
    `green_recall` and `blue_recall` NaN where the truth has too little of that colour, `face_blotch` NaN
    where `skin` (face_skin's, of the truth) is None."""
    truth_lab, output_lab = rgb2lab(truth / 255.0), rgb2lab(output / 255.0)
    blotch = float("nan")
    if skin is not None:  # of the faces' skin: coloured at all, and not in skin's hues
        face = output_lab[skin]
        coloured = np.hypot(face[:, 1], face[:, 2]) >= OUTPUT_CHROMA
        blotch = float(np.mean(coloured & ~in_hue_band(face, SKIN_HUE, 0.0)))
    return {
        "psnr": float(peak_signal_noise_ratio(truth, output, data_range=255)),
        "ssim": float(structural_similarity(truth, output, channel_axis=2, data_range=255)),
        "ciede2000": float(deltaE_ciede2000(truth_lab, output_lab).mean()),
        "cf": colourfulness(output),
        **{f"{name}_recall": hue_recall(truth_lab, output_lab, band) for name, band in HUE_BANDS.items()},
        "face_blotch": blotch,
    }


def summarize(rows: list[dict], prefix: str) -> dict[str, float | None]:
    """Means over images of `prefix`+metric, the truth's mean CF, dCF = |mean CF of outputs - mean CF of truth|,
    the COUNTED figures (means over the images they count on; None where none does) and the harm rate against the
    rows' grey versions (`grey_ciede2000`)."""
    mean = {m: float(np.mean([r[f"{prefix}{m}"] for r in rows])) for m in METRICS}
    truth_cf = float(np.mean([r["truth_cf"] for r in rows]))
    where_counted = {}  # each COUNTED figure's mean, and on how many images (green_images, blue_images, face_images)
    for figure in COUNTED:
        values = [r.get(prefix + figure) for r in rows]
        counted = [v for v in values if v is not None and np.isfinite(v)]
        where_counted[figure] = float(np.mean(counted)) if counted else None
        where_counted[f"{figure.split('_')[0]}_images"] = len(counted)
    harmed = [r[f"{prefix}ciede2000"] > r["grey_ciede2000"] + HARM_MARGIN for r in rows]
    return {**mean, "truth_cf": truth_cf, "dcf": abs(mean["cf"] - truth_cf), **where_counted,
            "harm_rate": float(np.mean(harmed)), "images": len(rows)}


def rule_shortfall(figures: dict[str, float | None], prefix: str = "") -> float:
    """How far `figures` (prefix+name, as summarize names them) fall short of SHIP_RULE: each missed figure's
    miss in units of its scale, summed (0 = every figure met). A recall that counted no image misses nothing."""
    total = 0.0
    for name, (kind, limit, scale) in SHIP_RULE.items():
        value = figures.get(prefix + name)
        if value is not None:
            total += max(0.0, value - limit if kind == "max" else limit - value) / scale
    return total
