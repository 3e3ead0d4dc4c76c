"""A settings preview before the big run: a sample of the archive colorized with every combination of the knobs,
through the colorize job's own chain of stages, on one contact sheet: a row per image, a column per setting,
the setting and the colour confidence under each picture. HTML (self-contained) and a JPEG of the same grid.
"""
import itertools
import random
from dataclasses import dataclass
from html import escape
from pathlib import Path

import cv2
import numpy as np

from colorize_core import codec, manifest, pipeline, runtime
from colorize_core.codec import thumbnail
from colorize_core.model_file import ModelFile, resolve_knobs
from colorize_core.runtime import Resources
from colorize_core.settings import JobSettings
from colorize_core.storage import Location

CELL_W, CELL_H, CAPTION_H = 240, 180, 44  # the JPEG's cells: a picture fitted in CELL_W x CELL_H, text below


@dataclass(frozen=True)
class Setting:
    """One combination of the knobs a run takes."""

    model_size: int
    temperature: float | None  # None: the regression head has none
    chroma_gain: float

    def label(self) -> str:
        temperature = f"T {self.temperature:g}, " if self.temperature is not None else ""
        return f"{temperature}gain {self.chroma_gain:g}, size {self.model_size}"

    def folder(self) -> str:
        temperature = f"T{self.temperature:g}-" if self.temperature is not None else ""
        return f"{temperature}gain{self.chroma_gain:g}-size{self.model_size}"


def sample(keys: list[str], count: int, seed: int) -> list[str]:
    """`count` of the keys, the same ones for the same seed, sorted."""
    return sorted(random.Random(seed).sample(sorted(keys), min(count, len(keys))))


def grid(model: ModelFile, model_sizes: list[int], temperatures: list[float] | None,
         chroma_gains: list[float] | None) -> list[Setting]:
    """Every combination; a knob not given takes the model file's default (ValueError for a wrong value)."""
    combinations = []
    for size, temperature, gain in itertools.product(model_sizes, temperatures or [None], chroma_gains or [None]):
        combinations.append(Setting(size, *resolve_knobs(model, temperature, gain)))
    return list(dict.fromkeys(combinations))


def colorize_each(source: Location, keys: list[str], out: Path, model_uri: str, model: ModelFile,
                  settings: list[Setting], resources: Resources, precision: str,
                  endpoint: str | None = None) -> dict[Setting, dict[str, dict]]:
    """The sample through the job's chain once per setting, into out/images/SETTING/; the manifest rows of each,
    by key."""
    results = {}
    for i, setting in enumerate(settings, 1):
        print(f"setting {i} of {len(settings)}: {setting.label()}", flush=True)
        job = JobSettings(input=source, output=Location(str(out / "images" / setting.folder())),
                          run_id=runtime.new_run_id(), model_uri=model_uri, model_sha256=model.sha256,
                          model_endpoint=endpoint, temperature=setting.temperature, chroma_gain=setting.chroma_gain,
                          model_size=setting.model_size, precision=precision, overwrite=True)
        folder = pipeline.run([keys], job, resources).folder
        rows = manifest.read(job.output, folder)
        results[setting] = {key: {c: rows[c][row] for c in ("status", "error", "colour_confidence")}
                            for row, key in enumerate(rows["key"])}
    return results


def _caption(setting: Setting, row: dict) -> list[str]:
    """The lines under a picture: its setting and its colour confidence, or why there is no picture."""
    if row["status"] != manifest.Status.OK:
        return [f"{row['status']}: {row['error']}"]
    confidence = row["colour_confidence"]
    return [setting.label(), "confidence " + (f"{confidence:.2f}" if np.isfinite(confidence) else "none (regression head)")]


PICTURE_HEIGHT = 2 * CELL_H  # pictures are shrunk to this as they are read: a sample of scans is never held whole


def _picture(location: Location, key: str) -> np.ndarray | None:
    """The image at `key`, at most PICTURE_HEIGHT high (enough for both sheets), or None if it cannot be read."""
    try:
        image = codec.decode(location.read(key))[0]
    except (codec.ImageError, OSError):
        return None
    if image.shape[0] <= PICTURE_HEIGHT:
        return image
    width = max(1, round(image.shape[1] * PICTURE_HEIGHT / image.shape[0]))
    return cv2.resize(image, (width, PICTURE_HEIGHT), interpolation=cv2.INTER_AREA)


