"""The colorize job as one Ray Data chain: read keys -> decode + L -> predict -> recombine + encode + write -> manifest rows.

Ten million keys never sit on the driver: it reads them (a listing or an input list) a wave of WAVE_KEYS at a
time (a short first one), as compact Arrow strings, and runs the chain over each wave in turn, all waves writing into the run's one
manifest. What is done already comes from one listing of the output, held as 16-byte digests (DoneKeys).
"""
import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from colorize_core import crashes, manifest, stages
from colorize_core.monitoring import RunMetrics
from colorize_core.progress import Progress
from colorize_core.run_lock import RunLock
from colorize_core.runtime import Resources
from colorize_core.settings import JobSettings
from colorize_core.stages import Predictor, encode_and_write, read_and_decode
from colorize_core.storage import CHUNK, Location, StorageGone, retrying

ACTOR_MEMORY = 2 * 1024**3  # bytes: the colorizer in TensorFlow with a batch in flight
MAX_KEY_BLOCKS = 1000  # 6,250 blocks for 100,000 keys took the driver 20 s before the first task ran
WAVE_KEYS = 200_000  # keys a dataset takes at a time: ~5 MB of Arrow strings; a GPU actor pool's model loads
# once a wave, a few seconds against the wave's minutes
FIRST_WAVE_KEYS = 10_000  # a short first wave: the first outputs (or a systematic error) show soon, since on a
# small node the decode tasks can keep the encode tasks from a CPU until a wave's decoding is done


def digests(keys: Iterable[str]) -> np.ndarray:
    """16-byte digests of keys: a set of millions of keys in a fraction of the memory of their strings (a
    collision among ten million keys has odds of about 1 in 10^24)."""
    return np.array([hashlib.blake2b(k.encode(), digest_size=16).digest() for k in keys], dtype="S16")


class DoneKeys:
    """The keys under a location, from one listing (a request per 1,000 keys on S3), as sorted digests: 160 MB for
    ten million outputs, where a Python set of them would take about a gigabyte."""

    def __init__(self, output: Location):
        parts, chunk = [np.array([], "S16")], []
        for key in output.iter_keys(None):
            chunk.append(key)
            if len(chunk) == CHUNK:
                parts.append(digests(chunk))
                chunk = []
        self.sorted = np.sort(np.concatenate([*parts, digests(chunk)]))

    def contains(self, keys: list[str]) -> np.ndarray:
        """Whether each key is among them."""
        return among(self.sorted, digests(keys))


