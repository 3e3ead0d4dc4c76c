"""The settings preview: a sample colorized with every combination of the knobs through the job's stages, on a
contact sheet that renders in a real headless browser (Debian's chromium) with no console errors."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from colorize_core import manifest, preview
from colorize_core.storage import Location
from jobs import preview as preview_job
from tests.browser import CHROMIUM, open_page

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_sample_is_the_same_for_the_same_seed():
    keys = [f"k{i}.jpg" for i in range(100)]
    assert preview.sample(keys, 24, 0) == preview.sample(list(reversed(keys)), 24, 0)
    assert preview.sample(keys, 24, 0) != preview.sample(keys, 24, 1) and len(preview.sample(keys, 24, 0)) == 24
    assert preview.sample(keys[:3], 24, 0) == keys[:3]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_preview_contact_sheet_renders_with_every_setting(tmp_path):
    from playwright.sync_api import sync_playwright

    out = tmp_path / "preview"
    # The shipped model: its colour depends on what it sees (the tests' tinted one hardly does).
    assert preview_job.main(["--input", str(EXAMPLES), "--out", str(out), "--sample", "2",
                             "--seed", "0", "--chroma-gain", "1.5", "--model-size", "224", "320"]) == 0
    keys = preview.sample(sorted(p.name for p in EXAMPLES.glob("*.jpg")), 2, 0)
    settings = ["gain 1.5, size 224", "gain 1.5, size 320"]
    for size in (224, 320):  # each column really is its setting, as its manifest records
        rows = manifest.read_all(Location(str(out / "images" / f"gain1.5-size{size}")))[0].to_pydict()
        assert sorted(rows["key"]) == keys and set(rows["model_size"]) == {size} and set(rows["chroma_gain"]) == {1.5}
    for key in keys:  # the network saw a different image: the colour differs, the size (the original's) does not
        small, large = (cv2.imread(str(out / "images" / f"gain1.5-size{size}" / key)) for size in (224, 320))
        assert small.shape == large.shape and np.abs(small.astype(int) - large).mean() > 0.5, key
    sheet = cv2.imread(str(out / "contact_sheet.jpg"))
    assert sheet.shape[1] == (1 + len(settings)) * preview.CELL_W and sheet.shape[0] > 2 * preview.CELL_H

    errors = []
    with sync_playwright() as p:
        page = open_page(p, errors)
        page.goto((out / "contact_sheet.html").as_uri())
        page.wait_for_load_state("load")
        headings = page.eval_on_selector_all("#sheet thead th", "ths => ths.map(t => t.innerText)")
        assert headings == ["image", "original"] + settings
        assert page.eval_on_selector_all("#sheet tbody th", "ths => ths.map(t => t.innerText)") == keys
        sizes = page.eval_on_selector_all("#sheet img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        assert len(sizes) == len(keys) * (1 + len(settings)) and all(done and width > 0 for done, width in sizes)
        captions = page.eval_on_selector_all("#sheet .caption", "ds => ds.map(d => d.innerText)")
        assert sum("confidence none (regression head)" in c for c in captions) == len(keys) * len(settings)
        page.context.browser.close()
    assert errors == []
