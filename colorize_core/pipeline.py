"""The colorize job as one Ray Data chain: read keys -> decode + L -> predict -> recombine + encode + write -> manifest."""
import math
import os
from dataclasses import dataclass

import numpy as np
import pyarrow.dataset as pads
import ray

from colorize_core.stages import JobSettings, Predictor, encode_and_write, read_and_decode
from colorize_core.storage import Location, ModelFile

MANIFEST_DIR = "_manifest"
ACTOR_MEMORY = 2 * 1024**3  # bytes: the colorizer in TensorFlow with a batch in flight
MiB = 1024**2


@dataclass(frozen=True)
class Resources:
    """How the model stage is placed: `actors` model replicas, each with these CPUs and GPUs; and how much of
    the object store the job's blocks in flight may hold (what keeps memory flat however long the input)."""

    batch_size: int
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    object_store_bytes: int


def init_ray(address: str | None = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS, as under `ray job submit`); else start Ray here on loopback."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", include_dashboard=False,
                 configure_logging=False, log_to_driver=True)


def default_resources(batch_size: int | None, actors: int | None, cpus_per_actor: float | None,
                      gpus_per_actor: float | None, object_store_mib: int | None = None) -> Resources:
    """Defaults that fit the cluster: one actor per GPU where there are GPUs; else one CPU actor that leaves
    the other CPUs to decode and encode (an actor pool that takes every CPU starves the read tasks).

    Object store: 512 MiB per model actor, at least 512 MiB. Without a cap Ray Data lets the decode stage run
    ahead until half the store is full, so memory grew with the input (benchmarks/RESULTS.md, peak memory).
    """
    cluster = ray.cluster_resources()
    gpus = int(cluster.get("GPU", 0))
    if gpus_per_actor is None:
        gpus_per_actor = 1.0 if gpus else 0.0
    if actors is None:
        actors = max(1, int(gpus / gpus_per_actor)) if gpus_per_actor else max(1, int(cluster.get("CPU", 2)) // 4)
    if cpus_per_actor is None:
        cpus_per_actor = 1.0
    object_store_bytes = (object_store_mib or 512 * actors) * MiB
    # GPU batch 128: 2,805 images/s on an H100 in bfloat16, already more than a 16-core node decodes; larger
    # batches (1024: 4,202/s) hold that many full-resolution L arrays in the actor at once.
    return Resources(batch_size or (128 if gpus_per_actor else 16), actors, cpus_per_actor, gpus_per_actor,
                     object_store_bytes)


PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def resolve_precision(precision: str, resources: Resources) -> str:
    """"auto": bfloat16 (mixed) where the model actors have GPUs, float32 on CPUs. On the H100 bfloat16 was 1.58x
    float32 at the same batch; on the val split it cost +0.01 dB PSNR and -0.24 CF (benchmarks/RESULTS.md). On
    CPUs without AMX bfloat16 is emulated and slower."""
    if precision != "auto":
        return precision
    return "bfloat16" if resources.gpus_per_actor else "float32"


def resolve_knobs(model: ModelFile, temperature: float | None, chroma_gain: float | None) -> tuple[float | None, float]:
    """The temperature and chroma gain a run uses: those asked for, else the model file's own defaults (which
    reproduce its output as saved). ValueError for a temperature on a regression model or values out of range."""
    if temperature is not None:
        if model.head != "classification":
            raise ValueError("--temperature applies to the classification head only, and this model has the "
                             "regression head: leave it out (--chroma-gain works with either head)")
        if not 0 < temperature <= 10:
            raise ValueError(f"--temperature must be in (0, 10], not {temperature} (1: the predicted mean; "
                             "smaller: more vivid, toward the most likely colour)")
    if chroma_gain is not None and not 0 <= chroma_gain <= 4:
        raise ValueError(f"--chroma-gain must be in [0, 4], not {chroma_gain} (0: grey, 1: as predicted)")
    return (model.temperature if temperature is None else temperature,
            model.chroma_gain if chroma_gain is None else chroma_gain)


MAX_KEY_BLOCKS = 1000  # 6,250 blocks for 100,000 keys took the driver 20 s before the first task ran


def keys_dataset(keys: list[str], per_block: int) -> ray.data.Dataset:
    """A dataset of {"key"} rows in blocks of `per_block` keys (more for long lists: at most MAX_KEY_BLOCKS
    blocks), so that the first stage runs as parallel tasks and the first output comes soon however long the list."""
    blocks = min(MAX_KEY_BLOCKS, max(1, math.ceil(len(keys) / per_block)))
    return ray.data.from_items([{"key": k} for k in keys], override_num_blocks=blocks)


def colorize_dataset(keys: list[str], settings: JobSettings, resources: Resources) -> ray.data.Dataset:
    """The job's chain of stages over `keys`; lazy: nothing runs until the manifest is written."""
    options = ray.data.DataContext.get_current().execution_options
    options.resource_limits = options.resource_limits.copy(object_store_memory=resources.object_store_bytes)
    return (
        keys_dataset(keys, resources.batch_size)
        .map_batches(read_and_decode, fn_kwargs={"settings": settings}, batch_size=resources.batch_size,
                     batch_format="numpy")
        .map_batches(Predictor, fn_constructor_kwargs={"settings": settings}, batch_size=resources.batch_size,
                     batch_format="numpy", num_cpus=resources.cpus_per_actor, num_gpus=resources.gpus_per_actor,
                     compute=ray.data.ActorPoolStrategy(min_size=1, max_size=resources.actors),
                     # The model's memory, reserved so the scheduler counts it; as the actor's resources then
                     # differ from the decode tasks', Ray Data also keeps decoding out of the actor.
                     memory=ACTOR_MEMORY)
        .map_batches(encode_and_write, fn_kwargs={"settings": settings}, batch_size=resources.batch_size,
                     batch_format="numpy")
    )


def write_manifest(dataset: ray.data.Dataset, output: Location, run_id: str) -> str:
    """Run the chain, streaming the manifest rows to Parquet under the output prefix; returns its folder."""
    folder = output.path(f"{MANIFEST_DIR}/run={run_id}")
    dataset.write_parquet(folder, filesystem=output.fs)
    return folder


def read_manifest(output: Location, folder: str) -> dict[str, np.ndarray]:
    """The manifest rows a run wrote, as numpy columns."""
    table = pads.dataset(folder, filesystem=output.fs, format="parquet").to_table()
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
