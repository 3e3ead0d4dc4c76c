"""The colorize job as one Ray Data chain: read keys -> decode + L -> predict -> recombine + encode + write -> manifest."""
from colorize_core import crashes, manifest
from colorize_core.runtime import Resources
from colorize_core.stages import JobSettings, Predictor, encode_and_write, read_and_decode
from colorize_core.storage import Location

ACTOR_MEMORY = 2 * 1024**3  # bytes: the colorizer in TensorFlow with a batch in flight
KEY_TASK_CPUS = 0.25  # the key reader mostly waits on listings; unlike the decode tasks' 1 CPU, which also keeps
# Ray Data from fusing decoding into that one task


def keys_dataset(source, per_block: int, done_in: Location | None = None):
    """`source`'s keys (a key_source.KeySource, or a list of keys) as a dataset of {"key"} rows in blocks of
    `per_block`, read by one task as the stages go; with `done_in`, each row also says whether to `skip` it."""
    import ray  # here, not at the top: the job sets Ray's environment first (runtime.start_ray)

    from colorize_core.key_source import KeyDatasource, KeySource

    if isinstance(source, (list, tuple)):
        source = KeySource(keys=tuple(source))
    return ray.data.read_datasource(KeyDatasource(source, per_block, done_in), num_cpus=KEY_TASK_CPUS)


def colorize_dataset(source, settings: JobSettings, resources: Resources):
    """The job's chain of stages over `source`'s keys; lazy: nothing runs until the manifest is written."""
    import ray

    dataset = (
        # What is done already comes from one listing of the output, not a request a key (key_source.py).
        keys_dataset(source, resources.batch_size, None if settings.overwrite else settings.output)
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


def run(source, settings: JobSettings, resources: Resources) -> tuple[str, dict[str, int]]:
    """The chain over `source`'s keys, its manifest written under the output and marked complete; returns the
    manifest's folder and its counts of rows by status."""
    try:
        folder = manifest.write(colorize_dataset(source, settings, resources), settings.output, settings.run_id)
    finally:
        crashes.remove_journal(settings.run_id)  # this node's; other nodes' are a few empty files in their /tmp
    counts = manifest.count(settings.output, folder)
    manifest.mark_complete(settings.output, settings.run_id, counts)
    return folder, counts
