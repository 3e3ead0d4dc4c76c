"""The evaluation's self-contained HTML report: summary beside the grey baseline, then grey | colorized | original
for every image, sortable by each metric, worst first. Every name shown is escaped."""
from html import escape

# (column, heading, which end is worse) for the per-image table.
COLUMNS = (
    ("model_psnr", "PSNR dB", "low"), ("model_ssim", "SSIM", "low"), ("model_ciede2000", "CIEDE2000", "high"),
    ("model_cf", "CF", "none"), ("truth_cf", "truth CF", "none"), ("cf_gap", "|CF gap|", "high"),
    ("grey_psnr", "grey PSNR dB", "low"), ("psnr_gain", "PSNR gain dB", "low"),
)
SUMMARY = (("psnr", "PSNR dB", "higher"), ("ssim", "SSIM", "higher"), ("ciede2000", "CIEDE2000", "lower"),
           ("cf", "colourfulness CF", "closer to truth"), ("dcf", "dCF = |CF - truth CF|", "lower"))

STYLE = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th[data-column]{cursor:pointer;background:#eef}
td.name{text-align:left;max-width:16em;overflow-wrap:anywhere}img{height:120px;display:block}
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
sortBy(table.querySelector('th[data-column="model_psnr"]'), false);
"""


def _number(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def render(summary: dict, rows: list[dict]) -> str:
    """The report as one HTML string; thumbnails are data: URIs already in `rows`."""
    model, grey = summary["model"], summary["grey_baseline"]
    head = "".join(f"<tr><th>{escape(label)}</th><td>{_number(model[m])}</td><td>{_number(grey[m])}</td>"
                   f"<td>{_number(model[m] - grey[m])}</td><td>{escape(better)}</td></tr>"
                   for m, label, better in SUMMARY)
    headings = "".join(f'<th data-column="{c}" data-worse="{worse}">{escape(label)}</th>' for c, label, worse in COLUMNS)
    body = []
    for row in rows:
        values = {**row, "cf_gap": abs(row["model_cf"] - row["truth_cf"]), "psnr_gain": row["model_psnr"] - row["grey_psnr"]}
        cells = "".join(f'<td data-column="{c}" data-value="{values[c]!r}">{_number(values[c])}</td>' for c, _, _ in COLUMNS)
        images = "".join(f'<td><img src="{row[f"thumb_{name}"]}" alt="{name} {escape(row["key"])}"></td>'
                         for name in ("grey", "colour", "truth"))
        body.append(f'<tr><td class="name">{escape(row["key"])}</td>{images}{cells}</tr>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Colorization evaluation: {escape(summary["model_name"])}</title><style>{STYLE}</style></head><body>
<h1>Colorization evaluation</h1>
<p>Model <b>{escape(summary["model_name"])}</b> (sha256 {escape(summary["model_sha256"])}) on {summary["images"]} images
from {escape(summary["input"])}{escape(" (split " + summary["split"] + ")") if summary.get("split") else ""}.
Protocol: <b>{escape(summary["protocol_description"])}</b>. Metrics on RGB 0-255; CF is Hasler and S&uuml;sstrunk's
colourfulness. The grey baseline is each photo's own L with a = b = 0.</p>
<table id="summary"><tr><th>mean over images</th><th>model</th><th>grey baseline</th><th>model - grey</th><th>better</th></tr>
{head}<tr><th>truth CF</th><td colspan="4">{_number(model["truth_cf"])}</td></tr></table>
<h2>Every image, worst first</h2><p>Click a heading to sort by it (first click: worst first).</p>
<table id="images"><thead><tr><th>image</th><th>grey</th><th>colorized</th><th>original</th>{headings}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<script>{SCRIPT}</script>
</body></html>
"""
