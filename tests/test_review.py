"""The review gallery of a real run (a classification-head model, so confidences exist), in a real headless
chromium: least confident first, thumbnails that load, decisions by click and by key exported as a CSV that joins
the manifest, pages, the errors page; a seeded random order; a wrong --run; an output that cannot be shown."""
import csv
import html
import io
import math
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from colorize_core import manifest, review
from colorize_core.storage import Location
from jobs import review as review_job
from tests.archive import make_archive, run_job
from tests.browser import CHROMIUM, open_page
from tests.conftest import ODD_NAME

pytestmark = pytest.mark.integration

COMMA_KEY = 'café, "zoë" #1.png'  # a CSV must quote it; a URL would cut it at #
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def run(tmp_path_factory, archive_inputs, classification_model_file) -> tuple[Path, str, dict[str, dict]]:
    """A real run of the colorize job on 8 small images and one file that is not an image: (output, run ID,
    manifest rows by key)."""
    small = cv2.resize(cv2.imdecode(np.frombuffer(archive_inputs["boats.jpg"], np.uint8), cv2.IMREAD_GRAYSCALE),
                       (120, 80), interpolation=cv2.INTER_AREA)
    inputs = {key: archive_inputs[key] for key in ("grey8.png", "grey16.png", "grey16.tif", "rgb8.tif", "rotated.jpg")}
    inputs |= {ODD_NAME: cv2.imencode(".png", small)[1].tobytes(),
               COMMA_KEY: cv2.imencode(".png", small[::-1])[1].tobytes(),
               "sub/x&y.jpg": cv2.imencode(".jpg", small[:, ::-1])[1].tobytes(), "bad.jpg": b"not an image"}
    archive = make_archive("local", tmp_path_factory.mktemp("review"), None, "review", inputs)
    code, rows = run_job(archive, classification_model_file, "--precision", "float32", "--max-error-fraction", "0.5")
    assert code == 0 and sum(r["status"] == "ok" for r in rows.values()) == 8, rows
    assert rows["bad.jpg"]["status"] == "error" and rows["bad.jpg"]["error_kind"] == manifest.ErrorKind.UNREADABLE
    return Path(archive.output), next(iter(rows.values()))["run_id"], rows


def least_confident_first(rows: dict[str, dict]) -> list[str]:
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert all(math.isfinite(r["colour_confidence"]) for r in ok), "a classification head's confidences"
    return [r["key"] for r in sorted(ok, key=lambda r: (r["colour_confidence"], r["key"]))]


def keys_in(page: str) -> list[str]:
    """The keys of a gallery page's cards, in order, from its HTML."""
    return [html.unescape(key) for key in re.findall(r'<article class="card"[^>]* data-key="([^"]*)"', page)]


def card_keys(page) -> list[str]:
    return page.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.key)")


