"""The manifest, declared once: one row per input of a run, its columns, their types, and its error kinds (the
status values are status.py's, Status, read here as manifest.Status too).

The stages fill these columns (stages.py), the job writes them as Parquet under OUTPUT/_manifest/run=RUN_ID/
with this schema (types declared, not inferred from each block), and the jobs, the evaluation and users read
them back. A stage that adds or drops a column without declaring it here fails the run's first block.

A run's folder is complete once it holds _COMPLETE.json, written last (after every row is in Parquet): a run
stopped or killed part-way leaves Parquet files but no marker, and read_all skips it and says so.
"""
import builtins
import json
import os
import tempfile
import uuid
from datetime import datetime, timezone

import numpy as np
import pyarrow.fs as pafs
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from colorize_core.status import FINAL_STATUSES, ErrorKind, Status  # noqa: F401 (manifest.Status, .FINAL_STATUSES)
from colorize_core.storage import Location, retrying

FOLDER = "_manifest"
ROWS_PER_FILE = 1000
MARKER = "_COMPLETE.json"  # Parquet readers (pyarrow, DuckDB globs of *.parquet) pass over it

ERROR_KINDS = tuple(ErrorKind)
# An error text's start (the exception's type name, as stages.error_text writes it) -> its kind; first match.
KIND_OF_START = (("Crashed:", ErrorKind.CRASHED), ("ImageError: refused key", ErrorKind.REFUSED),
                 ("RefusedInput:", ErrorKind.REFUSED), ("RefusedOutput:", ErrorKind.REFUSED),
                 ("ImageError:", ErrorKind.UNREADABLE), ("HeaderError:", ErrorKind.UNREADABLE),
                 ("folder cannot be listed", ErrorKind.STORAGE))

SCHEMA = pa.schema([
    ("key", pa.string()),  # the input, relative to --input
    ("status", pa.string()),  # ok, skipped (output there already, or --skip-colour), error
    ("error", pa.string()),  # why, for an error row, or "already in colour" for a row --skip-colour skipped
    ("error_kind", pa.string()),  # an error row's ErrorKind (error_kind()); "" for the others
    ("format", pa.string()),  # the input's format, from its bytes (jpeg, png, tiff, webp, bmp)
    ("bit_depth", pa.int64()),  # 8 or 16 bits a channel
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("bytes_in", pa.int64()),
    ("input_sha256", pa.string()),  # of the bytes read ("" where nothing was read: skipped, refused unread)
    ("input_profile", pa.string()),  # what was done with its ICC profile ("" none: read as sRGB), e.g. "grey
    # profile converted to sRGB"; the output of a converted input carries the sRGB profile
    ("input_chroma", pa.float64()),  # the input's colour beyond a single tone (lab.lightness): ~0 for grey and
    # toned prints, 0-30 for colour photos (those with one dominant cast read low)
    ("decode_s", pa.float64()),
    ("decode_node", pa.string()),  # the Ray node that read and decoded it ("" outside Ray)
    ("colour_confidence", pa.float64()),  # 0..1 (classification head); NaN for the regression head
    ("temperature", pa.float64()),  # the annealed-mean temperature used; NaN for the regression head
    ("chroma_gain", pa.float64()),  # the chroma gain used
    ("model_size", pa.int64()),  # the side of the grey image the network saw (--model-size)
    ("flip_average", pa.bool_()),  # the image and its mirror predicted and averaged (--flip-average)
    ("upsampling", pa.string()),  # how the predicted colour was brought to the image's size (--upsampling)
    ("precision", pa.string()),  # what the model computed in: float32 or bfloat16 (--precision auto: decided per
    # model worker, runtime.resolve_precision); "" where it did not run
    ("predict_s", pa.float64()),
    ("predict_node", pa.string()),
    ("output_key", pa.string()),  # where the colour image is, relative to --output; "" for an error row
    ("bytes_out", pa.int64()),
    ("output_sha256", pa.string()),  # of the bytes written ("" where nothing was): what jobs.verify checks
    ("metadata", pa.string()),  # what of the original's metadata was carried into the output
    ("sidecar_key", pa.string()),  # the output's XMP sidecar (KEY.xmp), where its format cannot hold the record
    ("sidecar_sha256", pa.string()),
    ("c2pa", pa.string()),  # signed (C2PA content credentials, --c2pa-cert) or none
    ("encode_s", pa.float64()),
    ("write_s", pa.float64()),
    ("encode_node", pa.string()),
    ("model", pa.string()),  # the model file's URI
    ("model_sha256", pa.string()),
    ("run_id", pa.string()),
    ("timestamp", pa.timestamp("ms")),  # when the row was finished, UTC
])
COLUMNS = tuple(SCHEMA.names)


