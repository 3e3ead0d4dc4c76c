import numpy as np
import pytest

from colorize_core import lab
from colorize_core.lab import MODEL_SIZE, bgr_to_lab, model_input, recombine


def levels(L: np.ndarray) -> np.ndarray:
    return L * 255.0 / 100.0  # L in 8-bit levels


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_recombine_keeps_L_even_for_out_of_gamut_predictions(dtype):
    rng = np.random.default_rng(0)
    white = np.iinfo(dtype).max
    grey = np.tile(np.linspace(0, white, 300), (200, 1)).astype(dtype)  # black to white
    bgr = np.repeat(grey[..., None], 3, axis=2)
    L = bgr_to_lab(bgr)[..., 0]
    ab = rng.uniform(-1, 1, (MODEL_SIZE, MODEL_SIZE, 2)).astype(np.float32)  # mostly far out of sRGB
    out = recombine(L, ab, dtype)
    assert out.dtype == dtype and out.shape == (200, 300, 3)
    out_lab = bgr_to_lab(out)
    assert np.abs(levels(out_lab[..., 0] - L)).max() <= 1.0
    assert np.hypot(out_lab[..., 1], out_lab[..., 2]).mean() > 2.0  # colour survived the gamut mapping


def test_recombine_of_zero_ab_is_grey():
    grey = np.tile(np.linspace(0, 255, 64), (32, 1)).astype(np.uint8)
    L = bgr_to_lab(np.repeat(grey[..., None], 3, axis=2))[..., 0]
    out = recombine(L, np.zeros((MODEL_SIZE, MODEL_SIZE, 2), np.float32))
    assert np.abs(out.astype(int) - grey[..., None]).max() <= 1


def test_model_input_is_224_square_L():
    L = np.full((500, 333), 42.0, np.float32)
    x = model_input(L)
    assert x.shape == (MODEL_SIZE, MODEL_SIZE) and np.allclose(x, 42.0)


def test_the_colour_measure_leaves_out_a_single_tone():
    rng = np.random.default_rng(0)
    L = rng.uniform(5, 95, (64, 96)).astype(np.float32)

    def measure(a, b):
        lab_image = np.dstack([L, np.broadcast_to(a, L.shape), np.broadcast_to(b, L.shape)]).astype(np.float32)
        return lab.lightness(np.clip(lab.lab_to_bgr(lab_image) * 65535 + 0.5, 0, 65535).astype(np.uint16))[1]

    strength = np.sin(np.pi * L / 100)  # a toner is strongest in the mid-tones, nothing in white or black
    assert measure(0, 0) < 0.05, "grey"
    assert measure(4 * strength, 14 * strength) < 0.5, "sepia: one hue, stronger and weaker"
    assert measure(-4 * strength, -20 * strength) < 0.5, "cyanotype"
    two_hues = np.where(np.arange(96) < 48, 1.0, -1.0)[None, :]
    assert measure(20 * two_hues * strength, 5 * strength) > 5, "two hues: colour"


def edge_case(width: int = 480, height: int = 320, edge: int = 250):
    """L with one sharp vertical edge at `edge` (dark left, light right) and the colour the model would predict
    for it on a 56x56 grid: a = +38 left, -38 right, the edge falling inside a cell (bicubic smears it over
    the cells either side)."""
    L = np.where(np.arange(width) < edge, 30.0, 70.0).astype(np.float32)[None, :].repeat(height, 0)
    cells = (np.arange(56) + 0.5) * width / 56
    ab = np.stack([np.tile(np.where(cells < edge, 0.3, -0.3), (56, 1)), np.zeros((56, 56))], -1).astype(np.float32)
    truth_a = np.where(np.arange(width) < edge, 0.3 * 128, -0.3 * 128)[None, :]
    return L, ab, truth_a


def test_guided_upsampling_puts_the_colour_edge_on_the_L_edge():
    L, ab, truth_a = edge_case()
    error = {how: np.abs(lab.upsampled_ab(L, ab, upsampling=how)[..., 0] - truth_a)[:, 200:300].mean()
             for how in lab.UPSAMPLINGS}
    assert error["guided"] < 0.6 * error["bicubic"], error
    out = bgr_to_lab(recombine(L, ab, upsampling="guided"))
    assert np.abs(levels(out[..., 0] - L)).max() <= 1.0  # L is still the original's


def test_guided_upsampling_reads_fixed_point_L_and_large_images_the_same_way():
    L, ab, _ = edge_case()
    assert np.abs(lab.upsampled_ab(lab.L_to_fixed(L), ab, upsampling="guided")
                  - lab.upsampled_ab(L, ab, upsampling="guided")).max() < 0.5
    wide, ab, truth_a = edge_case(width=5000, height=60, edge=2600)  # filtered at GUIDE_SIDE, then resized
    a = lab.upsampled_ab(wide, ab, upsampling="guided")[..., 0]
    assert a.shape == wide.shape
    assert np.abs(a - truth_a)[:, 2400:2800].mean() < 0.6 * np.abs(lab.upsampled_ab(wide, ab)[..., 0] - truth_a)[:, 2400:2800].mean()


def test_an_unknown_upsampling_is_refused():
    with pytest.raises(ValueError, match="bicubic, guided"):
        lab.upsampled_ab(np.zeros((4, 4), np.float32), np.zeros((2, 2, 2), np.float32), upsampling="nearest")