def among(sorted_digests: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Whether each of the digests `wanted` is in the sorted array `sorted_digests`."""
    if not len(sorted_digests):
        return np.zeros(len(wanted), bool)
    return sorted_digests[np.minimum(np.searchsorted(sorted_digests, wanted), len(sorted_digests) - 1)] == wanted


class SeenKeys:
    """The keys of an input list taken so far, as sorted digests: a key the list gives twice is done once."""

    def __init__(self):
        self.sorted = np.array([], "S16")

    def first_times(self, keys: list[str]) -> list[str]:
        """`keys` less those seen before (in this call or an earlier one), in their order."""
        wanted = digests(keys)
        _, first = np.unique(wanted, return_index=True)
        first = np.sort(first)
        first = first[~among(self.sorted, wanted[first])]
        self.sorted = np.sort(np.concatenate([self.sorted, wanted[first]]))
        return [keys[i] for i in first]


class PassedOver(list):
    """(key, status, reason) for what the listing passed over (storage.iter_keys' `passed_over`): run() gives
    each a manifest row."""

    def __call__(self, key: str, status: str, reason: str) -> None:
        self.append((key, status, reason))


@dataclass
class RunSummary:
    """What run() did: its manifest folder, its rows by status, and the inputs it owed a row."""

    folder: str
    counts: dict[str, int]
    owed: int  # keys taken (each once) plus what the listing passed over: as many rows as that
    repeated: int = 0  # keys an input list gave more than once, done once
    notes: list[str] = field(default_factory=list)  # e.g. a stale lock taken over

    @property
    def accounted(self) -> bool:
        return sum(self.counts.values()) == self.owed


def waves(chunks: Iterable[list[str]], first: int, size: int) -> Iterator[list[str]]:
    """Chunks of keys regrouped into waves: `first` keys, then `size` keys each (the last may be short)."""
    wave: list[str] = []
    for chunk in chunks:
        wave.extend(chunk)
        while len(wave) >= first:
            yield wave[:first]
            wave, first = wave[first:], size
    if wave:
        yield wave


def keys_dataset(keys: list[str], per_block: int, skip: np.ndarray | None = None):
    """A dataset of {"key"} rows (with `skip`, also whether each is done already) in blocks of `per_block` keys
    (more for long lists: at most MAX_KEY_BLOCKS blocks), so that the first stage runs as parallel tasks and the
    first output comes soon."""
    import ray  # here, not at the top: the job sets Ray's environment first (runtime.start_ray)

    rows = math.ceil(len(keys) / min(MAX_KEY_BLOCKS, max(1, math.ceil(len(keys) / per_block))))
    blocks = []
    for start in range(0, len(keys), rows):
        columns = {"key": pa.array(keys[start:start + rows], pa.string())}
        if skip is not None:
            columns["skip"] = pa.array(skip[start:start + rows])
        blocks.append(pa.table(columns))
    return ray.data.from_arrow(blocks)


def task_memory_request(settings: JobSettings, resources: Resources) -> int:
    """What each decode and encode task asks Ray for (stages.task_peak_bytes), so that the scheduler places no more of
    them on a node than it holds; capped so that the largest node can still run one beside a model actor (a
    request no node can meet would wait for ever)."""
    import ray

    largest = max((node["Resources"].get("memory", 0) for node in ray.nodes() if node["Alive"]), default=0)
    return int(min(stages.task_peak_bytes(settings, resources.batch_size), max(largest - ACTOR_MEMORY, 2**28)))


def colorize_dataset(keys: list[str], settings: JobSettings, resources: Resources, done: DoneKeys | None = None):
    """The job's chain of stages over `keys` (those in `done` marked to skip), ending in manifest rows (Arrow
    tables of manifest.SCHEMA); lazy: nothing runs until run() iterates it."""
    import ray

    memory = task_memory_request(settings, resources)
    dataset = (
        keys_dataset(keys, resources.batch_size, None if done is None else done.contains(keys))
        .map_batches(read_and_decode, fn_kwargs={"settings": settings}, batch_size=resources.batch_size,
                     batch_format="numpy", memory=memory)
        .map_batches(Predictor, fn_constructor_kwargs={"settings": settings}, batch_size=resources.batch_size,
                     batch_format="numpy", num_cpus=resources.cpus_per_actor, num_gpus=resources.gpus_per_actor,
                     compute=ray.data.ActorPoolStrategy(min_size=1, max_size=resources.actors),
                     # The model's memory, reserved so the scheduler counts it; as the actor's resources then
                     # differ from the decode tasks', Ray Data also keeps decoding out of the actor.
                     memory=ACTOR_MEMORY)
        .map_batches(encode_and_write, fn_kwargs={"settings": settings}, batch_size=resources.batch_size,
                     batch_format="numpy", memory=memory)
        .map_batches(manifest.to_table, batch_format="numpy")  # the columns and types declared, or it fails
    )
    # Ray Data's own metrics then carry the run's id (dataset="RUN_ID_..."), as its manifest folder does.
    dataset.set_name(settings.run_id)
    # The object-store cap, on this dataset's own copy of the DataContext (not the process-wide one).
    options = dataset.context.execution_options
    options.resource_limits = options.resource_limits.copy(object_store_memory=resources.object_store_bytes)
    return dataset


def run(chunks: Iterable[list[str]], settings: JobSettings, resources: Resources,
        progress: Progress | None = None, passed: PassedOver | None = None, may_repeat: bool = False,
        metrics: RunMetrics | None = None) -> RunSummary:
    """The chain over the keys `chunks` yields (storage.KeySource.chunks(), or [keys]), a wave at a time, its
    manifest written under the output and marked complete, holding the output's run lock meanwhile (LockHeld if
    another run holds it). `passed`, filled as the keys are listed, get rows of their own; with `may_repeat` (an
    input list) a key given twice is done once. `progress`, if given, counts the keys and the finished rows and
    shows them; `metrics`, if given, exports them (monitoring.py). StorageGone if the storage goes away for good: the manifest files written so far stay, the run is
    not marked complete, and the rows not yet written are saved locally (the exception says where)."""
    lock = RunLock(settings.output, settings.run_id).acquire()
    writer = manifest.Writer(settings.output, settings.run_id)
    summary = RunSummary(manifest.folder_of(settings.output, settings.run_id), {}, 0,
                         notes=[lock.note] if lock.note else [])
    same = {"model": settings.model_uri, "model_sha256": settings.model_sha256, "run_id": settings.run_id}
    seen = SeenKeys() if may_repeat else None

    def on_rows(rows: pa.Table) -> None:
        writer.add(rows)
        if progress is not None:
            progress.rows(rows)
        if metrics is not None:
            metrics.rows(rows)
        # A storage error in this batch: ask the storages once whether they are still there (StorageGone if not,
        # after the driver's retries), rather than let every remaining key fail the same way.
        if manifest.ErrorKind.STORAGE in rows.column("error_kind").to_pylist():
            retrying(settings.output.probe)
            retrying(settings.input.probe)

    def write_passed() -> None:
        if passed:
            rows = manifest.noted_rows(*map(list, zip(*passed)), **same)
            summary.owed += rows.num_rows
            if metrics is not None:
                metrics.taken(rows.num_rows)
            passed.clear()
            on_rows(rows)

    try:
        done = None if settings.overwrite else retrying(lambda: DoneKeys(settings.output))
        chunks = chunks if progress is None else progress.keys(chunks)
        for wave in waves(chunks if metrics is None else metrics.keys(chunks), FIRST_WAVE_KEYS, WAVE_KEYS):
            if seen is not None:
                taken = seen.first_times(wave)
                summary.repeated += len(wave) - len(taken)
                wave = taken
            summary.owed += len(wave)
            if metrics is not None:
                metrics.taken(len(wave))
            if wave:  # the rows come back to the driver (a few hundred bytes each; the images stay behind)
                for rows in colorize_dataset(wave, settings, resources, done).iter_batches(batch_format="pyarrow",
                                                                                           batch_size=None):
                    on_rows(rows)
            write_passed()
        write_passed()
        writer.flush()
        summary.counts = retrying(lambda: manifest.counts_of_run(settings.output, summary.folder))
        retrying(lambda: manifest.mark_complete(settings.output, settings.run_id, summary.counts))
    except StorageGone as e:
        rows = sum(t.num_rows for t in writer.pending)
        raise StorageGone(f"{e}; the {rows} manifest rows not yet written are saved in {writer.save_locally()}") from e
    finally:
        crashes.remove_journal(settings.run_id)  # this node's; other nodes' are a few empty files in their /tmp
        if progress is not None:
            progress.close()
        if metrics is not None:
            metrics.ended()
        lock.release()
    return summary
