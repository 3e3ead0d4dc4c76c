"""The evaluation's self-contained HTML report: summary beside the grey baseline, then grey | colorized | original
for every image, sortable by each metric, the images the colour made worse (harm) first. Every name shown is
escaped."""
from html import escape

from colorize_core.metrics import HARM_MARGIN, OUTPUT_CHROMA, SKIN_HUE
from colorize_core.model_file import Head

# (column, heading, which end is worse) for the per-image table.
COLUMNS = (
    ("model_psnr", "PSNR dB", "low"), ("model_ssim", "SSIM", "low"), ("model_ciede2000", "CIEDE2000", "high"),
    ("model_cf", "CF", "none"), ("truth_cf", "truth CF", "none"), ("cf_gap", "|CF gap|", "high"),
    ("grey_psnr", "grey PSNR dB", "low"), ("psnr_gain", "PSNR gain dB", "low"),
    ("ciede2000_over_grey", "CIEDE2000 - grey's", "high"),
)
SUMMARY = (("psnr", "PSNR dB", "higher"), ("ssim", "SSIM", "higher"), ("ciede2000", "CIEDE2000", "lower"),
           ("cf", "colourfulness CF", "closer to truth"), ("dcf", "dCF = |CF - truth CF|", "lower"),
           ("green_recall", "green recall", "higher"), ("blue_recall", "blue recall", "higher"),
           ("harm_rate", "harm rate", "lower"), ("face_blotch", "face blotch", "lower"))

