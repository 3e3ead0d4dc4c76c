"""Evaluation: metrics against known values, and the evaluate job end to end through the colorize stages."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from colorize_core import metrics
from colorize_core.lab import MODEL_SIZE, bgr_to_lab, recombine
from jobs import evaluate
from tests.conftest import ODD_NAME, colour_photo

def test_identical_images_score_perfectly():
    rgb = np.random.default_rng(0).uniform(0, 255, (64, 64, 3)).round()
    scores = metrics.compare(rgb, rgb.copy())
    assert scores["psnr"] == np.inf and scores["ssim"] == pytest.approx(1.0) and scores["ciede2000"] == 0.0


def test_constant_shift_has_the_psnr_and_ciede2000_of_the_formulas():
    truth = np.full((32, 32, 3), 100.0)
    shifted = truth + 10.0  # grey stays grey: only L changes
    scores = metrics.compare(truth, shifted)
    assert scores["psnr"] == pytest.approx(10 * np.log10(255**2 / 10**2))  # MSE 100: 28.13 dB
    from skimage.color import rgb2lab

    L1, L2 = rgb2lab(truth[:1, :1] / 255)[0, 0, 0], rgb2lab(shifted[:1, :1] / 255)[0, 0, 0]
    mean_L = (L1 + L2) / 2
    S_L = 1 + 0.015 * (mean_L - 50) ** 2 / np.sqrt(20 + (mean_L - 50) ** 2)  # CIEDE2000 for a pure L difference
    assert scores["ciede2000"] == pytest.approx(abs(L2 - L1) / S_L, abs=1e-3)


def test_colourfulness_of_a_hand_made_image():
    image = np.zeros((10, 20, 3))
    image[:, :10] = (255, 0, 0)  # red: rg = 255, yb = 127.5
    image[:, 10:] = (0, 0, 255)  # blue: rg = 0, yb = 255
    rg_mean, rg_std, yb_mean, yb_std = 127.5, 127.5, 191.25, 63.75
    expected = np.hypot(rg_std, yb_std) + 0.3 * np.hypot(rg_mean, yb_mean)  # 211.50
    assert metrics.colourfulness(image) == pytest.approx(expected)
    assert metrics.colourfulness(np.full((5, 5, 3), 77.0)) == 0.0


def grass_and_sky() -> np.ndarray:
    """RGB 0..255: a blue sky over green grass, with a grey wall between (neither colour)."""
    image = np.zeros((60, 40, 3))
    image[:20] = (90, 140, 220)  # sky: CIELAB hue ~ 280 degrees
    image[20:40] = (128, 128, 128)
    image[40:] = (60, 140, 50)  # grass: hue ~ 130 degrees
    return image


def test_face_blotch_counts_the_face_skin_given_a_hue_no_skin_has():
    from skimage import data
    from skimage.color import lab2rgb

    astronaut = data.astronaut().astype(np.float64)  # scikit-image's own photo: one face, skin-coloured
    skin = metrics.face_skin(astronaut)
    assert skin is not None and 0.005 < skin.mean() < 0.05, "her face is found, and only its skin is kept"
    rows, cols = np.nonzero(skin)
    assert 60 < rows.mean() < 160 and 170 < cols.mean() < 270, "where her face is"
    assert metrics.face_skin(data.chelsea().astype(np.float64)) is None, "a cat is no face"
    grey = np.repeat(metrics.rgb2lab(astronaut / 255.0)[..., :1] * 2.55, 3, axis=2)
    warm = np.clip(grey * [1.08, 1.0, 0.85], 0, 255)  # a sepia face: off, but no blotch
    blotched_lab = metrics.rgb2lab(astronaut / 255.0)
    blotched_lab[skin & (np.arange(512)[None, :] % 40 < 20)] *= [1.0, 0.0, 0.0]  # half of her face in stripes:
    blotched_lab[skin & (np.arange(512)[None, :] % 40 < 20)] += [0.0, 30.0, 5.0]  # pink-red (hue ~9 degrees)
    blotched = np.clip(lab2rgb(blotched_lab) * 255.0, 0, 255)
    figures = {name: metrics.compare(astronaut, image, skin)["face_blotch"]
               for name, image in (("truth", astronaut), ("grey", grey), ("warm", warm), ("blotched", blotched))}
    assert figures["truth"] == figures["grey"] == figures["warm"] == 0.0, figures
    assert 0.4 < figures["blotched"] < 0.6, "the striped half of her face"
    assert np.isnan(metrics.compare(astronaut, blotched)["face_blotch"]), "no face given: not counted"
    rows = [{"model_face_blotch": v, **{f"model_{m}": 0.0 for m in metrics.METRICS}, "grey_ciede2000": 0.0,
             "truth_cf": 0.0} for v in (figures["blotched"], float("nan"))]
    summary = metrics.summarize(rows, "model_")
    assert summary["face_blotch"] == figures["blotched"] and summary["face_images"] == 1


def test_recall_and_harm_of_grey_and_of_the_truth():
    truth = grass_and_sky()
    grey = np.repeat(metrics.rgb2lab(truth / 255.0)[..., :1] * 2.55, 3, axis=2)  # its L as grey levels
    as_truth, as_grey = metrics.compare(truth, truth.copy()), metrics.compare(truth, grey)
    assert (as_truth["green_recall"], as_truth["blue_recall"]) == (1.0, 1.0)
    assert (as_grey["green_recall"], as_grey["blue_recall"]) == (0.0, 0.0)
    swapped = truth.copy()
    swapped[:20], swapped[40:] = truth[40:], truth[:20]  # green sky, blue grass: both wrong
    assert metrics.compare(truth, swapped)["green_recall"] == 0.0
    no_green = truth.copy()
    no_green[40:] = 128
    assert np.isnan(metrics.compare(no_green, no_green)["green_recall"]), "no green in the truth: not counted"
    rows = [{**{f"model_{m}": v for m, v in scores.items()}, **{f"grey_{m}": v for m, v in as_grey.items()},
             "truth_cf": 0.0} for scores in (as_truth, as_grey, metrics.compare(truth, swapped))]
    model, baseline = metrics.summarize(rows, "model_"), metrics.summarize(rows, "grey_")
    assert model["harm_rate"] == pytest.approx(1 / 3), "only the swapped colours are worse than grey"
    assert baseline["harm_rate"] == 0.0 and baseline["green_recall"] == 0.0 and baseline["blue_recall"] == 0.0
    assert metrics.summarize(rows[:1], "model_")["harm_rate"] == 0.0


def test_grey_baseline_has_colourfulness_near_zero():
    photo = colour_photo(0)
    L = bgr_to_lab(photo)[..., 0]
    grey = recombine(L, np.zeros((MODEL_SIZE, MODEL_SIZE, 2), np.float32))
    assert metrics.colourfulness(metrics.bgr_to_rgb255(grey)) < 0.5
    assert metrics.colourfulness(metrics.bgr_to_rgb255(photo)) > 30


@pytest.mark.integration
def test_evaluate_runs_the_colorize_stages_and_writes_table_summary_report(evaluated):
    out, summary = evaluated
    assert summary["images"] == 3 and summary["protocol"] == "full"
    # The colorize job's chain ran over the grey versions: its manifest names the model and the predict time.
    manifest = pq.read_table(summary["colorize_manifest"]).to_pylist()
    assert sorted(r["key"] for r in manifest) == sorted(f"{n}.png" for n in ("a.jpg", "b16.png", ODD_NAME))
    assert all(r["status"] == "ok" and r["predict_s"] > 0 and r["model_sha256"] == summary["model_sha256"]
               for r in manifest)
    table = pq.read_table(out / "per_image.parquet").to_pylist()
    assert len(table) == 3 and (out / "per_image.csv").read_text().count("\n") == 4
    assert all(r["grey_cf"] < 1.0 and r["grey_psnr"] > 10 for r in table)
    assert summary["grey_baseline"]["dcf"] == pytest.approx(abs(summary["grey_baseline"]["cf"] - summary["model"]["truth_cf"]))
    html = (out / "report.html").read_text()
    assert "odd &lt;b&gt;name &amp; &quot;quotes&quot; &lt;script&gt;.png" in html and "<b>name" not in html
    assert html.count("data:image/jpeg;base64,") == 9


@pytest.mark.integration
def test_evaluate_twice_gives_identical_numbers(evaluated, photos, model_file, tmp_path, capsys):
    first_out, first = evaluated
    assert evaluate.main(["--input", str(photos), "--out", str(tmp_path), "--model", str(model_file),
                          "--batch-size", "2", "--compare", str(first_out / "summary.json")]) == 0
    second = json.loads((tmp_path / "summary.json").read_text())
    assert second["model"] == first["model"] and second["grey_baseline"] == first["grey_baseline"]
    assert pq.read_table(tmp_path / "per_image.parquet").drop(["measure_s"]).equals(
        pq.read_table(first_out / "per_image.parquet").drop(["measure_s"]))
    assert "+0.0000" in capsys.readouterr().out  # --compare: A - B is zero


@pytest.mark.integration
def test_crop256_protocol_measures_256_squares(photos, model_file, tmp_path):
    assert evaluate.main(["--input", str(photos), "--out", str(tmp_path), "--model", str(model_file),
                          "--protocol", "crop256", "--limit", "1"]) == 0
    (row,) = pq.read_table(tmp_path / "per_image.parquet").to_pylist()
    assert (row["width"], row["height"]) == (256, 256)
    assert "256x256 centre crop" in (tmp_path / "report.html").read_text()


@pytest.mark.integration
def test_classification_evaluation_reports_the_confidence(evaluated_classification):
    out, summary = evaluated_classification
    assert summary["head"] == "classification" and summary["temperature"] == 0.3 and summary["chroma_gain"] == 1.0
    assert -1 <= summary["confidence_spearman"] <= 1
    rows = pq.read_table(out / "per_image.parquet").to_pylist()
    assert len(rows) == 3 and all(0 <= r["colour_confidence"] <= 1 for r in rows)
    manifest = pq.read_table(summary["colorize_manifest"]).to_pylist()
    assert all(r["temperature"] == 0.3 for r in manifest)
    assert "confidence-scatter" in (out / "report.html").read_text()


def test_rule_shortfall_is_zero_only_where_every_figure_of_the_ship_rule_is_met():
    met = {"ciede2000": 12.3, "dcf": 8.0, "green_recall": 0.6, "blue_recall": 0.55, "harm_rate": 0.1, "psnr": 22.5}
    assert metrics.rule_shortfall(met) == 0
    assert metrics.rule_shortfall({f"val_{k}": v for k, v in met.items()}, "val_") == 0
    shipped = {"ciede2000": 12.65, "dcf": 12.66, "green_recall": 0.065, "blue_recall": 0.15, "harm_rate": 0.385,
               "psnr": 22.60}
    muted = {**shipped, "dcf": 24.0, "green_recall": 0.005}
    assert 0 < metrics.rule_shortfall(shipped) < metrics.rule_shortfall(muted)
    assert metrics.rule_shortfall({**met, "green_recall": None}) == 0, "a recall that counted no image misses nothing"
