"""What becomes of each input: its manifest row's status, declared once (the Parquet column holds the value).

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
