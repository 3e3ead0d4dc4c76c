"""--skip-colour: originals already in colour are left alone (a 'skipped' row saying so, nothing written),
while grey and toned prints are colorized."""
import cv2
import numpy as np
import pytest

from colorize_core import lab
from tests.archive import make_archive, run_job
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration


def test_skip_colour_leaves_colour_originals_alone(tmp_path, model_file):
    grey = cv2.resize(cv2.imread(str(EXAMPLES / "boats.jpg")), (96, 64))
    Lab = lab.bgr_to_lab(grey)
    strength = np.sin(np.pi * Lab[..., 0] / 100)
    Lab[..., 1], Lab[..., 2] = 5 * strength, 16 * strength  # sepia: one warm hue, strongest in the mid-tones
    sepia = np.clip(lab.lab_to_bgr(Lab) * 255 + 0.5, 0, 255).astype(np.uint8)
    colour = cv2.applyColorMap(cv2.cvtColor(grey, cv2.COLOR_BGR2GRAY), cv2.COLORMAP_JET)
    images = {name: cv2.imencode(".png", image)[1].tobytes()
              for name, image in (("grey.png", grey), ("sepia.png", sepia), ("colour.png", colour))}
    archive = make_archive("local", tmp_path, None, "skip-colour", images)

    code, rows = run_job(archive, model_file, "--skip-colour")
    assert code == 0
    assert rows["colour.png"]["status"] == "skipped" and rows["colour.png"]["error"] == "already in colour"
    assert not (tmp_path / "colour" / "colour.png").exists(), "nothing written for it"
    assert rows["grey.png"]["status"] == rows["sepia.png"]["status"] == "ok", "toned prints are colorized"
    assert rows["sepia.png"]["input_chroma"] < 1 < 3 < rows["colour.png"]["input_chroma"]

    code, rows = run_job(archive, model_file, "--overwrite")  # off by default
    assert code == 0 and all(r["status"] == "ok" for r in rows.values())
