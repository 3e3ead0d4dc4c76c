"""Colour metrics on RGB images: PSNR, SSIM and CIEDE2000 from scikit-image, colourfulness, and whether the colour
is right where it matters: green and blue recall, and the harm rate.

Colourfulness (Hasler and Suesstrunk 2003) is written here only because no standard library has it. The recalls
test the thesis's claim that its model colours grass, foliage and skies well: of the truth's pixels that are
clearly green (or blue), the share the output also makes green (or blue). The harm rate is the share of images
a person would reject: those whose CIEDE2000 is more than HARM_MARGIN above their own grey version's.
"""
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

METRICS = ("psnr", "ssim", "ciede2000", "cf")
HUE_BANDS = {"green": (100.0, 200.0), "blue": (220.0, 300.0)}  # CIELAB hue angle, degrees: grass, foliage; sky
TRUTH_CHROMA, OUTPUT_CHROMA = 15.0, 7.0  # "clearly" coloured in the truth; coloured at all in the output
MIN_SHARE = 0.01  # an image counts toward a recall where such pixels cover at least this share of it
HARM_MARGIN = 1.0  # CIEDE2000 above the grey version's by more than this: an image made worse by its colour
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


def compare(truth: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """Metrics of `output` against `truth`, both RGB 0..255 of one shape; `cf` is the output's colourfulness,
    `green_recall` and `blue_recall` NaN where the truth has too little of that colour."""
    truth_lab, output_lab = rgb2lab(truth / 255.0), rgb2lab(output / 255.0)
    return {
        "psnr": float(peak_signal_noise_ratio(truth, output, data_range=255)),
        "ssim": float(structural_similarity(truth, output, channel_axis=2, data_range=255)),
        "ciede2000": float(deltaE_ciede2000(truth_lab, output_lab).mean()),
        "cf": colourfulness(output),
        **{f"{name}_recall": hue_recall(truth_lab, output_lab, band) for name, band in HUE_BANDS.items()},
    }


def summarize(rows: list[dict], prefix: str) -> dict[str, float | None]:
    """Means over images of `prefix`+metric, the truth's mean CF, dCF = |mean CF of outputs - mean CF of truth|,
    the recalls (means over the images they count on; None where none does) and the harm rate against the rows'
    grey versions (`grey_ciede2000`)."""
    mean = {m: float(np.mean([r[f"{prefix}{m}"] for r in rows])) for m in METRICS}
    truth_cf = float(np.mean([r["truth_cf"] for r in rows]))
    recalls = {}
    for name in HUE_BANDS:
        counted = [r[f"{prefix}{name}_recall"] for r in rows
                   if r[f"{prefix}{name}_recall"] is not None and np.isfinite(r[f"{prefix}{name}_recall"])]
        recalls[f"{name}_recall"] = float(np.mean(counted)) if counted else None
        recalls[f"{name}_images"] = len(counted)
    harmed = [r[f"{prefix}ciede2000"] > r["grey_ciede2000"] + HARM_MARGIN for r in rows]
    return {**mean, "truth_cf": truth_cf, "dcf": abs(mean["cf"] - truth_cf), **recalls,
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
