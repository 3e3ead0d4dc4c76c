"""The review gallery of a run: static pages of grey | colour thumbnails with the manifest's figures, for a person
to look at a run's images (least confident first) and accept, reject or skip each one with the keyboard.

The gallery is a folder: index.html (page 1), page-2.html, ..., errors.html and thumbs/. It opens from disk
(file://) or from an S3 static website: relative links, inline CSS and JS, nothing fetched, no server. The
decisions stay in the browser (localStorage, per run, across the run's pages) until exported as decisions.csv
(key,decision,when), whose keys are the manifest's, so that pandas or DuckDB join it to the manifest.

Memory stays flat however large the run: the manifest is read a batch at a time, only the `limit` rows shown are
kept (smallest()), and only their thumbnails are made.
"""
import hashlib
import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import escape

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from colorize_core import codec, lab, manifest
from colorize_core.storage import Location

FOLDER = f"{manifest.FOLDER}/review"  # the default gallery: OUTPUT/_manifest/review/run=RUN_ID/, inside the
# output's own folder: no input key can land there, and the fixity audit passes over it
PAGE_SIZE = 200  # images a page
LIMIT = 2000  # images in a gallery by default: a reviewer looks at a few thousand at most
ERRORS_SHOWN = 1000  # keys listed per error kind on errors.html; the manifest has them all
THUMB_SIDE, THUMB_QUALITY = 256, 85  # thumbnails: JPEGs this many pixels on the long side
CONFIDENCE, RANDOM, ERRORS = "confidence", "random", "errors"
ORDERS = (CONFIDENCE, RANDOM, ERRORS)
SHOWN_COLUMNS = ["key", "output_key", "status", "error", "error_kind", "colour_confidence", "input_chroma",
                 "temperature", "chroma_gain", "model_size", "precision", "model", "model_sha256", "bytes_in",
                 "bytes_out", "width", "height"]
KIND_NOTES = {  # a line under each heading of errors.html: what the kind means, what to do
    manifest.ErrorKind.UNREADABLE: "not an image, or a damaged one: the error says what the decoder found",
    manifest.ErrorKind.REFUSED: "refused, mostly unread: too large, not a regular file, a link leading outside the "
                                "input, or an output that would land in the input",
    manifest.ErrorKind.STORAGE: "the storage failed on it: run the job again (it resumes) once the storage is well",
    manifest.ErrorKind.CRASHED: "a decoder, the model or an encoder crashed its process on it twice",
    manifest.ErrorKind.OTHER: "anything else, most likely a bug: worth reporting with its error",
}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".jpg": codec.MEDIA_TYPES["jpeg"]}


class NoSuchRun(ValueError):
    """The run asked for is not under the output, or the output has no complete run: the message names the runs
    there."""


def pick_run(output: Location, run_id: str | None) -> tuple[str, bool]:
    """The run to review: `run_id` (with or without its "run=") if it is under the output, else the newest
    complete run; and whether it is complete. NoSuchRun, naming the runs there, otherwise."""
    complete, incomplete = manifest.runs(output)
    if run_id is None:
        if complete:
            return complete[-1], True  # run IDs are UTC timestamps of a fixed width: sorted is oldest first
        raise NoSuchRun(f"no complete run under {output.uri}/{manifest.FOLDER}; {_runs_there(complete, incomplete)}")
    run_id = run_id.removeprefix("run=")
    if run_id in complete or run_id in incomplete:
        return run_id, run_id in complete
    raise NoSuchRun(f"no run {run_id!r} under {output.uri}/{manifest.FOLDER}; {_runs_there(complete, incomplete)}")


def _runs_there(complete: list[str], incomplete: list[str], shown: int = 10) -> str:
    if not complete and not incomplete:
        return "no runs there at all: is it a colorize job's --output?"

    def newest(ids: list[str]) -> str:
        return ", ".join(ids[-shown:][::-1]) + (f" and {len(ids) - shown} older" if len(ids) > shown else "")

    return f"complete runs (newest first): {newest(complete) or 'none'}; incomplete: {newest(incomplete) or 'none'}"


