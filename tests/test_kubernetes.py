"""The KubeRay manifests in k8s/ against KubeRay's own CRD schemas (../shared/schemas/kuberay), and their
COLORIZE_* settings against the jobs' flags. No Kubernetes cluster is needed.

The CRD schemas leave unknown fields allowed (Kubernetes prunes them silently), so a misspelt field would pass;
the test closes every object that lists its properties, so a misspelling fails here instead.
"""
import copy
import functools
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from jobs import colorize, train

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT.parent / "shared" / "schemas" / "kuberay"
CRDS = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml", "RayCronJob": "ray.io_raycronjobs.yaml"}
MANIFESTS = sorted((ROOT / "k8s").glob("*.yaml"))
JOBS = {"jobs.colorize": colorize.parse_args, "jobs.train": train.parse_args}

needs_schemas = pytest.mark.skipif(not SCHEMAS.is_dir(), reason=f"KubeRay CRD schemas not found at {SCHEMAS}")


def closed(schema):
    """A copy of `schema` in which objects with listed properties refuse others (as `kubectl --validate=strict`)."""
    schema = copy.deepcopy(schema)

    def close(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


@functools.cache
def crd_schema(kind: str) -> dict:
    crd = yaml.load((SCHEMAS / CRDS[kind]).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return closed(version["schema"]["openAPIV3Schema"])


def validate(manifest: dict) -> None:
    assert manifest["apiVersion"] == "ray.io/v1"
    jsonschema.validate(manifest, crd_schema(manifest["kind"]))


def job_specs(manifest: dict) -> list[dict]:
    spec = manifest["spec"]
    return [spec["jobTemplate"]] if manifest["kind"] == "RayCronJob" else [spec] if manifest["kind"] == "RayJob" else []


def cluster_spec(manifest: dict) -> dict:
    spec = manifest["spec"]
    return spec if manifest["kind"] == "RayCluster" else job_specs(manifest)[0]["rayClusterSpec"]


def test_the_manifests_are_there():
    assert {yaml.safe_load(m.read_text())["kind"] for m in MANIFESTS} == set(CRDS)


@needs_schemas
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_matches_the_kuberay_schema(path):
    validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_cluster_shape(path):
    cluster = cluster_spec(yaml.safe_load(path.read_text()))
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # drivers only on the head
    assert cluster["enableInTreeAutoscaling"] and cluster["autoscalerOptions"]["idleTimeoutSeconds"] <= 600
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1" and gpu["image"].endswith("-gpu")
    cpu = groups["cpu"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"] and cpu["image"].endswith("-cpu")
    for group in groups.values():
        assert group["minReplicas"] == 0 < group["maxReplicas"]  # autoscaled from nothing
        container = group["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"] == container["resources"]["limits"]
        assert {"secretRef": {"name": "colorize-s3"}} in container["envFrom"]


@pytest.mark.parametrize("path", [m for m in MANIFESTS if "job" in m.name], ids=lambda p: p.name)
def test_job_settings_are_the_jobs_own_flags(path, monkeypatch):
    """Every COLORIZE_* the manifest sets is a flag of the job it runs, with a value that flag accepts."""
    for spec in job_specs(yaml.safe_load(path.read_text())):
        command = spec["entrypoint"].split()
        assert command[:2] == ["python", "-m"] and command[2] in JOBS
        env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
        assert env and all(name.startswith("COLORIZE_") for name in env)
        for name in [n for n in os.environ if n.startswith("COLORIZE_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        args = JOBS[command[2]](command[3:])
        for name, value in env.items():
            flag = name.removeprefix("COLORIZE_").lower()
            assert hasattr(args, flag), f"{name} is not a flag of {command[2]}"
            assert getattr(args, flag) is not None


def test_nightly_schedule_resumes():
    (cron,) = [yaml.safe_load(m.read_text()) for m in MANIFESTS if yaml.safe_load(m.read_text())["kind"] == "RayCronJob"]
    assert re.fullmatch(r"(\S+\s+){4}\S+", cron["spec"]["schedule"])
    env = yaml.safe_load(cron["spec"]["jobTemplate"]["runtimeEnvYAML"])["env_vars"]
    assert "COLORIZE_OVERWRITE" not in env  # outputs that exist are skipped: each night does only the new scans


@needs_schemas
def test_schema_check_catches_mistakes():
    manifest = yaml.safe_load((ROOT / "k8s" / "rayjob-colorize.yaml").read_text())
    misspelt = copy.deepcopy(manifest)
    misspelt["spec"]["rayClusterSpec"]["workerGroupSpec"] = misspelt["spec"]["rayClusterSpec"].pop("workerGroupSpecs")
    with pytest.raises(jsonschema.ValidationError, match="workerGroupSpec"):
        validate(misspelt)
    wrong_type = copy.deepcopy(manifest)
    wrong_type["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplicas"] = "twenty"
    with pytest.raises(jsonschema.ValidationError, match="twenty"):
        validate(wrong_type)
