"""The shipped model: the file MODEL_CARD.md describes, loadable in safe mode, and it really colours a photo."""
import re

import cv2
import numpy as np

from colorize_core import metrics
from colorize_core.lab import bgr_to_lab
from colorize_core.stages import Predictor, encode_and_write, read_and_decode
from colorize_core.model_file import file_sha256
from tests.conftest import EXAMPLES, ROOT, plain_settings

SHIPPED = ROOT / "models" / "colorizer.keras"


def test_model_card_names_the_shipped_file():
    card = (ROOT / "MODEL_CARD.md").read_text()
    assert re.search(r"sha256 `([0-9a-f]{64})`", card).group(1) == file_sha256(SHIPPED)
    assert SHIPPED.stat().st_size <= 70_000_000


def test_shipped_model_colours_an_example_through_the_stages(tmp_path):
    settings = plain_settings(EXAMPLES, tmp_path, SHIPPED)
    batch = {"key": np.array(["citrus.jpg", "forest.jpg"])}
    rows = encode_and_write(Predictor(settings)(read_and_decode(batch, settings)), settings)
    assert list(rows["status"]) == ["ok", "ok"]
    for name in batch["key"]:
        original, output = (cv2.imread(str(folder / name)) for folder in (EXAMPLES, tmp_path))
        assert metrics.colourfulness(metrics.bgr_to_rgb255(output)) > 10, f"{name} is not coloured"
        L_error = np.abs(bgr_to_lab(output)[..., 0] - bgr_to_lab(original)[..., 0]) * 2.55
        assert L_error.mean() < 2.0
