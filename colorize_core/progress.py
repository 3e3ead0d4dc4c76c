"""What the job shows while it runs: images done of those listed, images/s and the time left.

On a terminal the line is rewritten in place; otherwise (a log, `ray job logs`, a Kubernetes pod) a line is
printed every LOG_EVERY_S seconds, so that a long run's log stays readable. Ray Data's own progress shows
neither the rate nor the time left for this chain, and on a log it prints a table of every operator instead.
"""
import sys
import time
from typing import TextIO

import pyarrow as pa
import pyarrow.compute as pc

from colorize_core.manifest import Status

LOG_EVERY_S = 10.0
TERMINAL_EVERY_S = 0.5


def duration(seconds: float) -> str:
    """Seconds as a short human figure: 45 s, 12 min, 3 h 20 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


class Progress:
    """Counts the keys listed and the manifest rows finished (pipeline.run's on_rows), and prints a line."""

    def __init__(self, out: TextIO = sys.stdout, every_s: float | None = None):
        self.out = out
        self.terminal = out.isatty()
        self.every_s = every_s if every_s is not None else TERMINAL_EVERY_S if self.terminal else LOG_EVERY_S
        self.listed, self.listing_done = 0, False
        self.counts = {Status.OK: 0, Status.SKIPPED: 0, Status.ERROR: 0}
        self.start = self.last = time.monotonic()

    def keys(self, chunks):
        """Pass the key chunks through, counting them; the total is known once the listing is done."""
        for chunk in chunks:
            self.listed += len(chunk)
            yield chunk
        self.listing_done = True

    def rows(self, table: pa.Table) -> None:
        """A batch of finished manifest rows."""
        for item in pc.value_counts(table.column("status")).to_pylist():
            self.counts[item["values"]] = self.counts.get(item["values"], 0) + item["counts"]
        if time.monotonic() - self.last >= self.every_s:
            self.show()

    def line(self) -> str:
        finished = sum(self.counts.values())
        seconds = time.monotonic() - self.start
        rate = self.counts[Status.OK] / seconds if seconds > 0 else 0.0
        per_row = seconds / finished if finished else 0.0  # skipped rows are fast: the time left counts every row
        total = f"{self.listed:,}" if self.listing_done else f"{self.listed:,}+ (still listing)"
        left = duration((self.listed - finished) * per_row) + " left" if self.listing_done and finished else "time left: --"
        failed = f", {self.counts[Status.ERROR]:,} failed" if self.counts[Status.ERROR] else ""
        skipped = f", {self.counts[Status.SKIPPED]:,} skipped" if self.counts[Status.SKIPPED] else ""
        return f"{finished:,} of {total} images{skipped}{failed}; {rate:.2f} images/s; {left}"

    def show(self) -> None:
        self.last = time.monotonic()
        if self.terminal:
            self.out.write("\r" + self.line().ljust(79))
        else:
            self.out.write(self.line() + "\n")
        self.out.flush()

    def close(self) -> None:
        """End the in-place line on a terminal (the job's summary comes next)."""
        if self.terminal:
            self.show()
            self.out.write("\n")
            self.out.flush()
