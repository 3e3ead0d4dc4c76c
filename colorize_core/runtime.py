"""Where a job runs: the environment Ray and TensorFlow start in, Ray itself (local or a cluster), how the model
stage is placed on it, and its precision.

Nothing happens at import. Each job calls start_ray() (or prepare_environment(), for one that runs without
Ray) in main(), before anything imports ray: Ray reads its loopback setting when it is imported.
"""
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

MiB = 1024**2
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def new_run_id() -> str:
    """A run's ID: the UTC time it started, to the microsecond (20261202T155852123456Z); names its manifest folder."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def prepare_environment(ray_address: str | None = None) -> str | None:
    """Set what Ray and TensorFlow read at start-up; returns the Ray cluster to join (`ray_address`, else
    RAY_ADDRESS, as under `ray job submit`), or None for a Ray started here.

    A Ray started here is a one-machine Ray: it is kept on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0; by
    default Ray advertises the machine's address and listens on every interface). Its processes inherit this
    environment, and so do the job's workers: TensorFlow's start-up chatter is silenced there too."""
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    if not address and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ:
        if "ray" in sys.modules:  # too late: Ray has read its setting already
            raise RuntimeError("call prepare_environment() before anything imports ray")
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if not address:
        # Token authentication is Ray's default for a Ray started here; asked for by name, it comes without the
        # notice Ray prints on every start.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return address


def start_ray(ray_address: str | None = None, verbose: bool = False) -> None:
    """Join the cluster at `ray_address` (or RAY_ADDRESS); else start Ray here, on loopback.

    Unless `verbose`, the terminal gets warnings and errors only: the workers' output and Ray Data's INFO lines
    and progress tables stay in Ray's log folder (the job prints its own progress: progress.py)."""
    address = prepare_environment(ray_address)
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=verbose)
    else:
        ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=verbose)
    if not verbose:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
        for handler in logging.getLogger("ray.data").handlers:  # its file handler keeps everything
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.WARNING)


def log_folder() -> str:
    """This Ray session's log folder (on the driver's node)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    return node.get_logs_dir_path() if node is not None else tempfile.gettempdir()


_redirect_lock = threading.Lock()
_redirects = {"depth": 0}  # jobs in this process inside native_stderr_to_log (two may run at once in threads)


@contextmanager
def native_stderr_to_log(verbose: bool = False) -> Iterator[None]:
    """While the job runs, what native code in this process writes to stderr goes to a file in Ray's log folder.

    Ray's C++ core worker in the driver writes some of its ERROR lines to stderr as well as to its log, among
    them one every run: actors with constructor arguments in the object store (Ray Data's, by design). Python's
    own stderr, and so every Python error and warning, still reaches the terminal. Unless `verbose`. Jobs run
    at once in one process share one redirection, undone when the last ends."""
    if verbose:
        yield
        return
    with _redirect_lock:
        if _redirects["depth"] == 0:
            sys.stderr.flush()
            terminal = os.dup(2)
            _redirects["python_stderr"], _redirects["terminal"] = sys.stderr, terminal
            # Not closed afterwards: a logging handler made meanwhile may hold it; it writes to the terminal.
            sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1)
            log = os.open(os.path.join(log_folder(), f"colorize-driver-stderr-{os.getpid()}.log"),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 2)
            os.close(log)
        _redirects["depth"] += 1
    try:
        yield
    finally:
        with _redirect_lock:
            _redirects["depth"] -= 1
            if _redirects["depth"] == 0:
                sys.stderr.flush()
                sys.stderr = _redirects.pop("python_stderr")
                terminal = _redirects.pop("terminal")
                os.dup2(terminal, 2)
                os.close(terminal)


@dataclass(frozen=True)
class Resources:
    """How the model stage is placed: `actors` model replicas, each with these CPUs and GPUs; and how much of
    the object store the job's blocks in flight may hold (what keeps memory flat however long the input)."""

    batch_size: int
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    object_store_bytes: int


def default_resources(batch_size: int | None = None, actors: int | None = None, cpus_per_actor: float | None = None,
                      gpus_per_actor: float | None = None, object_store_mib: int | None = None) -> Resources:
    """Defaults that fit the running Ray cluster: one actor per GPU where there are GPUs; else one CPU actor
    that leaves the other CPUs to decode and encode (an actor pool that takes every CPU starves the read tasks).

    Object store: 512 MiB per model actor, at least 512 MiB. Without a cap Ray Data lets the decode stage run
    ahead until half the store is full, so memory grew with the input (benchmarks/RESULTS.md, peak memory).
    """
    import ray

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


def cpu_has_amx(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has AMX (Intel's bfloat16 matrix tiles: `amx_bf16` among /proc/cpuinfo's flags). There,
    mixed_bfloat16 ran the model 3-7x faster than float32; on CPUs without it, 8x slower (benchmarks/RESULTS.md)."""
    if cpuinfo is None:
        try:
            cpuinfo = open("/proc/cpuinfo").read()
        except OSError:
            return False
    return any("amx_bf16" in line.split() for line in cpuinfo.splitlines() if line.startswith("flags"))


def resolve_precision(precision: str, gpus: bool, cpuinfo: str | None = None) -> tuple[str, str]:
    """The precision the model runs in, and why: the flag's, or for "auto" the one that fits the worker that
    runs the model (called there: a cluster's nodes differ). GPUs: bfloat16 (mixed; on the H100 1.58x float32
    at the same batch, +0.01 dB PSNR on the val split). CPUs: bfloat16 where the CPU has AMX
    (`cpuinfo`: /proc/cpuinfo's text, read when None), float32 where it has none (bfloat16 is emulated there,
    about 8x slower)."""
    if precision != "auto":
        return precision, "as asked"
    if gpus:
        return "bfloat16", "bfloat16: the model runs on a GPU"
    if cpu_has_amx(cpuinfo):
        # 4x faster than float32 there, and within issue 32's bar on the val split (at most 0.05 CIEDE2000, 1%
        # otherwise) since the VGG input stays float32 (model.load_colorizer): MODEL_CARD.md, precision.
        return "bfloat16", "bfloat16: the CPU has AMX"
    return "float32", "float32: the CPU has no AMX (bfloat16 would be about 8x slower)"