def error_kind(status: str, error: str) -> ErrorKind | str:
    """An error row's kind from its error text; "" for a row that is not an error."""
    if status != Status.ERROR:
        return ""
    for start, kind in KIND_OF_START:
        if error.startswith(start):
            return kind
    exception = getattr(builtins, error.split(":", 1)[0], None)  # OSError and its kin: the storage's
    return ErrorKind.STORAGE if isinstance(exception, type) and issubclass(exception, OSError) else ErrorKind.OTHER


def error_kinds(statuses, errors) -> np.ndarray:
    """error_kind() of each row: the manifest's error_kind column."""
    return np.array([error_kind(s, e) for s, e in zip(statuses, errors)], dtype=object)


def to_table(rows: dict[str, np.ndarray]) -> pa.Table:
    """A batch of finished manifest rows (encode_and_write's output) as a table of exactly SCHEMA (NaN stays
    NaN: "not applicable" reads the same in every block). ValueError names a column made but not declared."""
    if set(rows) != set(COLUMNS):
        raise ValueError(f"manifest columns differ from manifest.SCHEMA: undeclared {sorted(set(rows) - set(COLUMNS))}, "
                         f"missing {sorted(set(COLUMNS) - set(rows))}")
    return pa.table([pa.array(rows[field.name], type=field.type) for field in SCHEMA],
                    schema=SCHEMA)


def folder_of(output: Location, run_id: str) -> str:
    """Where a run's manifest files go under the output."""
    return output.path(f"{FOLDER}/run={run_id}")


def noted_rows(keys: list[str], statuses: list[str], reasons: list[str], **same: str) -> pa.Table:
    """Manifest rows for inputs decided without being read (what the listing passed over: storage.iter_keys):
    their key, status and reason, `same` (model, model_sha256, run_id) on every row, the rest empty."""
    empty = {pa.string(): "", pa.int64(): 0, pa.float64(): np.nan, pa.bool_(): False}
    now = np.datetime64("now", "ms")
    columns = {"key": keys, "status": statuses, "error": reasons, "error_kind": error_kinds(statuses, reasons),
               **{k: [v] * len(keys) for k, v in same.items()}}
    return pa.table([pa.array(columns.get(f.name, [now if f.type == pa.timestamp("ms") else empty[f.type]] * len(keys)),
                              type=f.type) for f in SCHEMA], schema=SCHEMA)


class Writer:
    """Writes a run's finished rows as Parquet files of at least ROWS_PER_FILE rows under its manifest folder:
    on S3 a file is a PUT, and a resumed run with nothing to do should cost about a request per thousand keys.

    A file that cannot be written, after the driver's retries, raises StorageGone; save_locally() then keeps the
    rows not yet written in a local Parquet file, so that nothing the run learnt is lost."""

    def __init__(self, output: Location, run_id: str):
        self.output, self.run_id, self.pending, self.saved = output, run_id, [], ""

    def add(self, rows: pa.Table) -> None:
        self.pending.append(rows)
        if sum(t.num_rows for t in self.pending) >= ROWS_PER_FILE:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        buffer = pa.BufferOutputStream()
        pq.write_table(pa.concat_tables(self.pending), buffer)
        data = buffer.getvalue().to_pybytes()
        name = f"{FOLDER}/run={self.run_id}/{uuid.uuid4().hex}.parquet"
        retrying(lambda: self.output.write_atomic(name, data))
        self.pending.clear()

    def save_locally(self) -> str:
        """The rows not yet written, into a local Parquet file (for when the storage is gone); its path."""
        self.saved = os.path.join(tempfile.gettempdir(), f"colorize-manifest-run={self.run_id}-unwritten.parquet")
        pq.write_table(pa.concat_tables([SCHEMA.empty_table(), *self.pending]), self.saved)
        return self.saved


