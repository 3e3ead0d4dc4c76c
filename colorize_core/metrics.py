"""Colour metrics on RGB images: PSNR, SSIM and CIEDE2000 from scikit-image, and colourfulness.

Colourfulness (Hasler and Suesstrunk 2003) is written here only because no standard library has it.
"""
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

METRICS = ("psnr", "ssim", "ciede2000", "cf")


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


def compare(truth: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """Metrics of `output` against `truth`, both RGB 0..255 of one shape; `cf` is the output's colourfulness."""
    return {
        "psnr": float(peak_signal_noise_ratio(truth, output, data_range=255)),
        "ssim": float(structural_similarity(truth, output, channel_axis=2, data_range=255)),
        "ciede2000": float(deltaE_ciede2000(rgb2lab(truth / 255.0), rgb2lab(output / 255.0)).mean()),
        "cf": colourfulness(output),
    }


def summarize(rows: list[dict], prefix: str) -> dict[str, float]:
    """Means over images of `prefix`+metric, the truth's mean CF, and dCF = |mean CF of outputs - mean CF of truth|."""
    mean = {m: float(np.mean([r[f"{prefix}{m}"] for r in rows])) for m in METRICS}
    truth_cf = float(np.mean([r["truth_cf"] for r in rows]))
    return {**mean, "truth_cf": truth_cf, "dcf": abs(mean["cf"] - truth_cf), "images": len(rows)}
