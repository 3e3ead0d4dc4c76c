"""The augmentation inside the training step (colorize_core.augment) against the OpenCV examples validation
uses (training.example), and the photo canvases it reads."""
import cv2
import numpy as np
import pytest

from colorize_core import augment, lab, training
from colorize_core import runtime
from colorize_core.runtime import cpu_has_amx
from tests.conftest import colour_photo


def photo(h: int, w: int, seed: int = 1) -> np.ndarray:
    return cv2.resize(colour_photo(seed), (w, h), interpolation=cv2.INTER_AREA)


def test_canvas_keeps_the_short_side_at_224_and_the_centre_of_the_long_side():
    canvas, size = augment.to_canvas(photo(448, 1000))
    assert canvas.shape == (augment.CANVAS, augment.CANVAS, 3) and canvas.dtype == np.uint8
    assert size == (224, augment.CANVAS)
    tall, size = augment.to_canvas((photo(300, 200).astype(np.uint16) * 257))  # 16-bit, portrait, upsampled
    assert size == (augment.CANVAS, 224) and (tall[:, 224:] == tall[:, 223:224]).all(), "the edge repeated beyond"


def test_the_whole_photo_unflipped_is_the_example_opencv_makes():
    bgr = photo(224, 224)
    canvas, size = augment.to_canvas(bgr)
    L, ab = augment.examples(canvas[None], np.array([size], np.int32), np.array([[1.0, 0, 0, 0.9]], np.float32))
    ref_L, ref_ab = training.example(bgr)
    assert np.abs(np.asarray(L)[0] - ref_L).mean() < 0.15  # OpenCV's Lab uses tables: 0.1 apart on average
    assert np.abs(np.asarray(ab)[0] - ref_ab).mean() * lab.AB_SCALE < 0.15
    flipped, _ = augment.examples(canvas[None], np.array([size], np.int32), np.array([[1.0, 0, 0, 0.1]], np.float32))
    assert np.abs(np.asarray(flipped)[0] - ref_L[:, ::-1]).mean() < 0.15
    assert np.abs(np.asarray(flipped)[0] - ref_L).mean() > 1, "the flip mirrors the crop"


def test_a_half_size_crop_in_the_far_corner_matches_opencv():
    bgr = photo(224, 300)
    canvas, (h, w) = augment.to_canvas(bgr)
    L, _ = augment.examples(canvas[None], np.array([[h, w]], np.int32), np.array([[0.0, 1.0, 1.0, 0.9]], np.float32))
    side = h // 2
    crop = cv2.resize(canvas[h - side:h, w - side:w, ::-1], (224, 224), interpolation=cv2.INTER_LINEAR)
    assert np.abs(np.asarray(L)[0] - training.example(crop)[0]).mean() < 0.5


def test_random_crops_stay_inside_each_photo():
    """Every crop's first and last output pixels read inside the photo (pixel centres 0..h-1, edges half a
    pixel beyond), whatever the draw; and white photos give white examples."""
    rng = np.random.default_rng(0)
    sizes = np.array([(224, 224), (224, 288), (288, 224), (224, 250)] * 250, np.int32)
    u = rng.uniform(size=(len(sizes), 4)).astype(np.float32)
    t = np.asarray(augment.crop_transforms(sizes, u))
    for scale, offset, extent in ((t[:, 0], t[:, 2], sizes[:, 1]), (t[:, 4], t[:, 5], sizes[:, 0])):
        first, last = offset, offset + scale * (lab.MODEL_SIZE - 1)
        assert np.minimum(first, last).min() >= -0.5 and (np.maximum(first, last) - (extent - 0.5)).max() <= 1e-3
    canvases = [augment.to_canvas(np.full((h, w, 3), 255, np.uint8)) for h, w in ((224, 224), (224, 400), (500, 224))]
    photos, sizes = np.stack([c for c, _ in canvases] * 20), np.array([s for _, s in canvases] * 20, np.int32)
    L, ab = (np.asarray(x) for x in augment.examples(photos, sizes, augment.random_draws(rng, len(sizes))))
    assert L.shape == (60, 224, 224, 1) and ab.shape == (60, 56, 56, 2)
    assert L.min() > 99.9 and np.abs(ab).max() < 0.01


def test_random_crops_differ_step_to_step_and_scale_as_the_recipe_says():
    canvas, size = augment.to_canvas(photo(224, 288, seed=4))
    photos, sizes = np.stack([canvas] * 8), np.array([size] * 8, np.int32)
    rng = np.random.default_rng(5)
    first, second = (np.asarray(augment.examples(photos, sizes, augment.random_draws(rng, 8))[0]) for _ in range(2))
    assert np.abs(first - second).mean() > 1, "a new crop each call"
    assert np.abs(first[0] - first[1]).mean() > 1, "a new crop for each photo of a batch"
    sides = np.asarray(augment.crop_transforms(sizes[:2], np.array([[0.0, 0, 0, 1], [1.0, 0, 0, 1]], np.float32)))[:, 4]
    assert sides * 224 == pytest.approx([112, 224]), "crop sides from half to all of the short side"


@pytest.mark.parametrize("flags, has", [("fpu vme sse avx512_bf16 amx_bf16 amx_tile amx_int8", True),
                                        ("fpu vme sse avx2 avx512f avx512_bf16", False), ("", False)])
def test_amx_is_read_from_the_cpu_flags(flags, has):
    assert cpu_has_amx(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n") is has


AMX_CPU = "processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_bf16 amx_tile\n"
EPYC = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n"


@pytest.mark.parametrize("asked, gpus, cpu, precision, why", [
    ("auto", True, EPYC, "bfloat16", "GPU"),
    ("auto", False, AMX_CPU, "bfloat16", "AMX"),
    ("auto", False, EPYC, "float32", "no AMX"),
    ("float32", True, AMX_CPU, "float32", "as asked"),
    ("bfloat16", False, EPYC, "bfloat16", "as asked"),
])
def test_precision_auto_follows_the_model_workers_device_and_cpu(asked, gpus, cpu, precision, why):
    assert runtime.resolve_precision(asked, gpus, cpu)[0] == precision
    assert why in runtime.resolve_precision(asked, gpus, cpu)[1]
