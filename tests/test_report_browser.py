"""The evaluation's HTML report in a real headless browser (Debian's chromium): it renders, with no console errors."""
import shutil
from pathlib import Path
import pytest

from tests.browser import CHROMIUM, open_page

pytestmark = pytest.mark.integration


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("head", ["regression", "classification"])
def test_report_renders_in_chromium_without_errors(request, head, tmp_path):
    from playwright.sync_api import sync_playwright

    out, summary = request.getfixturevalue("evaluated" if head == "regression" else "evaluated_classification")
    errors = []
    with sync_playwright() as p:
        page = open_page(p, errors)
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        rows = page.locator("#images tbody tr")
        assert rows.count() == summary["images"]
        sizes = page.eval_on_selector_all("#images img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        assert len(sizes) == 3 * summary["images"] and all(done and width > 0 for done, width in sizes)
        assert page.locator("#summary").inner_text().count("PSNR") == 1
        over_grey = page.eval_on_selector_all('#images td[data-column="ciede2000_over_grey"]',
                                              "tds => tds.map(t => +t.dataset.value)")
        assert over_grey == sorted(over_grey, reverse=True), "the images the colour made worse first on opening"
        harmed = page.eval_on_selector_all("#images tbody tr", "trs => trs.map(t => t.classList.contains('harm'))")
        assert harmed == [value > 1.0 for value in over_grey], "harmed images marked"
        for figure in ("green_recall", "blue_recall", "harm_rate", "face_blotch"):
            shown, expected = page.inner_text(f"#summary-{figure} td"), summary["model"][figure]
            assert (shown == "n/a") if expected is None else float(shown) == pytest.approx(expected, abs=1e-4), figure
        page.click('th[data-column="model_psnr"]')
        psnr = page.eval_on_selector_all('#images td[data-column="model_psnr"]', "tds => tds.map(t => +t.dataset.value)")
        assert psnr == sorted(psnr), "worst (lowest) PSNR first after a click"
        page.click('th[data-column="model_ciede2000"]')
        ciede = page.eval_on_selector_all('#images td[data-column="model_ciede2000"]',
                                          "tds => tds.map(t => +t.dataset.value)")
        assert ciede == sorted(ciede, reverse=True), "worst (highest) CIEDE2000 first after a click"
        dots = page.locator("#confidence-scatter circle")
        if head == "classification":  # the confidence's scatter plot and its sortable column
            assert dots.count() == summary["images"] and "Spearman" in page.inner_text("body")
            page.click('th[data-column="colour_confidence"]')
            confidence = page.eval_on_selector_all('#images td[data-column="colour_confidence"]',
                                                   "tds => tds.map(t => +t.dataset.value)")
            assert confidence == sorted(confidence), "least confident first after a click"
        else:
            assert dots.count() == 0, "a regression model has no confidence to plot"
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        shutil.copy(tmp_path / "report.png", Path(out) / "report-screenshot.png")
        page.context.browser.close()
    assert errors == []