STYLE = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:left}img{height:160px;display:block}
.caption{font-size:12px;max-width:22em;overflow-wrap:anywhere}.error{color:#a00}"""


def write_sheet(source: Location, keys: list[str], out: Path, model_name: str, results: dict[Setting, dict[str, dict]]
                ) -> tuple[Path, Path]:
    """out/contact_sheet.html and out/contact_sheet.jpg; returns their paths."""
    settings = list(results)
    headings = "".join(f"<th>{escape(s.label())}</th>" for s in settings)
    body, rows_jpeg = [], []
    for key in keys:
        original = _picture(source, key)
        cells = [f'<td><img src="{thumbnail(original)}" alt="original {escape(key)}"></td>' if original is not None
                 else '<td class="error">cannot be read</td>']
        pictures = [(original, [key])]
        for s in settings:
            row = results[s].get(key, {"status": manifest.Status.ERROR, "error": "no manifest row", "colour_confidence": np.nan})
            colour = _picture(Location(str(out / "images" / s.folder())), key) if row["status"] == manifest.Status.OK else None
            caption = _caption(s, row)
            image = f'<img src="{thumbnail(colour)}" alt="{escape(s.label())} {escape(key)}">' if colour is not None else ""
            lines = "<br>".join(escape(line) for line in caption)
            cells.append(f'<td>{image}<div class="caption{"" if colour is not None else " error"}">{lines}</div></td>')
            pictures.append((colour, caption))
        body.append(f'<tr><th class="caption">{escape(key)}</th>{"".join(cells)}</tr>')
        rows_jpeg.append(pictures)
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Settings preview</title>
<style>{STYLE}</style></head><body>
<h1>Settings preview</h1>
<p>{len(keys)} images, model <b>{escape(model_name)}</b>, {len(settings)} settings. Each column is a run of the colorize
job with that setting; pick one and pass it to the big run (<code>--temperature</code>, <code>--chroma-gain</code>,
<code>--model-size</code>).</p>
<table id="sheet"><thead><tr><th>image</th><th>original</th>{headings}</tr></thead><tbody>
{"".join(body)}
</tbody></table></body></html>
"""
    html_path, jpeg_path = out / "contact_sheet.html", out / "contact_sheet.jpg"
    html_path.write_text(html, encoding="utf-8")
    jpeg_path.write_bytes(codec.encode(_sheet_image(["original"] + [s.label() for s in settings], rows_jpeg), "jpeg", 90))
    return html_path, jpeg_path


def _sheet_image(headings: list[str], rows: list[list[tuple[np.ndarray | None, list[str]]]]) -> np.ndarray:
    """The grid as one picture: a heading row, then per image its original and each setting's colour."""
    def text(canvas, line, x, y):
        cv2.putText(canvas, line.encode("ascii", "replace").decode()[:38], (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (40, 40, 40), 1, cv2.LINE_AA)

    height = CAPTION_H + len(rows) * (CELL_H + CAPTION_H)
    sheet = np.full((height, len(headings) * CELL_W, 3), 255, np.uint8)
    for c, heading in enumerate(headings):
        text(sheet, heading, c * CELL_W + 6, 26)
    for r, pictures in enumerate(rows):
        top = CAPTION_H + r * (CELL_H + CAPTION_H)
        for c, (picture, caption) in enumerate(pictures):
            if picture is not None:
                picture = codec.to_8bit(picture)
                scale = min((CELL_W - 8) / picture.shape[1], (CELL_H - 8) / picture.shape[0])
                small = cv2.resize(picture, (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale))),
                                   interpolation=cv2.INTER_AREA)
                sheet[top + 4:top + 4 + small.shape[0], c * CELL_W + 4:c * CELL_W + 4 + small.shape[1]] = small
            for i, line in enumerate(caption[:2]):
                text(sheet, line, c * CELL_W + 6, top + CELL_H + 14 + 16 * i)
    return sheet
