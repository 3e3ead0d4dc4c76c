"""The classification head's maths: the bins, the soft encoding, the prior and the weights, the annealed mean,
the confidence; the head switch; the knobs (temperature and chroma gain)."""
import cv2
import numpy as np
import pytest

from colorize_core import colour_classes as cc
from colorize_core import lab, losses
from colorize_core.model import Colorizer, build_colorizer, head_of, training_model, with_defaults
from colorize_core.model import load_colorizer
from colorize_core.model_file import inspect_model_file


def photo_ab() -> np.ndarray:
    """ab (Lab units) of the pixels of a few made-up colour pictures (blocks of colour over a blurred gradient)."""
    from tests.conftest import colour_photo

    return np.concatenate([lab.bgr_to_lab(colour_photo(seed))[..., 1:] for seed in range(4)])


def test_bins_are_the_grid_cells_that_occur():
    ab = np.array([[0, 0], [3, -4], [21, 29], [-118, 60], [200, -200]], np.float32)
    classes = cc.classes_from_data(ab)
    assert sorted(map(tuple, classes.centres.tolist())) == [(-120, 60), (0, 0), (20, 30), (120, -120)]
    prior = dict(zip(map(tuple, classes.centres.tolist()), classes.prior.tolist()))
    assert prior[(0, 0)] == pytest.approx(0.4) and prior[(20, 30)] == pytest.approx(0.2), "the frequency of each bin"
    assert np.all(classes.centres % cc.GRID_STEP == 0), "bin centres on the grid of step 10"
    real = cc.classes_from_data(photo_ab())
    assert 10 < real.count < cc.GRID_SIDE**2 and real.prior.sum() == pytest.approx(1.0)
    assert np.all(real.prior > 0), "only bins that occur"


def test_soft_encoding_spreads_over_the_five_nearest_bins():
    classes = cc.classes_from_data(photo_ab())
    ab = np.array([[3.0, -4.0], [classes.centres[0][0], classes.centres[0][1]]], np.float32)
    target = np.asarray(cc.soft_encode(ab, classes.centres))
    assert target.shape == (2, classes.count)
    assert np.allclose(target.sum(-1), 1.0)
    assert (target > 0).sum(-1).tolist() == [5, 5]
    distance = np.linalg.norm(classes.centres[None] - ab[:, None], axis=-1)
    for t, d in zip(target, distance):
        assert set(np.flatnonzero(t)) == set(np.argsort(d)[:5]), "the nearest bins"
        assert np.argmax(t) == np.argmin(d), "the nearest bin weighs most (Gaussian)"


def test_prior_and_weights_sum_and_average_as_stated():
    classes = cc.classes_from_data(photo_ab())
    for mix in (0.0, 0.5, 1.0):
        w = cc.rebalancing_weights(classes, mix)
        assert np.sum(classes.prior * w) == pytest.approx(1.0, abs=1e-5), "weights average 1 over training pixels"
        pixels = w[np.asarray(cc.nearest_bin(photo_ab().reshape(-1, 2), classes.centres))]
        assert pixels.mean() == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(cc.rebalancing_weights(classes, 1.0), 1.0), "mix 1: every colour alike"
    w = cc.rebalancing_weights(classes, 0.5)
    assert w[np.argmin(classes.prior)] > w[np.argmax(classes.prior)], "rare colours are weighted up"


def test_annealed_mean_from_mean_to_mode():
    centres = np.array([[0, 0], [40, 0], [0, -60]], np.float32)
    probabilities = np.array([0.2, 0.5, 0.3], np.float32)
    logits = np.log(probabilities)[None]
    mean = np.asarray(cc.annealed_mean(logits, centres, 1.0))[0] * 128
    assert np.allclose(mean, probabilities @ centres, atol=1e-3), "T = 1: the mean"
    mode = np.asarray(cc.annealed_mean(logits, centres, 0.01))[0] * 128
    assert np.allclose(mode, centres[1], atol=1e-3), "T -> 0: the mode"
    warm = np.hypot(*np.asarray(cc.annealed_mean(logits, centres, 0.38))[0])
    assert np.hypot(*mean / 128) < warm, "a lower temperature gives more chroma here"