STYLE = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th[data-column]{cursor:pointer;background:#eef}
td.name{text-align:left;max-width:16em;overflow-wrap:anywhere}img{height:120px;display:block}tr.harm td.name{background:#fdd}
.sorted-up::after{content:" \\25B2"}.sorted-down::after{content:" \\25BC"}"""

SCRIPT = """
const table = document.getElementById("images");
function sortBy(th, descending) {
  const column = th.dataset.column, rows = Array.from(table.tBodies[0].rows);
  const value = row => parseFloat(row.querySelector(`td[data-column="${column}"]`).dataset.value);
  rows.sort((a, b) => descending ? value(b) - value(a) : value(a) - value(b));
  rows.forEach(row => table.tBodies[0].appendChild(row));
  table.querySelectorAll("th").forEach(h => h.classList.remove("sorted-up", "sorted-down"));
  th.classList.add(descending ? "sorted-down" : "sorted-up");
  th.dataset.descending = descending ? "1" : "0";
}
table.querySelectorAll("th[data-column]").forEach(th => th.addEventListener("click", () => {
  const worstFirst = th.dataset.worse === "high";
  sortBy(th, th.classList.contains("sorted-up") || th.classList.contains("sorted-down")
      ? th.dataset.descending !== "1" : worstFirst);
}));
sortBy(table.querySelector('th[data-column="ciede2000_over_grey"]'), true);
"""


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _difference(model: float | None, grey: float | None) -> str:
    return _number(None if model is None or grey is None else model - grey)


def confidence_scatter(rows: list[dict], spearman: float) -> str:
    """An inline SVG: each image's colour_confidence (x) against its CIEDE2000 gain over grey (y)."""
    points = [(r["colour_confidence"], r["grey_ciede2000"] - r["model_ciede2000"], r["key"]) for r in rows]
    width, height, pad = 480, 300, 40
    xs, ys = [x for x, _, _ in points], [y for _, y, _ in points]
    x0, x1 = min(xs), max(xs) + 1e-9
    y0, y1 = min(min(ys), 0.0), max(max(ys), 0.0) + 1e-9

    def sx(x):
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(y):
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    dots = "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"><title>{escape(str(key))}: confidence '
                   f'{x:.3f}, gain {y:+.2f}</title></circle>' for x, y, key in points)
    return f"""<h2>Does the confidence mean something?</h2>
<p>Each dot an image: <b>colour_confidence</b> (x, the manifest's column) against how much the colour improved on
grey (y, grey's CIEDE2000 - the model's; above the line colour helped). Spearman correlation: <b>{spearman:+.3f}</b>.
An archivist sorting by confidence, lowest first, looks first at the images most likely to be wrong.</p>
<svg id="confidence-scatter" width="{width}" height="{height}" role="img" aria-label="confidence against CIEDE2000 gain">
<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" fill="none" stroke="#999"/>
<line x1="{pad}" x2="{width - pad}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#c33" stroke-dasharray="4 3"/>
<g fill="#258" fill-opacity="0.6">{dots}</g>
<g font-size="12"><text x="{width / 2}" y="{height - 12}" text-anchor="middle">colour_confidence ({x0:.3f} .. {x1:.3f})</text>
<text x="16" y="{height / 2}" transform="rotate(-90 16 {height / 2})" text-anchor="middle">CIEDE2000 gain ({y0:+.1f} .. {y1:+.1f})</text></g>
</svg>"""


def render(summary: dict, rows: list[dict]) -> str:
    """The report as one HTML string; thumbnails are data: URIs already in `rows`."""
    model, grey = summary["model"], summary["grey_baseline"]
    spearman = summary.get("confidence_spearman")
    columns = COLUMNS + ((("colour_confidence", "confidence", "low"),) if spearman is not None else ())
    head = "".join(f'<tr id="summary-{m}"><th>{escape(label)}</th><td>{_number(model.get(m))}</td>'
                   f"<td>{_number(grey.get(m))}</td><td>{_difference(model.get(m), grey.get(m))}</td>"
                   f"<td>{escape(better)}</td></tr>" for m, label, better in SUMMARY)
    headings = "".join(f'<th data-column="{c}" data-worse="{worse}">{escape(label)}</th>' for c, label, worse in columns)
    body = []
    for row in rows:
        values = {**row, "cf_gap": abs(row["model_cf"] - row["truth_cf"]), "psnr_gain": row["model_psnr"] - row["grey_psnr"],
                  "ciede2000_over_grey": row["model_ciede2000"] - row["grey_ciede2000"]}
        cells = "".join(f'<td data-column="{c}" data-value="{values[c]!r}">{_number(values[c])}</td>' for c, _, _ in columns)
        images = "".join(f'<td><img src="{row[f"thumb_{name}"]}" alt="{name} {escape(row["key"])}"></td>'
                         for name in ("grey", "colour", "truth"))
        harm = ' class="harm"' if values["ciede2000_over_grey"] > HARM_MARGIN else ""
        body.append(f'<tr{harm}><td class="name">{escape(row["key"])}</td>{images}{cells}</tr>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Colorization evaluation: {escape(summary["model_name"])}</title><style>{STYLE}</style></head><body>
<h1>Colorization evaluation</h1>
<p>Model <b>{escape(summary["model_name"])}</b> (sha256 {escape(summary["model_sha256"])}; {escape(summary.get("head", Head.REGRESSION))}
head{escape(f", temperature {summary['temperature']}") if summary.get("temperature") is not None else ""}, chroma gain
{summary.get("chroma_gain", 1.0)}, model size {summary.get("model_size", 224)}{", flip-averaged" if summary.get("flip_average") else ""},
{escape(summary.get("upsampling", "bicubic"))} upsampling) on {summary["images"]} images
from {escape(summary["input"])}{escape(" (split " + summary["split"] + ")") if summary.get("split") else ""}.
Protocol: <b>{escape(summary["protocol_description"])}</b>. Metrics on RGB 0-255; CF is Hasler and S&uuml;sstrunk's
colourfulness. The grey baseline is each photo's own L with a = b = 0.</p>
<table id="summary"><tr><th>mean over images</th><th>model</th><th>grey baseline</th><th>model - grey</th><th>better</th></tr>
{head}<tr><th>truth CF</th><td colspan="4">{_number(model["truth_cf"])}</td></tr></table>
{confidence_scatter(rows, spearman) if spearman is not None else ""}
<h2>Every image, worst first</h2><p>First the images the colour made worse than their grey version (CIEDE2000
more than {HARM_MARGIN} above grey's: the <b>harm rate</b> counts them, their names marked red), then the rest.
Click a heading to sort by it (first click: worst first). <b>Green and blue recall</b>: of the original's
clearly green (CIELAB hue 100-200&deg;, chroma 15 or more) or blue (hue 220-300&deg;) pixels, the share the
colorized image also makes green or blue (chroma 7 or more), over the images where such pixels cover 1% or more
(green: {model.get("green_images", 0)} images, blue: {model.get("blue_images", 0)}). <b>Face blotch</b>: of the
skin in the middle of the faces found in the grey image (where the original is skin-coloured: CIELAB hue
{SKIN_HUE[0]:g}-{SKIN_HUE[1]:g}&deg;), the share the colorized image colours (chroma {OUTPUT_CHROMA:g} or more)
with another hue: red, pink, olive, green or blue, over the {model.get("face_images", 0)} images with such a
face.</p>
<table id="images"><thead><tr><th>image</th><th>grey</th><th>colorized</th><th>original</th>{headings}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<script>{SCRIPT}</script>
</body></html>
"""
