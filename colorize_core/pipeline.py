"""The colorize job as one Ray Data chain: read keys -> decode + L -> predict -> recombine + encode + write -> manifest."""
import math

from colorize_core import manifest
from colorize_core.runtime import Resources
from colorize_core.stages import JobSettings, Predictor, encode_and_write, read_and_decode

ACTOR_MEMORY = 2 * 1024**3  # bytes: the colorizer in TensorFlow with a batch in flight
MAX_KEY_BLOCKS = 1000  # 6,250 blocks for 100,000 keys took the driver 20 s before the first task ran


def keys_dataset(keys: list[str], per_block: int, done: set[str] | None = None):
    """A dataset of {"key"} rows in blocks of `per_block` keys (more for long lists: at most MAX_KEY_BLOCKS
    blocks), so that the first stage runs as parallel tasks and the first output comes soon however long the list.
    With `done` (the output keys there already), each row also says whether to `skip` it."""
    import ray  # here, not at the top: the job sets Ray's environment first (runtime.start_ray)

    blocks = min(MAX_KEY_BLOCKS, max(1, math.ceil(len(keys) / per_block)))
    rows = [{"key": k} for k in keys] if done is None else [{"key": k, "skip": k in done} for k in keys]
    return ray.data.from_items(rows, override_num_blocks=blocks)


def colorize_dataset(keys: list[str], settings: JobSettings, resources: Resources):
    """The job's chain of stages over `keys`; lazy: nothing runs until the manifest is written."""
    import ray

    # What is done already, from one listing of the output (a request per 1,000 keys on S3), not a request a key.
    done = None if settings.overwrite else set(settings.output.list_keys(None))
    dataset = (
        keys_dataset(keys, resources.batch_size, done)
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
    # The object-store cap, on this dataset's own copy of the DataContext (not the process-wide one).
    options = dataset.context.execution_options
    options.resource_limits = options.resource_limits.copy(object_store_memory=resources.object_store_bytes)
    return dataset


def run(keys: list[str], settings: JobSettings, resources: Resources) -> tuple[str, dict]:
    """The chain over `keys`, its manifest written under the output and marked complete; returns the
    manifest's folder and rows."""
    folder = manifest.write(colorize_dataset(keys, settings, resources), settings.output, settings.run_id)
    rows = manifest.read(settings.output, folder)
    manifest.mark_complete(settings.output, settings.run_id, rows)
    return folder, rows
