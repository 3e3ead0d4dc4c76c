"""The job's own metrics for Prometheus, declared once, in the manifest's vocabulary (manifest.py).

They are recorded on the driver, from the manifest rows as they come back (pipeline.run's on_rows): every row
passes there once, with its status, error kind, bytes and stage times, so nothing is counted twice and no stage
pays for them. Ray exports them on each node's metrics port (`ray start --metrics-export-port`, 8080 under
KubeRay) with the prefix "ray_": a Counter "colorize_images" is scraped as `ray_colorize_images_total`. Every
metric has the tag run_id, the manifest folder's name (_manifest/run=RUN_ID) and Ray Data's dataset name.
The alert rules and the dashboard (k8s/monitoring/) use these names; tests/test_monitoring.py holds them to it.
"""
import time
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from colorize_core.manifest import Status

PREFIX = "ray_"  # what Ray puts before every ray.util.metrics name it exports
STAGES = ("decode", "predict", "encode", "write")  # the manifest's STAGE_s columns, as the histogram's tag
SECONDS = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]  # histogram bounds: a tile to a 100 MP scan

# name -> (kind, tags beside run_id, help): what ray.util.metrics declares and Prometheus sees
METRICS = {
    "colorize_images": ("counter", ("status", "error_kind"),
                        "images finished, by manifest status and error kind (manifest.ERROR_KINDS; '' unless error)"),
    "colorize_bytes_read": ("counter", (), "bytes of the originals read"),
    "colorize_bytes_written": ("counter", (), "bytes of the colour outputs written"),
    "colorize_stage_seconds": ("histogram", ("stage",), "seconds an image spent in each stage: " + ", ".join(STAGES)),
    "colorize_images_in_flight": ("gauge", (), "images handed to the chain and not yet in the manifest"),
    "colorize_images_listed": ("gauge", (), "images listed (or read from the input list) so far"),
    "colorize_run_start_time_seconds": ("gauge", (), "when the run started, Unix time"),
    "colorize_last_finished_time_seconds": ("gauge", (), "when an image last finished (the start until one has)"),
    "colorize_max_error_fraction": ("gauge", (), "the run's --max-error-fraction, for the alert to compare with"),
}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
EXPORTED = {PREFIX + name + suffix for name, (kind, _, _) in METRICS.items() for suffix in SUFFIXES[kind]}


class RunMetrics:
    """One run's metrics, on the driver: told the keys listed, the images taken into the chain, and the rows
    finished; each call costs a few ray.util.metrics records a batch (and one per stage time)."""

    def __init__(self, run_id: str, max_error_fraction: float):
        from ray.util import metrics  # here: the job starts Ray first

        made = {"counter": metrics.Counter, "gauge": metrics.Gauge}
        self.metric = {}
        for name, (kind, tags, description) in METRICS.items():
            keys = ("run_id", *tags)
            self.metric[name] = (metrics.Histogram(name, description, boundaries=SECONDS, tag_keys=keys)
                                 if kind == "histogram" else made[kind](name, description, tag_keys=keys))
            self.metric[name].set_default_tags({"run_id": run_id})
        self.taken_so_far, self.finished, self.listed_so_far = 0, 0, 0
        now = time.time()
        self.metric["colorize_run_start_time_seconds"].set(now)
        self.metric["colorize_last_finished_time_seconds"].set(now)
        self.metric["colorize_max_error_fraction"].set(max_error_fraction)
        self.metric["colorize_images_listed"].set(0)
        self.metric["colorize_images_in_flight"].set(0)

    def keys(self, chunks: Iterable[list[str]]) -> Iterator[list[str]]:
        """Pass the key chunks through, counting them (as progress.Progress.keys)."""
        for chunk in chunks:
            self.listed_so_far += len(chunk)
            self.metric["colorize_images_listed"].set(self.listed_so_far)
            yield chunk

    def taken(self, n: int) -> None:
        """`n` more images handed to the chain (a wave) or given rows without it (what the listing passed over)."""
        self.taken_so_far += n
        self.metric["colorize_images_in_flight"].set(self.taken_so_far - self.finished)

    def rows(self, table: pa.Table) -> None:
        """A batch of finished manifest rows."""
        groups = table.group_by(["status", "error_kind"]).aggregate([([], "count_all")])
        for status, kind, count in zip(*(groups.column(c).to_pylist() for c in ("status", "error_kind", "count_all"))):
            self.metric["colorize_images"].inc(count, tags={"status": status, "error_kind": kind})
        for name, column in (("colorize_bytes_read", "bytes_in"), ("colorize_bytes_written", "bytes_out")):
            if total := int(pc.sum(table.column(column)).as_py() or 0):
                self.metric[name].inc(total)
        ok = table.filter(pc.equal(table.column("status"), Status.OK))
        histogram = self.metric["colorize_stage_seconds"]
        for stage in STAGES:  # ok rows only: a skipped or failed row's zero is not a stage's time
            for seconds in np.asarray(ok.column(f"{stage}_s")):
                histogram.observe(float(seconds), tags={"stage": stage})
        self.finished += table.num_rows
        self.metric["colorize_images_in_flight"].set(self.taken_so_far - self.finished)
        self.metric["colorize_last_finished_time_seconds"].set(time.time())

    def ended(self) -> None:
        """The run is over (done, or stopped by an error): nothing is in flight any more."""
        self.metric["colorize_images_in_flight"].set(0)
