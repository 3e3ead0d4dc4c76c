"""Watching a run: the job's metrics scraped from a real Ray's metrics port on 127.0.0.1 (monitoring.py), and the
Kubernetes monitoring (k8s/monitoring.yaml: PodMonitor, PrometheusRule) and the Grafana dashboard checked
against the Prometheus Operator's CRD schemas and against the metric names that scrape saw."""
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from colorize_core import manifest, monitoring
from colorize_core.storage import Location
from jobs.local_s3 import free_port
from tests import ray_cluster

ROOT = Path(__file__).resolve().parent.parent
GOOD = 5  # photos beside one bad file


def scrape(port: int) -> dict[str, list]:
    """The metrics endpoint's samples by name (prometheus_client's own parser)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def total(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module")
def scraped(tmp_path_factory, model_file, archive_inputs):
    """A run of the job on GOOD photos and a bad file, on a Ray head started with a metrics export port; the
    run's id and what its metrics port showed once the job was done."""
    tmp = tmp_path_factory.mktemp("watched")
    scans, colour = tmp / "scans", tmp / "colour"
    keys = [k for k in sorted(archive_inputs) if not k.startswith("bad/")][:GOOD]
    for key in keys:
        (scans / key).parent.mkdir(parents=True, exist_ok=True)
        (scans / key).write_bytes(archive_inputs[key])
    (scans / "broken.jpg").write_bytes(b"not an image at all")
    port = free_port()
    with ray_cluster.ray_head(2, f"--metrics-export-port={port}", "--object-store-memory=400000000") as (address, _, env):
        job = subprocess.run(
            [sys.executable, "-m", "jobs.colorize", "--input", str(scans), "--output", str(colour), "--model",
             str(model_file), "--precision", "float32", "--batch-size", "2", "--max-error-fraction", "0.5"],
            env={**env, "RAY_ADDRESS": address}, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        (run_id,) = manifest.runs(Location(str(colour)))[0]
        deadline = time.monotonic() + 60  # Ray reports its metrics every few seconds
        while True:
            samples = scrape(port)
            if total(samples, "ray_colorize_images_total", run_id=run_id) == GOOD + 1 or time.monotonic() > deadline:
                break
            time.sleep(2)
    return run_id, samples


def test_the_job_exports_its_counts_by_status_and_kind_tagged_with_its_run_id(scraped):
    run_id, samples = scraped
    images = "ray_colorize_images_total"
    assert total(samples, images, run_id=run_id, status=manifest.OK) == GOOD
    assert total(samples, images, run_id=run_id, status=manifest.ERROR, error_kind=manifest.UNREADABLE) == 1
    assert total(samples, images, run_id=run_id, status=manifest.ERROR) == 1
    assert total(samples, "ray_colorize_bytes_read_total", run_id=run_id) > 0
    assert total(samples, "ray_colorize_bytes_written_total", run_id=run_id) > 0
    for stage in monitoring.STAGES:  # one time a stage for each photo done
        assert total(samples, "ray_colorize_stage_seconds_count", run_id=run_id, stage=stage) == GOOD, stage
    assert total(samples, "ray_colorize_images_listed", run_id=run_id) == GOOD + 1
    assert total(samples, "ray_colorize_images_in_flight", run_id=run_id) == 0, "the run is over"
    assert total(samples, "ray_colorize_max_error_fraction", run_id=run_id) == 0.5
    started = total(samples, "ray_colorize_run_start_time_seconds", run_id=run_id)
    assert time.time() - 900 < started <= total(samples, "ray_colorize_last_finished_time_seconds", run_id=run_id)
    assert monitoring.EXPORTED <= set(samples), "every declared metric exported"
    # Ray Data's own metrics name the dataset after the run (Dataset.set_name): its panels match the manifest.
    datasets = {s.labels["dataset"] for name, found in samples.items() if name.startswith("ray_data_")
                for s in found if "dataset" in s.labels}
    assert datasets and all(d.startswith(run_id) for d in datasets), datasets