def _batches(output: Location, folder: str, status: str, columns: list[str]) -> Iterable[pa.RecordBatch]:
    """The run's rows of one status, a batch at a time."""
    return manifest.dataset(output, folder).to_batches(columns=columns, filter=pc.field("status") == status)


def has_confidence(output: Location, folder: str) -> bool:
    """Whether the run's ok rows have a colour_confidence (the classification head's; NaN for the regression's)."""
    for batch in _batches(output, folder, manifest.Status.OK, ["colour_confidence"]):
        if np.isfinite(batch.column(0).to_numpy(zero_copy_only=False)).any():
            return True  # one model a run: the first finite value settles it
    return False


def kind_of(kind: str | None, error: str | None) -> str:
    """An error row's kind: its error_kind column, or for a row written before there was one, from its text."""
    return kind if kind in manifest.ERROR_KINDS else manifest.error_kind(manifest.Status.ERROR, error or "")


def confidence_score(batch: pa.RecordBatch) -> np.ndarray:
    """Least confident first; a NaN confidence last."""
    confidence = batch.column("colour_confidence").to_numpy(zero_copy_only=False)
    return np.where(np.isnan(confidence), np.inf, confidence)


def hash_score(seed: int) -> Callable[[pa.RecordBatch], np.ndarray]:
    """A seeded hash of each key: its N smallest are a random sample that the same seed gives again, whatever
    order the manifest's files are read in, without holding more than the N."""
    salt = str(seed).encode()

    def score(batch: pa.RecordBatch) -> np.ndarray:
        return np.array([int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8,
                                                        key=salt).digest(), "big")
                         for key in batch.column("key").to_pylist()], dtype=np.uint64)

    return score


def kind_score(batch: pa.RecordBatch) -> np.ndarray:
    """Error rows by kind, in manifest.ERROR_KINDS's order."""
    rank = {kind: i for i, kind in enumerate(manifest.ERROR_KINDS)}
    return np.array([rank[kind_of(k, e)] for k, e in zip(batch.column("error_kind").to_pylist(),
                                                          batch.column("error").to_pylist())], dtype=np.int64)


def smallest(batches: Iterable[pa.RecordBatch], score: Callable[[pa.RecordBatch], np.ndarray],
             limit: int) -> list[dict]:
    """The `limit` rows of lowest score, lowest first (ties by key), as dicts; never more than `limit` rows and
    one batch held at a time."""
    kept, kept_scores = None, None
    for batch in batches:
        if not batch.num_rows:
            continue
        table, scores = pa.Table.from_batches([batch]), score(batch)
        if kept is not None:
            table, scores = pa.concat_tables([kept, table]), np.concatenate([kept_scores, scores])
        if table.num_rows > limit:
            keep = np.argpartition(scores, limit - 1)[:limit]
            table, scores = table.take(keep), scores[keep]
        kept, kept_scores = table, scores
    if kept is None:
        return []
    rows = kept.to_pylist()
    return [rows[i] for i in sorted(range(len(rows)), key=lambda i: (kept_scores[i], rows[i]["key"]))]


def select(output: Location, folder: str, order: str, limit: int, seed: int) -> list[dict]:
    """The rows a gallery shows, in its order: ok rows least confident first, or a seeded random sample of
    them, or error rows by kind."""
    if order == ERRORS:
        return smallest(_batches(output, folder, manifest.Status.ERROR, SHOWN_COLUMNS), kind_score, limit)
    score = confidence_score if order == CONFIDENCE else hash_score(seed)
    return smallest(_batches(output, folder, manifest.Status.OK, SHOWN_COLUMNS), score, limit)


@dataclass
class ErrorListing:
    """A run's error rows by kind: how many, and the first ERRORS_SHOWN of each as (key, error), by key."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(manifest.ERROR_KINDS, 0))
    shown: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {k: [] for k in manifest.ERROR_KINDS})


def list_errors(output: Location, folder: str, cap: int = ERRORS_SHOWN) -> ErrorListing:
    """The run's error rows by kind, streamed: at most `cap` keys of each kind kept."""
    listing = ErrorListing()
    for batch in _batches(output, folder, manifest.Status.ERROR, ["key", "error", "error_kind"]):
        for key, error, kind in zip(*(batch.column(c).to_pylist() for c in ("key", "error", "error_kind"))):
            kind = kind_of(kind, error)
            listing.counts[kind] += 1
            if len(listing.shown[kind]) < cap:
                listing.shown[kind].append((key, error or ""))
    for keys in listing.shown.values():
        keys.sort()
    return listing