def test_confidence_is_one_for_certainty_and_zero_for_uniform():
    sure = np.full((1, 4, 4, 10), -30.0, np.float32)
    sure[..., 3] = 30.0
    unsure = np.zeros((1, 4, 4, 10), np.float32)
    confidence = np.asarray(cc.confidence(np.concatenate([sure, unsure])))
    assert confidence[0] == pytest.approx(1.0, abs=1e-4) and confidence[1] == pytest.approx(0.0, abs=1e-5)


def test_loss_is_lower_for_the_right_colour():
    classes = cc.classes_from_data(photo_ab())
    loss = losses.RebalancedCrossEntropy(classes.centres, cc.rebalancing_weights(classes), reduction=None)
    ab = np.full((1, 2, 2, 2), 0.0, np.float32)
    ab[..., 0], ab[..., 1] = classes.centres[0] / 128
    right = np.full((1, 2, 2, classes.count), -10.0, np.float32)
    right[..., 0] = 10.0
    wrong = np.roll(right, classes.count // 2, axis=-1)
    assert float(np.asarray(loss(ab, right))[0]) < float(np.asarray(loss(ab, wrong))[0])


def test_the_head_switch(classification_model_file, model_file):
    x = np.random.default_rng(0).uniform(0, 100, (2, 224, 224, 1)).astype(np.float32)
    classification, regression = load_colorizer(classification_model_file), load_colorizer(model_file)
    assert head_of(classification) == "classification" and head_of(regression) == "regression"
    assert inspect_model_file(str(classification_model_file)).head == "classification"
    assert inspect_model_file(str(model_file)).head == "regression"
    assert np.asarray(classification.predict_on_batch(x)).shape == (2, 56, 56, 2)
    assert training_model(classification).output.shape[-1] == classification.get_layer("annealed_mean").centres.shape[0]
    with pytest.raises(ValueError, match="classification head needs"):
        build_colorizer(None, head="classification")
    with pytest.raises(ValueError, match="head must be"):
        build_colorizer(None, head="gan")


def test_default_knobs_reproduce_the_models_own_output(classification_model_file, model_file, tmp_path):
    x = np.random.default_rng(1).uniform(0, 100, (2, 224, 224, 1)).astype(np.float32)
    classification = Colorizer.load(classification_model_file)
    ab, confidence = classification.predict(x)
    assert np.allclose(ab, np.asarray(load_colorizer(classification_model_file).predict_on_batch(x)), atol=1e-6)
    assert confidence.shape == (2,) and np.all((0 <= confidence) & (confidence <= 1))
    hotter, _ = Colorizer.load(classification_model_file, temperature=1.0).predict(x)
    assert not np.allclose(hotter, ab), "the temperature changes the colour"

    # A file carrying a gain: the gain moves out of the network into recombine, same pictures.
    gained_path = tmp_path / "gained.keras"
    with_defaults(load_colorizer(model_file), gain=1.3).save(gained_path)
    gained = Colorizer.load(gained_path)
    assert gained.default_gain == pytest.approx(1.3) and inspect_model_file(str(gained_path)).chroma_gain == pytest.approx(1.3)
    ab, confidence = gained.predict(x)
    assert confidence is None, "the regression head gives no confidence"
    as_saved = np.asarray(load_colorizer(gained_path).predict_on_batch(x))
    L = cv2.resize(x[0, ..., 0], (300, 200))
    assert np.abs(lab.recombine(L, ab[0], chroma_gain=1.3).astype(int) - lab.recombine(L, as_saved[0]).astype(int)).max() <= 1
    with pytest.raises(ValueError, match="classification head only"):
        Colorizer.load(gained_path, temperature=0.5)


def test_a_gain_changes_only_chroma_and_keeps_L():
    from tests.conftest import EXAMPLES

    L = lab.bgr_to_lab(cv2.imread(str(EXAMPLES / "forest.jpg")))[..., 0]
    ab = np.random.default_rng(0).uniform(-0.3, 0.3, (56, 56, 2)).astype(np.float32)
    images = {gain: lab.bgr_to_lab(lab.recombine(L, ab, chroma_gain=gain)) for gain in (0.0, 1.0, 2.0)}
    for gain, out in images.items():
        assert np.abs(out[..., 0] - L).mean() < 0.3, f"L kept at gain {gain}"
    chroma = {gain: np.hypot(out[..., 1], out[..., 2]).mean() for gain, out in images.items()}
    assert chroma[0.0] < 0.5 < chroma[1.0] < chroma[2.0]