@needs_chromium
def test_gallery_reviews_least_confident_first_and_exports_decisions(run, capsys):
    from playwright.sync_api import sync_playwright

    output, run_id, rows = run
    assert review_job.main(["--output", str(output)]) == 0  # the newest complete run, into OUTPUT/_manifest/review/
    printed = capsys.readouterr().out
    gallery = output / review.FOLDER / f"run={run_id}"
    assert f"run {run_id}" in printed and "newest complete run" in printed
    assert (gallery / "index.html").as_uri() in printed
    assert len(list((gallery / "thumbs").iterdir())) == 2 * 8, "two thumbnails for each image shown, no more"
    errors = []
    with sync_playwright() as p:
        page = open_page(p, errors)
        page.goto((gallery / "index.html").as_uri())
        assert card_keys(page) == least_confident_first(rows)
        assert page.locator(".card .key").all_inner_texts()[card_keys(page).index(ODD_NAME)] == ODD_NAME, "escaped"
        sizes = page.eval_on_selector_all(".card img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        assert len(sizes) == 16 and all(done and width > 0 for done, width in sizes)
        header = page.inner_text("header")
        assert run_id in header and "least confident first" in header and "ok 8, skipped 0, error 1" in header

        keys = card_keys(page)
        comma = keys.index(COMMA_KEY)
        page.locator(".card").nth(comma).locator('button[data-decision="reject"]').click()
        other = (comma + 2) % len(keys)
        page.locator(".card").nth(other).click()
        page.keyboard.press("a")
        assert page.locator(".card").nth(other).get_attribute("data-decision") == "accept"
        assert "selected" in page.locator(".card").nth((other + 1) % len(keys)).get_attribute("class"), "moved on"
        page.reload()  # kept in localStorage
        assert page.inner_text("#decided") == "2"
        with page.expect_download() as download:
            page.click("#export")
        assert download.value.suggested_filename == "decisions.csv"
        text = Path(download.value.path()).read_bytes().decode("utf-8")

        page.click('a[href="errors.html"]')
        unreadable = page.inner_text("#kind-unreadable")
        assert "(1)" in unreadable and "bad.jpg" in unreadable and rows["bad.jpg"]["error"] in unreadable
        assert page.locator("section").count() == 1, "only the kinds that have errors"
        page.context.browser.close()
    assert errors == []
    decided = list(csv.DictReader(io.StringIO(text, newline="")))
    assert text.startswith("key,decision,when\r\n")
    assert {r["key"]: r["decision"] for r in decided} == {COMMA_KEY: "reject", keys[other]: "accept"}
    assert all(r["key"] in rows and r["when"].endswith("Z") for r in decided), "the manifest's keys; UTC"


@needs_chromium
def test_pages_link_to_each_other(run, tmp_path):
    from playwright.sync_api import sync_playwright

    output, run_id, rows = run
    written = review.write_gallery(Location(str(output)), run_id, True, Location(str(tmp_path)), page_size=3)
    assert written.pages == 3 and written.shown == 8
    assert sorted(p.name for p in tmp_path.glob("*.html")) == ["errors.html", "index.html", "page-2.html",
                                                                "page-3.html"]
    errors, seen = [], []
    with sync_playwright() as p:
        page = open_page(p, errors)
        page.goto((tmp_path / "index.html").as_uri())
        for number in (1, 2, 3):
            assert f"page {number} of 3" in page.inner_text("nav.pages >> nth=0")
            assert page.locator('a[rel="prev"]').count() == (0 if number == 1 else 2)  # above and below the cards
            assert page.locator('a[rel="next"]').count() == (0 if number == 3 else 2)
            seen += card_keys(page)
            if number < 3:
                page.click('a[rel="next"] >> nth=0')
        page.click('a[rel="prev"] >> nth=0')
        assert page.url.endswith("page-2.html")
        page.context.browser.close()
    assert errors == [] and seen == least_confident_first(rows)
    shorter = review.write_gallery(Location(str(output)), run_id, True, Location(str(tmp_path)), page_size=4)
    assert shorter.pages == 2 and not (tmp_path / "page-3.html").exists(), "an earlier gallery's extra page removed"


def test_limit_random_order_and_errors_order(run, tmp_path):
    output, run_id, rows = run
    location, folder = Location(str(output)), manifest.folder_of(Location(str(output)), run_id)
    least = [r["key"] for r in review.select(location, folder, review.CONFIDENCE, 3, 0)]
    assert least == least_confident_first(rows)[:3], "the 3 least confident, kept a batch at a time"
    sample = [r["key"] for r in review.select(location, folder, review.RANDOM, 4, seed=7)]
    assert sample == [r["key"] for r in review.select(location, folder, review.RANDOM, 4, seed=7)], "deterministic"
    assert len(set(sample)) == 4 and all(rows[k]["status"] == "ok" for k in sample)
    import pyarrow.compute as pc

    ok = manifest.dataset(location, folder).to_table(columns=review.SHOWN_COLUMNS, filter=pc.field("status") == "ok")
    batches = ok.to_batches(max_chunksize=2)  # what a large run's scan gives: many batches, kept 3 at most
    assert [r["key"] for r in review.smallest(batches, review.confidence_score, 3)] == least
    drawn = review.smallest(batches[::-1], review.hash_score(7), 4)
    assert [r["key"] for r in drawn] == sample, "the same sample whatever order the batches come in"
    everything = [r["key"] for r in review.select(location, folder, review.RANDOM, 100, seed=7)]
    assert everything[:4] == sample, "the sample of 4 is the first 4 of the whole order"
    written = review.write_gallery(location, run_id, True, Location(str(tmp_path / "errors")), review.ERRORS)
    assert written.shown == 1 and written.thumbnails == 0
    assert keys_in((tmp_path / "errors" / "index.html").read_text(encoding="utf-8")) == ["bad.jpg"]


def test_an_output_that_cannot_be_read_is_a_note(run, tmp_path):
    output, run_id, rows = run
    copy = tmp_path / "copy"
    shutil.copytree(output, copy, ignore=shutil.ignore_patterns("review"))
    (copy / "grey8.png").write_bytes(b"damaged")
    (copy / "rotated.jpg").unlink()
    written = review.write_gallery(Location(str(copy)), run_id, True, Location(str(tmp_path / "gallery")))
    assert written.shown == 8 and written.thumbnails == 6
    html = (tmp_path / "gallery" / "index.html").read_text()
    assert "cannot show grey8.png: ImageError" in html and "cannot show rotated.jpg: FileNotFoundError" in html


def test_gallery_on_s3(run, s3_server):
    output, run_id, _ = run
    client, bucket = s3_server.client(), "review-gallery"
    client.create_bucket(Bucket=bucket)
    for path in output.rglob("*"):
        if path.is_file() and "review" not in path.parts:
            client.upload_file(str(path), bucket, f"colour/{path.relative_to(output).as_posix()}")
    assert review_job.main(["--output", f"s3://{bucket}/colour", "--run", run_id]) == 0
    head = client.head_object(Bucket=bucket, Key=f"colour/{review.FOLDER}/run={run_id}/index.html")
    assert head["ContentType"].startswith("text/html")
    thumbs = client.list_objects_v2(Bucket=bucket, Prefix=f"colour/{review.FOLDER}/run={run_id}/thumbs/")["Contents"]
    assert len(thumbs) == 16


def test_wrong_run_exits_2_naming_the_runs(run, tmp_path, capsys):
    output, run_id, _ = run
    assert review_job.main(["--output", str(output), "--run", "20000101T000000000000Z"]) == 2
    message = capsys.readouterr().err
    assert "no run '20000101T000000000000Z'" in message and run_id in message
    assert review_job.main(["--output", str(tmp_path)]) == 2
    assert "no runs there at all" in capsys.readouterr().err


def test_a_run_without_confidence_falls_back_to_a_seeded_sample(run, tmp_path, capsys):
    """What a regression-head run writes (colour_confidence NaN): the default order is a random sample, the same
    for the same seed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    output, run_id, _ = run
    copy = tmp_path / "regression"
    shutil.copytree(output, copy, ignore=shutil.ignore_patterns("review"))
    for path in (copy / manifest.FOLDER / f"run={run_id}").glob("*.parquet"):
        table = pq.read_table(path, schema=manifest.SCHEMA)
        nan = pa.array([math.nan] * table.num_rows, pa.float64())
        for column in ("colour_confidence", "temperature"):
            table = table.set_column(table.schema.get_field_index(column), column, nan)
        pq.write_table(table, path)
    orders = []
    for seed in ("3", "3", "4"):
        assert review_job.main(["--output", str(copy), "--seed", seed, "--gallery", str(tmp_path / seed)]) == 0
        assert f"a random sample, seed {seed} (the run has no colour_confidence" in capsys.readouterr().out
        orders.append(keys_in((tmp_path / seed / "index.html").read_text(encoding="utf-8")))
    assert orders[0] == orders[1] and len(orders[0]) == 8 and sorted(orders[0]) == sorted(orders[2])


def test_a_gallery_under_the_output_leaves_its_fixity_audit_clean(run, tmp_path, capsys):
    """The default gallery is inside the output's own _manifest/ folder: jobs.verify passes over it, as it does
    over the manifest, so an audit of an output with a gallery finds nothing unexpected."""
    from jobs import verify

    output, run_id, _ = run
    copy = tmp_path / "audited"
    shutil.copytree(output, copy, ignore=shutil.ignore_patterns("review"))
    assert review_job.main(["--output", str(copy), "--run", run_id]) == 0
    assert (copy / review.FOLDER / f"run={run_id}" / "index.html").is_file()
    capsys.readouterr()
    assert verify.main(["--output", str(copy)]) == 0
    assert "0 unexpected" in capsys.readouterr().out
