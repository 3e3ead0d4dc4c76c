"""What becomes of each input: its manifest row's status and an error row's kind, declared once (the Parquet
columns hold the values).

A module of its own, importing nothing of the project's: the listing (storage.py) decides some rows' status
already, and the manifest (manifest.py, which declares the rest of the row) reads storage.
"""
from enum import StrEnum


class Status(StrEnum):
    """A row's status: TODO while the stages work on it; every row ends OK, SKIPPED or ERROR."""

    TODO = "todo"
    OK = "ok"
    SKIPPED = "skipped"  # its output is there already, (--skip-colour) the input is in colour already, or hidden
    ERROR = "error"


FINAL_STATUSES = (Status.OK, Status.SKIPPED, Status.ERROR)


class ErrorKind(StrEnum):
    """What kind of error an error row is: a short fixed vocabulary (the error text says the rest), for counting
    failures by cause in the manifest, the metrics (monitoring.py) and the review gallery alike; the order is
    the gallery's."""

    UNREADABLE = "unreadable"
    REFUSED = "refused"
    STORAGE = "storage"
    CRASHED = "crashed"
    OTHER = "other"
