"""The fixity audit (jobs.verify): every file the runs' manifests say they wrote (outputs and XMP sidecars) read
again and its sha256 compared with the one recorded when it was written; what is missing, what changed, and what
is under the output that no run wrote.

It streams over any number of keys in bounded memory: the manifests' expected files and the output's listing are
each spread over buckets by a hash of the key (temporary Arrow files), and one bucket at a time is compared, so at
most BUCKET_KEYS keys are held at once, whatever the output holds.
"""
import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from colorize_core import manifest
from colorize_core.storage import Location

BUCKET_KEYS = 200_000  # keys compared at a time: about 40 MB of Python strings
BATCH = 10_000  # keys written to the buckets at a time
_PAIRS = pa.schema([("key", pa.string()), ("sha256", pa.string())])

# What the audit finds for a file; the first three are faults (jobs.verify exits 1).
MISSING, CHANGED, UNEXPECTED = "missing", "changed", "unexpected"
UNRECORDED = "unrecorded"  # there, and named by a manifest, but with no sha256 to check it against


@dataclass
class Audit:
    """What the audit found: counts, and `on_finding(kind, key, detail)` told of each file that is not "ok"."""

    on_finding: Callable[[str, str, str], None] = lambda kind, key, detail: None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((
        "ok", MISSING, CHANGED, UNEXPECTED, UNRECORDED), 0))
    runs: int = 0

    @property
    def faults(self) -> int:
        return self.counts[MISSING] + self.counts[CHANGED] + self.counts[UNEXPECTED]

    def found(self, kind: str, key: str, detail: str = "") -> None:
        self.counts[kind] += 1
        if kind != "ok":
            self.on_finding(kind, key, detail)


def _bucket(keys: list[str], buckets: int) -> list[int]:
    return [int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little") % buckets for k in keys]


class _Buckets:
    """(key, sha256) pairs spread over `count` Arrow stream files in `folder`, by a hash of the key; in order."""

    def __init__(self, folder: str, name: str, count: int):
        self.paths = [os.path.join(folder, f"{name}-{i}.arrows") for i in range(count)]
        self.writers = [pa.ipc.new_stream(path, _PAIRS) for path in self.paths]

    def add(self, keys: list[str], shas: list[str]) -> None:
        table = pa.table({"key": keys, "sha256": shas}, schema=_PAIRS)
        buckets = np.asarray(_bucket(keys, len(self.paths)))
        for i, writer in enumerate(self.writers):
            if (rows := np.flatnonzero(buckets == i)).size:
                writer.write_table(table.take(rows))

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    def read(self, i: int) -> Iterator[tuple[str, str]]:
        with pa.ipc.open_stream(self.paths[i]) as reader:
            for batch in reader:
                yield from zip(batch.column("key").to_pylist(), batch.column("sha256").to_pylist())


def _expected(output: Location, folder: str) -> Iterator[tuple[list[str], list[str]]]:
    """(keys, sha256s) of what a run's manifest says it wrote (outputs and sidecars; "" where it recorded no
    sha256: a run before fixity was recorded), and of the outputs it found there already (skipped, no sha256)."""
    dataset = pads.dataset(folder, filesystem=output.fs, format="parquet", schema=manifest.SCHEMA)
    wanted = (pc.field("status") == manifest.Status.OK) | ((pc.field("status") == manifest.Status.SKIPPED)
                                                    & (pc.field("error") == ""))  # not --skip-colour's rows
    columns = ["output_key", "output_sha256", "sidecar_key", "sidecar_sha256"]
    for batch in dataset.scanner(columns=columns, filter=wanted, batch_size=BATCH).to_batches():
        rows = {c: [v or "" for v in batch.column(c).to_pylist()] for c in columns}
        sidecars = [(k, s) for k, s in zip(rows["sidecar_key"], rows["sidecar_sha256"]) if k]
        yield rows["output_key"] + [k for k, _ in sidecars], rows["output_sha256"] + [s for _, s in sidecars]


def _listed(output: Location) -> Iterator[list[str]]:
    """The files under the output, a batch at a time, hidden ones too, less the output's own _manifest/ folder."""
    batch: list[str] = []

    def hidden(key: str, status: str, reason: str) -> None:  # hidden files are files too; folders are not
        if not key.endswith("/"):
            batch.append(key)

    for key in output.iter_keys(None, passed_over=hidden):
        if key and not key.endswith("/"):  # not an S3 folder marker (pyarrow's, "prefix/")
            batch.append(key)
        if len(batch) >= BATCH:
            yield [k for k in batch if not k.startswith(manifest.FOLDER + "/")]
            batch.clear()
    yield [k for k in batch if not k.startswith(manifest.FOLDER + "/")]


def audit(output: Location, audit: Audit, threads: int = 8) -> Audit:
    """Compare every file under `output` with what its runs' manifests recorded (module docstring). The latest
    run's sha256 for a key counts (a later --overwrite rewrote it); a key that only skipped rows name is
    UNRECORDED if it is there, and no fault if it is not."""
    complete, incomplete = manifest.runs(output)
    audit.runs = len(complete) + len(incomplete)
    # Rows of runs killed part-way count too: a row is written only after its file was.
    folders = [manifest.folder_of(output, r) for r in sorted(complete + incomplete)]
    rows = sum(pads.dataset(f, filesystem=output.fs, format="parquet", schema=manifest.SCHEMA).count_rows()
               for f in folders)
    count = max(1, math.ceil(rows / BUCKET_KEYS))
    with tempfile.TemporaryDirectory(prefix="colorize-verify-") as scratch, \
            ThreadPoolExecutor(threads) as pool:
        expected, listed = _Buckets(scratch, "expected", count), _Buckets(scratch, "listed", count)
        for folder in folders:  # oldest first: a later run's record of a key overrides an earlier one's
            for keys, shas in _expected(output, folder):
                expected.add(keys, shas)
        for keys in _listed(output):
            listed.add(keys, [""] * len(keys))
        expected.close(), listed.close()
        for i in range(count):
            _compare(output, expected, listed, i, audit, pool)
    return audit


def _compare(output: Location, expected: _Buckets, listed: _Buckets, i: int, audit: Audit,
             pool: ThreadPoolExecutor) -> None:
    """One bucket: each listed file against its recorded sha256, then what was recorded but is not there."""
    recorded: dict[str, str] = {}
    for key, sha in expected.read(i):
        if sha or key not in recorded:  # a skipped row (no sha256) never hides the sha256 of the row that wrote it
            recorded[key] = sha
    present = [key for key, _ in listed.read(i)]
    for key in present:
        if key not in recorded:
            audit.found(UNEXPECTED, key, "no run's manifest wrote it")
        elif not recorded[key]:
            audit.found(UNRECORDED, key, "no sha256 recorded: written before fixity was recorded, or its row lost")
    checked = [key for key in present if recorded.get(key)]
    for key, sha in zip(checked, pool.map(lambda k: _sha256_or_none(output, k), checked)):
        if sha is None:
            audit.found(MISSING, key, "listed, then gone before it was read")
        elif sha == recorded[key]:
            audit.found("ok", key)
        else:
            audit.found(CHANGED, key, f"sha256 {sha}, recorded {recorded[key]}")
    for key in sorted(set(recorded) - set(present)):
        if recorded[key]:
            audit.found(MISSING, key, f"recorded sha256 {recorded[key]}")


def _sha256_or_none(output: Location, key: str) -> str | None:
    try:
        return output.sha256(key)
    except FileNotFoundError:
        return None