def thumbnails(data: bytes) -> tuple[bytes, bytes]:
    """An output's bytes -> (grey JPEG, colour JPEG), THUMB_SIDE on the long side. The grey is the output's own
    lightness with a = b = 0: the job keeps the original's L, so it is the original's grey, without the input."""
    image, _ = codec.decode(data)
    h, w = image.shape[:2]
    scale = min(1.0, THUMB_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = codec.to_8bit(small)
    grey = lab.recombine(lab.bgr_to_lab(small)[..., 0], np.zeros((1, 1, 2), np.float32))  # as the evaluation's
    return codec.encode(grey, "jpeg", THUMB_QUALITY), codec.encode(small, "jpeg", THUMB_QUALITY)


def put(gallery: Location, name: str, data: bytes) -> None:
    """Write one file of the gallery, whole, with its content type: an S3 static website serves an object with
    the type it was stored with, and would have a browser download an HTML page stored as octet-stream."""
    gallery.write_atomic(name, data, CONTENT_TYPES.get(name[name.rfind("."):]))


def add_thumbnails(output: Location, gallery: Location, rows: list[dict], threads: int = 8) -> int:
    """Each ok row's two thumbnails written under thumbs/ in the gallery (row["thumbs"]: their names), or
    row["note"]: why there are none (an output that cannot be read or decoded is a note, not a failure). How
    many rows have thumbnails."""
    def one(row: dict) -> dict:
        if row["status"] != manifest.Status.OK:
            return {"note": row["error"] or ""}
        if not row["output_key"]:
            return {"note": "the manifest names no output_key"}
        try:
            grey, colour = thumbnails(output.read(row["output_key"]))
        except (OSError, ValueError, cv2.error) as e:  # missing, unreadable or not an image any more
            return {"note": f"cannot show {row['output_key']}: {type(e).__name__}: {e}"}
        # Named by a hash of the key: any key (slashes, quotes, unicode) is a plain relative link.
        name = "thumbs/" + hashlib.blake2b(row["key"].encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        put(gallery, f"{name}-grey.jpg", grey)
        put(gallery, f"{name}-colour.jpg", colour)
        return {"thumbs": (f"{name}-grey.jpg", f"{name}-colour.jpg")}

    with ThreadPoolExecutor(threads) as pool:  # reads are network-bound on S3; OpenCV releases the GIL
        for row, found in zip(rows, pool.map(one, rows)):
            row.update(found)
    return sum("thumbs" in row for row in rows)


@dataclass(frozen=True)
class Header:
    """What each page says about the run at its top."""

    run_id: str
    complete: bool
    model: str  # the model file's name
    model_sha256: str
    counts: dict[str, int]  # manifest.counts_of_run()
    order: str  # the order used, in words
    errors: int


def page_name(page: int) -> str:
    """Page 1 is index.html (what an S3 website and a folder open first), then page-2.html, ..."""
    return "index.html" if page == 1 else f"page-{page}.html"


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _figures(row: dict) -> list[tuple[str, str]]:
    """The manifest's figures shown on a card, as (label, text)."""
    return [("confidence", _number(row["colour_confidence"], 3)), ("input chroma", _number(row["input_chroma"], 2)),
            ("temperature", _number(row["temperature"], 2)), ("chroma gain", _number(row["chroma_gain"], 2)),
            ("model size", str(row["model_size"] or "")), ("precision", row["precision"] or ""),
            ("model sha256", (row["model_sha256"] or "")[:12]),
            ("bytes in / out", f"{row['bytes_in'] or 0:,} / {row['bytes_out'] or 0:,}"),
            ("pixels", f"{row['width'] or 0} x {row['height'] or 0}")]


def render_card(row: dict, rank: int) -> str:
    """One image's card: grey | colour, its key and figures, and the accept / reject / skip buttons."""
    key = escape(row["key"])
    if "thumbs" in row:
        grey, colour = row["thumbs"]
        pictures = (f'<div class="pair"><figure><img src="{grey}" alt="grey {key}"><figcaption>grey (its L)'
                    f'</figcaption></figure><figure><img src="{colour}" alt="colour {key}"><figcaption>colour'
                    '</figcaption></figure></div>')
    else:
        pictures = f'<p class="note">{escape(row.get("note", ""))}</p>'
    if row["status"] == manifest.Status.OK:
        figures = "".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in _figures(row))
    else:
        figures = f"<dt>error kind</dt><dd>{escape(kind_of(row['error_kind'], row['error']))}</dd>"
    buttons = "".join(f'<button type="button" data-decision="{d}" aria-pressed="false">{d} ({d[0]})</button>'
                      for d in ("accept", "reject", "skip"))
    return (f'<article class="card" tabindex="0" data-key="{key}"><p class="rank">#{rank}'
            f'<span class="state"></span></p>{pictures}<h2 class="key">{key}</h2><dl class="figures">{figures}</dl>'
            f'<div class="decide">{buttons}</div></article>')


STYLE = """body{font:14px system-ui,sans-serif;margin:0;color:#222;background:#e8e8e8}
header{background:#fff;padding:.8em 1.5em;border-bottom:1px solid #ccc;position:sticky;top:0;z-index:1}
h1{font-size:18px;margin:0 0 .3em}header p{margin:.2em 0}code{font-size:13px}
nav.pages{padding:.6em 1.5em}nav.pages a,nav.pages .off{margin-right:1em}nav.pages .off{color:#999}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px;padding:0 1.5em}
.card{background:#fff;border:3px solid #fff;border-radius:6px;padding:8px;outline:none}
.card.selected{box-shadow:0 0 0 3px #2a6fdb}.card[data-decision=accept]{border-color:#2e9d46}
.card[data-decision=reject]{border-color:#d33}.card[data-decision=skip]{border-color:#aaa;border-style:dashed}
.rank{margin:0;font-size:12px;color:#666}.state{float:right;font-weight:bold;text-transform:uppercase}
.card[data-decision=accept] .state{color:#2e9d46}.card[data-decision=reject] .state{color:#d33}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:6px}figure{margin:0}
.pair img{width:100%;height:170px;object-fit:contain;background:#f2f2f2;display:block}
figcaption{font-size:11px;color:#666;text-align:center}
.key{font-size:14px;margin:.4em 0;overflow-wrap:anywhere}.note{color:#a00;overflow-wrap:anywhere}
dl.figures{display:grid;grid-template-columns:auto 1fr auto 1fr;gap:1px 8px;font-size:12px;margin:0 0 .5em}
dt{color:#666}dd{margin:0}.decide button{margin-right:6px;cursor:pointer}
.decide button[aria-pressed=true]{font-weight:bold;background:#333;color:#fff}
table.errors{border-collapse:collapse;background:#fff;margin:0 1.5em 1em}
table.errors td,table.errors th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}section{margin-bottom:1.5em}section h2,section p{margin:.5em 1.5em}"""

# The review keys and buttons; decisions in localStorage under the run's ID (the same on every page of the run),
# exported as a CSV of the manifest's keys. Keys come from the data-key attributes: no key is ever in the JS.
SCRIPT = """
const storeKey = "colorize-review:" + document.body.dataset.run;
const cards = Array.from(document.querySelectorAll(".card"));
let decisions = {}, selected = -1;
function load() {
  try { decisions = JSON.parse(localStorage.getItem(storeKey) || "{}"); } catch (e) { decisions = {}; }
}
function show(card) {
  const d = decisions[card.dataset.key], decision = d ? d.decision : "";
  card.dataset.decision = decision;
  card.querySelector(".state").textContent = decision;
  card.querySelectorAll("button[data-decision]").forEach(b =>
    b.setAttribute("aria-pressed", b.dataset.decision === decision));
}
function showAll() {
  cards.forEach(show);
  document.getElementById("decided").textContent = Object.keys(decisions).length;
}
function select(i) {
  if (i < 0 || i >= cards.length) return;
  if (selected >= 0) cards[selected].classList.remove("selected");
  selected = i;
  cards[i].classList.add("selected");
  if (document.activeElement !== cards[i]) cards[i].focus({preventScroll: true});
  cards[i].scrollIntoView({block: "nearest"});
}
function decide(i, decision) {
  decisions[cards[i].dataset.key] = {decision: decision, when: new Date().toISOString()};
  localStorage.setItem(storeKey, JSON.stringify(decisions));
  showAll();
  select(Math.min(i + 1, cards.length - 1));
}
cards.forEach((card, i) => {
  card.addEventListener("focus", () => { if (selected !== i) select(i); });
  card.addEventListener("click", () => select(i));
  card.querySelectorAll("button[data-decision]").forEach(b => b.addEventListener("click", e => {
    e.stopPropagation();
    decide(i, b.dataset.decision);
  }));
});
const moves = {j: 1, ArrowRight: 1, ArrowDown: 1, k: -1, ArrowLeft: -1, ArrowUp: -1};
const choices = {a: "accept", r: "reject", s: "skip"};
document.addEventListener("keydown", e => {
  if (e.ctrlKey || e.metaKey || e.altKey || !cards.length) return;
  if (e.key in moves) select(selected < 0 ? 0 : selected + moves[e.key]);
  else if (e.key in choices) decide(selected < 0 ? 0 : selected, choices[e.key]);
  else return;
  e.preventDefault();
});
function csvField(text) {
  text = String(text);
  return /[",\\r\\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}
document.getElementById("export").addEventListener("click", () => {
  const lines = ["key,decision,when"];
  const byKey = Object.entries(decisions).sort((x, y) => x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0);
  for (const [key, d] of byKey) lines.push([key, d.decision, d.when].map(csvField).join(","));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\\r\\n") + "\\r\\n"], {type: "text/csv"}));
  link.download = "decisions.csv";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
});
window.addEventListener("storage", e => { if (e.key === storeKey) { load(); showAll(); } });  // another tab's
load();
showAll();
"""


def _page(header: Header, title: str, body: str, tools: bool) -> str:
    """A whole page: the run's header (with the review tools on the gallery's pages), then `body`."""
    counts = ", ".join(f"{escape(status)} {n:,}" for status, n in header.counts.items())
    state = "" if header.complete else " <b>(incomplete: the job did not finish it)</b>"
    review = ('<p class="tools"><button type="button" id="export">Export decisions</button> <b id="decided">0'
              '</b> decided in this run &middot; keys: <kbd>a</kbd> accept, <kbd>r</kbd> reject, <kbd>s</kbd> skip, '
              '<kbd>j</kbd>/<kbd>k</kbd> or arrows move. Decisions stay in this browser until exported.</p>'
              if tools else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>{escape(title)}</title><style>{STYLE}</style></head><body data-run="{escape(header.run_id)}">
<header><h1>Review of run <code>{escape(header.run_id)}</code>{state}</h1>
<p>Model <b>{escape(header.model)}</b> (sha256 {escape(header.model_sha256[:12])}) &middot; rows: {counts} &middot;
order: {escape(header.order)} &middot; <a href="index.html">gallery</a> &middot;
<a href="errors.html">errors ({header.errors:,})</a></p>{review}</header>
{body}
{f"<script>{SCRIPT}</script>" if tools else ""}
</body></html>
"""


def _nav(page: int, pages: int) -> str:
    previous = (f'<a rel="prev" href="{page_name(page - 1)}">&larr; previous</a>' if page > 1
                else '<span class="off">&larr; previous</span>')
    following = (f'<a rel="next" href="{page_name(page + 1)}">next &rarr;</a>' if page < pages
                 else '<span class="off">next &rarr;</span>')
    return f'<nav class="pages">{previous}<span class="where">page {page} of {pages}</span> {following}</nav>'


def render_pages(header: Header, rows: list[dict], page_size: int = PAGE_SIZE) -> list[str]:
    """The gallery's pages, `page_size` cards each (at least one page, which says when there is nothing)."""
    pages = max(1, math.ceil(len(rows) / page_size))
    rendered = []
    for page in range(1, pages + 1):
        first = (page - 1) * page_size
        cards = "".join(render_card(row, first + i + 1) for i, row in enumerate(rows[first:first + page_size]))
        empty = "" if rows else '<p class="note" style="margin:0 1.5em">Nothing to show in this order.</p>'
        nav = _nav(page, pages)
        rendered.append(_page(header, f"Review of run {header.run_id}, page {page} of {pages}", f"{nav}{empty}"
                              f'<main id="cards">{cards}</main>{nav}', tools=True))
    return rendered


def render_errors(header: Header, listing: ErrorListing) -> str:
    """errors.html: a section per kind that has error rows, its count and each key with its error text."""
    sections = []
    for kind in manifest.ERROR_KINDS:
        count, shown = listing.counts[kind], listing.shown[kind]
        if not count:
            continue
        rows = "".join(f"<tr><td>{escape(key)}</td><td>{escape(error)}</td></tr>" for key, error in shown)
        more = (f'<p class="more">and {count - len(shown):,} more: the manifest\'s rows with status "error" and '
                f'error_kind "{escape(kind)}"</p>' if count > len(shown) else "")
        sections.append(f'<section id="kind-{escape(kind)}"><h2>{escape(kind)} <span class="count">({count:,})</span>'
                        f'</h2><p>{escape(KIND_NOTES[kind])}</p><table class="errors"><tr><th>key</th><th>error</th>'
                        f"</tr>{rows}</table>{more}</section>")
    body = "".join(sections) or '<section><p>No errors in this run.</p></section>'
    return _page(header, f"Errors of run {header.run_id}", body, tools=False)


@dataclass(frozen=True)
class Gallery:
    """What write_gallery wrote."""

    location: Location
    order: str  # in words
    shown: int  # cards
    thumbnails: int  # cards with their two thumbnails
    pages: int
    errors: int


def _model_of(output: Location, folder: str, rows: list[dict]) -> tuple[str, str]:
    """The run's model file name and sha256 (one model a run): from a row shown, else the manifest's first row."""
    if not rows:
        rows = manifest.dataset(output, folder).head(1, columns=["model", "model_sha256"]).to_pylist()
    model, sha256 = (rows[0]["model"], rows[0]["model_sha256"]) if rows else ("", "")
    return (model or "").rstrip("/").rsplit("/", 1)[-1], sha256 or ""


def resolve_order(output: Location, folder: str, order: str | None, seed: int) -> tuple[str, str]:
    """The order a gallery uses, and in words: `order`, or for None (and for CONFIDENCE on a run that has no
    confidence) least confident first where the run has a colour_confidence, else a seeded random sample."""
    if order in (None, CONFIDENCE):
        if has_confidence(output, folder):
            return CONFIDENCE, "least confident first (colour_confidence)"
        return RANDOM, f"a random sample, seed {seed} (the run has no colour_confidence: a regression head)"
    return order, f"a random sample, seed {seed}" if order == RANDOM else "error rows only, by kind"


def write_gallery(output: Location, run_id: str, complete: bool, gallery: Location, order: str | None = None,
                  limit: int = LIMIT, seed: int = 0, page_size: int = PAGE_SIZE, threads: int = 8) -> Gallery:
    """Write the review gallery of one run of `output` into `gallery`. `order` None: least confident first where
    the run has a colour_confidence (the classification head), else a random sample seeded by `seed`."""
    folder = manifest.folder_of(output, run_id)
    order, words = resolve_order(output, folder, order, seed)
    rows = select(output, folder, order, limit, seed)
    made = add_thumbnails(output, gallery, rows, threads)
    listing = list_errors(output, folder)
    model, sha256 = _model_of(output, folder, rows)
    header = Header(run_id, complete, model, sha256, manifest.counts_of_run(output, folder), words,
                    sum(listing.counts.values()))
    pages = render_pages(header, rows, page_size)
    put(gallery, "errors.html", render_errors(header, listing).encode("utf-8"))
    for page in range(len(pages), 0, -1):  # index.html last: once it is there, so is what it links to
        put(gallery, page_name(page), pages[page - 1].encode("utf-8"))
    stale = len(pages) + 1  # an earlier, longer gallery's last pages: no longer linked, but they would be found
    while gallery.exists(page_name(stale)):
        gallery.delete(page_name(stale))
        stale += 1
    return Gallery(gallery, words, len(rows), made, len(pages), header.errors)