def read(output: Location, folder: str) -> dict[str, np.ndarray]:
    """The manifest rows a run wrote, as numpy columns."""
    table = dataset(output, folder).to_table()
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def counts_of_rows(rows: dict[str, np.ndarray]) -> dict[str, int]:
    """How many rows ended in each final status."""
    return {status: int(np.sum(rows["status"] == status)) for status in FINAL_STATUSES}


def dataset(output: Location, folder: str) -> pads.Dataset:
    """A run's manifest folder as a pyarrow dataset of SCHEMA, to scan a batch at a time."""
    return pads.dataset(folder, filesystem=output.fs, format="parquet", schema=SCHEMA)


def counts_of_run(output: Location, folder: str) -> dict[str, int]:
    """How many rows of a run's manifest ended in each final status, read a batch at a time (ten million rows
    never in memory at once)."""
    total = dict.fromkeys(FINAL_STATUSES, 0)
    for batch in dataset(output, folder).to_batches(columns=["status"]):
        for item in pc.value_counts(batch.column("status")).to_pylist():
            total[item["values"]] = total.get(item["values"], 0) + item["counts"]
    return total


def failures(output: Location, folder: str, limit: int) -> list[tuple[str, str]]:
    """The first `limit` error rows of a run's manifest, as (key, error)."""
    found = []
    scanner = dataset(output, folder).scanner(columns=["key", "error"], filter=pc.field("status") == Status.ERROR)
    for batch in scanner.to_batches():
        found += zip(batch.column("key").to_pylist(), batch.column("error").to_pylist())
        if len(found) >= limit:
            break
    return found[:limit]


def mark_complete(output: Location, run_id: str, counted: dict[str, int]) -> None:
    """Write the run's completion marker, last: its row count and counts by status (counts_of_run())."""
    marker = {"run_id": run_id, "rows": sum(counted.values()), **counted,
              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    output.write_atomic(f"{FOLDER}/run={run_id}/{MARKER}", json.dumps(marker, indent=1).encode())


def runs(output: Location) -> tuple[list[str], list[str]]:
    """The run IDs under the output's manifest folder: (complete ones, incomplete ones), each sorted."""
    infos = output.fs.get_file_info(pafs.FileSelector(output.path(FOLDER), allow_not_found=True))
    ids = sorted(i.base_name[len("run="):] for i in infos if i.type == pafs.FileType.Directory
                 and i.base_name.startswith("run="))
    complete = [r for r in ids if output.exists(f"{FOLDER}/run={r}/{MARKER}")]
    return complete, [r for r in ids if r not in complete]


def read_all(output: Location) -> tuple[pa.Table, int]:
    """Every complete run's rows, with a `run` column (the run ID), and how many incomplete runs were skipped."""
    complete, incomplete = runs(output)
    tables = []
    for r in complete:
        table = pads.dataset(output.path(f"{FOLDER}/run={r}"), filesystem=output.fs, format="parquet",
                             schema=SCHEMA).to_table()
        tables.append(table.append_column("run", pa.array([r] * table.num_rows, pa.string())))
    empty = SCHEMA.empty_table().append_column("run", pa.array([], pa.string()))
    return pa.concat_tables([empty, *tables]), len(incomplete)
