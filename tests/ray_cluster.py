"""Ray nodes started the operator's way, `ray start ... --block`, on 127.0.0.1, for the cluster tests."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import ray

from tools.local_s3 import free_port

RAY_CLI = str(Path(sys.executable).parent / "ray")


def cluster_env() -> dict[str, str]:
    """The environment for `ray` commands and the jobs they run: this venv first, loopback only, no auth token."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    return env


def stop(node: subprocess.Popen) -> None:
    node.send_signal(signal.SIGINT)  # --block: stops the node's processes and exits
    try:
        node.wait(timeout=60)
    except subprocess.TimeoutExpired:
        node.kill()


@contextmanager
def ray_head(num_cpus: int = 2, *extra: str):
    """A head started with `ray start --head --block`; yields (GCS address, dashboard URL, environment)."""
    if ray.is_initialized():
        ray.shutdown()  # one Ray at a time on a small machine; later tests start their own again
    env, port, dashboard = cluster_env(), free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    head = subprocess.Popen(
        [RAY_CLI, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--num-cpus={num_cpus}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/version", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not come up"
                assert head.poll() is None, "ray start --head exited"
                time.sleep(1)
        yield f"127.0.0.1:{port}", url, env
    finally:
        stop(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


@contextmanager
def ray_worker(address: str, env: dict[str, str], *resources: str):
    """A worker node joined to `address` with `ray start --address ... --block` and these resource flags.

    On one machine kept to loopback: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is what keeps Ray's addresses and
    listeners on 127.0.0.1, but with it `ray start` refuses to add a worker; with it unset, Ray replaces
    127.0.0.1 by the machine's address and listens on every interface. So the worker runs `ray start`'s own
    code (this module as __main__) with the refusal lifted and the node address kept at 127.0.0.1. Real
    clusters need none of this: there every node has its own address.
    """
    worker = subprocess.Popen([sys.executable, "-m", "tests.ray_cluster", "start", "--block", f"--address={address}",
                               "--node-ip-address=127.0.0.1", "--disable-usage-stats", *resources],
                              env=env, cwd=Path(__file__).resolve().parent.parent,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield worker
    finally:
        stop(worker)


if __name__ == "__main__":  # `ray start` for a second node on this machine, on loopback only (see ray_worker)
    from ray._private import ray_constants, services
    from ray.scripts import scripts

    ray_constants.ENABLE_RAY_CLUSTER = True
    services.get_node_ip_address = lambda address=None: "127.0.0.1"
    sys.argv = ["ray", *sys.argv[1:]]
    scripts.main()
