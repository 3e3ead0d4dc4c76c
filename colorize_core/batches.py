"""A batch as every stage takes and gives it: Ray Data's "numpy" format, a dict of equal-length columns.

The stages build their rows one at a time, each a dataclass with a field per column, and turn them into columns
here, in one place: no tuple of names beside a tuple of values.
"""
import dataclasses

import numpy as np


def ragged(arrays: list[np.ndarray]) -> np.ndarray:
    """A column of arrays of different shapes (full-resolution images) as a 1-D object array."""
    column = np.empty(len(arrays), dtype=object)
    column[:] = [None] * len(arrays)
    for i, a in enumerate(arrays):
        column[i] = a
    return column


def columns(rows: list, row_type: type, stacked: dict[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """Rows (instances of the dataclass `row_type`) -> a batch, a column per field, in the fields' order.

    A field of arrays is a ragged column (each row its own shape), or, where `stacked` gives its one shape, a
    float32 array (rows, *shape); bytes and str fields are object columns; numbers take numpy's own dtype."""
    batch = {}
    for field in dataclasses.fields(row_type):
        values = [getattr(row, field.name) for row in rows]
        if stacked and field.name in stacked:
            batch[field.name] = np.array(values, np.float32).reshape(-1, *stacked[field.name])
        elif field.type is np.ndarray:
            batch[field.name] = ragged(values)
        elif field.type in (str, bytes):
            batch[field.name] = np.array(values, dtype=object)
        else:
            batch[field.name] = np.array(values, dtype=field.type)
    return batch
