"""A run's keys as a Ray dataset that one Ray task reads in blocks, so that ten million keys never sit on the
driver: the task lists the input (or reads the input list) as it goes, and the stages start on the first block
while it reads on. Ray Data holds the task back while the stages are behind (streaming backpressure).

Resume without a request a key: the task first lists the output once (a request per 1,000 keys on S3) into
16-byte digests of the keys there (160 MB for ten million; the driver holds none), then marks each key it hands
on with `skip` if its output exists.
"""
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from colorize_core.storage import IMAGE_EXTENSIONS, Location, iter_key_list

CHUNK = 10_000  # keys read at a time


@dataclass(frozen=True)
class KeySource:
    """Where a run's keys come from: the list file `input_list` (Parquet, CSV or text), else the images under
    `listing`, else `keys` given outright (a short list, such as evaluation's)."""

    listing: Location | None = None
    extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS
    input_list: str | None = None
    endpoint: str | None = None  # the S3 endpoint of `input_list`
    keys: tuple[str, ...] = ()

    def chunks(self) -> Iterator[list[str]]:
        """The keys, CHUNK at a time as they are read."""
        if self.input_list:
            yield from iter_key_list(self.input_list, self.endpoint, CHUNK)
            return
        keys = self.listing.iter_keys(self.extensions) if self.listing else iter(self.keys)
        while chunk := [key for _, key in zip(range(CHUNK), keys)]:
            yield chunk


def digests(keys: list[str]) -> np.ndarray:
    """16-byte digests of keys: an exact set of millions of keys in a tenth of the memory of their strings (a
    collision among ten million keys has odds of about 1 in 10^24)."""
    return np.array([hashlib.blake2b(k.encode(), digest_size=16).digest() for k in keys], dtype="S16")


class KeyDatasource(Datasource):
    """`source`'s keys as blocks of `per_block` {"key"} rows; with `done_in` (the output, unless overwriting),
    each row also says whether to `skip` it, its output being there already."""

    def __init__(self, source: KeySource, per_block: int, done_in: Location | None = None):
        self.source, self.per_block, self.done_in = source, per_block, done_in

    def estimate_inmemory_data_size(self) -> int | None:
        return None  # unknown until read: that is the point

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        metadata = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
        return [ReadTask(self.blocks, metadata, per_task_row_limit=per_task_row_limit)]

    def blocks(self) -> Iterator[pa.Table]:
        done = None
        if self.done_in is not None:
            parts, chunk = [], []
            for key in self.done_in.iter_keys(None):
                chunk.append(key)
                if len(chunk) == CHUNK:
                    parts.append(digests(chunk))
                    chunk = []
            done = np.sort(np.concatenate([*parts, digests(chunk), np.array([], "S16")]))
        for chunk in self.source.chunks():
            for i in range(0, len(chunk), self.per_block):
                keys = chunk[i:i + self.per_block]
                columns = {"key": pa.array(keys, pa.string())}
                if done is not None:
                    wanted = digests(keys)
                    at = np.minimum(np.searchsorted(done, wanted), max(len(done) - 1, 0))
                    columns["skip"] = pa.array(done[at] == wanted if len(done) else np.zeros(len(keys), bool))
                yield pa.table(columns)
