"""Placement on a real two-node Ray: a head and a worker started with `ray start` on 127.0.0.1.

The worker is labelled like a GPU node: it declares a GPU (and an accelerator_type resource, as Ray does on
real GPU nodes) and only the CPU the model actor reserves. The job's defaults then put one model actor per GPU
there, and the decode tasks on the head; the encode tasks too, but for the last ones, which may run there once
the actor is gone. The manifest's *_node columns say where each step ran.
"""
import json
import os
import subprocess
import sys
import time

import pyarrow.dataset as pads
import pytest

from tests import ray_cluster

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]


def cluster_nodes(address: str, env: dict[str, str]) -> dict[str, dict]:
    """Node ID -> resources of the live nodes, asked from a separate driver (this process stays off the cluster)."""
    code = ("import json, ray; ray.init(address=%r, configure_logging=False, log_to_driver=False); "
            "print(json.dumps({n['NodeID']: n['Resources'] for n in ray.nodes() if n['Alive']}))" % address)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_model_actors_only_on_the_gpu_node(tmp_path, model_file, archive_inputs):
    scans, colour = tmp_path / "scans", tmp_path / "colour"
    keys = [k for k in sorted(archive_inputs) if not k.startswith("bad/")][:6]
    for key in keys:
        (scans / key).parent.mkdir(parents=True, exist_ok=True)
        (scans / key).write_bytes(archive_inputs[key])
    with ray_cluster.ray_head(2, "--object-store-memory=400000000") as (address, _, env):
        with ray_cluster.ray_worker(address, env, "--num-cpus=1", "--num-gpus=1", "--object-store-memory=400000000",
                                    '--resources={"accelerator_type:TEST": 1}'):
            deadline = time.monotonic() + 120
            while len(nodes := cluster_nodes(address, env)) < 2:
                assert time.monotonic() < deadline, "the worker did not join"
                time.sleep(2)
            gpu_node = next(n for n, r in nodes.items() if r.get("GPU"))
            head_node = next(n for n in nodes if n != gpu_node)
            # The job joins through RAY_ADDRESS and takes its settings from COLORIZE_* as in a RayJob's pod.
            job = subprocess.run(
                [sys.executable, "-m", "jobs.colorize", "--precision", "float32"],  # bf16 is emulated on this CPU
                env={**env, "RAY_ADDRESS": address, "COLORIZE_INPUT": str(scans), "COLORIZE_OUTPUT": str(colour),
                     "COLORIZE_MODEL": str(model_file), "COLORIZE_BATCH_SIZE": "2"},
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                capture_output=True, text=True, timeout=600)
            listeners = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    ray_listeners = [line for line in listeners if any(p in line for p in ('"raylet"', '"gcs_server"', '"ray::'))]
    hosts = {line.split()[3].rsplit(":", 1)[0] for line in ray_listeners}
    assert ray_listeners and hosts <= {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}, f"Ray listens on {hosts}"
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "gpus_per_actor=1.0" in job.stdout and "actors=1," in job.stdout  # defaults: one actor per GPU
    manifest = pads.dataset(colour / "_manifest", format="parquet").to_table().to_pylist()
    rows = {r["key"]: r for r in manifest}
    assert sorted(rows) == sorted(keys) and all(r["status"] == "ok" for r in rows.values())
    assert {r["predict_node"] for r in rows.values()} == {gpu_node}
    assert {r["precision"] for r in rows.values()} == {"float32"}, "the flag's precision, recorded per row"
    assert {r["decode_node"] for r in rows.values()} == {head_node}
    # The actor holds the GPU node's one CPU while it lives; Ray Data ends it once the last batch is predicted,
    # and an encode task may then take that CPU (right on a real GPU node: a free CPU is used). So the head
    # encodes, and the GPU node at most the rows of the batches predicted last.
    encoded_on_gpu_node = [k for k in keys if rows[k]["encode_node"] == gpu_node]
    assert {r["encode_node"] for r in rows.values()} <= {head_node, gpu_node}
    assert len(encoded_on_gpu_node) < len(keys), "the head encodes while the actor holds the GPU node's CPU"
