"""Watching a run: the job's metrics scraped from a real Ray's metrics port on 127.0.0.1 (monitoring.py), and the
Kubernetes monitoring (k8s/monitoring.yaml: PodMonitor, PrometheusRule) and the Grafana dashboard checked
against the Prometheus Operator's CRD schemas and against the metric names that scrape saw."""
import copy
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jsonschema
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from colorize_core import manifest, monitoring
from colorize_core.storage import Location
from tools.local_s3 import free_port
from tests import ray_cluster
from tests.test_kubernetes import CRDS, MANIFESTS, SCHEMAS, closed, cluster_spec

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
        deadline = time.monotonic() + 90  # each process reports its metrics every few seconds, on its own
        while True:  # until every kind the tests look at is there: the job's counters, its gauges, Ray Data's
            samples = scrape(port)
            if all(total(samples, name, run_id=run_id) == GOOD + 1
                   for name in ("ray_colorize_images_total", "ray_colorize_images_listed")) and any(
                    "operator" in s.labels for s in samples.get("ray_data_output_rows", [])) \
                    or time.monotonic() > deadline:
                break
            time.sleep(2)
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
    assert listening and listening[3].rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]"), "the port on loopback"
    return run_id, samples


@pytest.mark.own_ray
def test_the_job_exports_its_counts_by_status_and_kind_tagged_with_its_run_id(scraped):
    run_id, samples = scraped
    images = "ray_colorize_images_total"
    assert total(samples, images, run_id=run_id, status=manifest.Status.OK) == GOOD
    assert total(samples, images, run_id=run_id, status=manifest.Status.ERROR,
                 error_kind=manifest.ErrorKind.UNREADABLE) == 1
    assert total(samples, images, run_id=run_id, status=manifest.Status.ERROR) == 1
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


# --- k8s/monitoring: the PodMonitor, the alert rules and the dashboard ---

MONITORING = ROOT / "k8s" / "monitoring"
OPERATOR_CRDS = Path(__file__).resolve().parent / "schemas" / "prometheus-operator"
CRD_FILES = {"PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
             "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml"}
# Metrics of the KubeRay operator (1.4 or later), scraped from the operator, not from Ray: the one alert that
# must outlive the job (its RayJob failed) reads it. No test here can run the operator: its name and labels are
# those of KubeRay's metrics reference; its one label value is checked against KubeRay's own RayJob CRD.
KUBERAY_OPERATOR_METRICS = {"kuberay_job_deployment_status"}
DASHBOARD_VARIABLES = {"$run_id": "20261202T000000000000Z", "${datasource}": "prometheus", "$__rate_interval": "2m"}


def monitoring_objects() -> dict[str, dict]:
    return {o["kind"]: o for path in sorted(MONITORING.glob("*.yaml")) for o in yaml.safe_load_all(path.read_text())}


def operator_schema(kind: str) -> dict:
    crd = yaml.safe_load((OPERATOR_CRDS / CRD_FILES[kind]).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return python_patterns(closed(version["schema"]["openAPIV3Schema"]))


def python_patterns(node):
    """The schema with Go's mid-pattern flags moved to the front, where Python's re takes them: the CRDs say
    `^(?i)(abort|warn)?$`, which Go reads and Python refuses; `(?i)^(abort|warn)?$` means the same."""
    if isinstance(node, dict):
        return {k: ("(?i)" + v.replace("(?i)", "") if k == "pattern" and isinstance(v, str) and "(?i)" in v
                    else python_patterns(v)) for k, v in node.items()}
    return [python_patterns(v) for v in node] if isinstance(node, list) else node


def selectors(expression: str, grouped_by: set[str] | None = None) -> list:
    """The vector selectors of a PromQL expression, through promql_parser's syntax tree (a parse error raises);
    the labels its aggregations and vector matches group by are added to `grouped_by`."""
    found, stack = [], [promql_parser.parse(expression)]
    grouped_by = set() if grouped_by is None else grouped_by
    while stack:
        node = stack.pop()
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        elif isinstance(node, promql_parser.MatrixSelector):
            stack.append(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            stack += [node.lhs, node.rhs]
            if node.modifier is not None and node.modifier.matching is not None:
                grouped_by.update(node.modifier.matching.labels)
        elif isinstance(node, promql_parser.AggregateExpr):
            stack += [node.expr] + ([node.param] if node.param is not None else [])
            if node.modifier is not None:
                grouped_by.update(node.modifier.labels)
        elif isinstance(node, promql_parser.Call):
            stack += list(node.args)
        elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
            stack.append(node.expr)
    return found


def rule_and_panel_expressions() -> dict[str, str]:
    """Every PromQL expression of the alert rules and the dashboard (its variables filled in), by where it is."""
    rules = monitoring_objects()["PrometheusRule"]["spec"]["groups"]
    found = {f"alert {r['alert']}": r["expr"] for group in rules for r in group["rules"]}
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    # Grafana's label_values(METRIC, LABEL) is not PromQL: as the selector it stands for, METRIC{LABEL!=""}.
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", dashboard["templating"]["list"][1]["query"]["query"]).groups()
    queries = [("variable run_id", f'{metric}{{{label}!=""}}')]
    queries += [(f"panel {p['title']!r} {t['refId']}", t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    for where, expression in queries:
        for name, value in DASHBOARD_VARIABLES.items():
            expression = expression.replace(name, value)
        found[where] = expression
    return found


@pytest.mark.skipif(not OPERATOR_CRDS.is_dir(), reason=f"no Prometheus Operator CRDs at {OPERATOR_CRDS}")
def test_the_podmonitor_and_rules_match_the_prometheus_operator_schemas():
    objects = monitoring_objects()
    assert set(objects) == set(CRD_FILES)
    for kind, manifest in objects.items():
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        jsonschema.validate(manifest, operator_schema(kind))
    misspelt = copy.deepcopy(objects["PodMonitor"])
    misspelt["spec"]["podMetricsEndpoint"] = misspelt["spec"].pop("podMetricsEndpoints")
    with pytest.raises(jsonschema.ValidationError, match="podMetricsEndpoint"):
        jsonschema.validate(misspelt, operator_schema("PodMonitor"))
    no_expression = copy.deepcopy(objects["PrometheusRule"])
    del no_expression["spec"]["groups"][0]["rules"][0]["expr"]
    with pytest.raises(jsonschema.ValidationError, match="expr"):
        jsonschema.validate(no_expression, operator_schema("PrometheusRule"))
    wordy = copy.deepcopy(objects["PrometheusRule"])
    wordy["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError, match="ten minutes"):
        jsonschema.validate(wordy, operator_schema("PrometheusRule"))


def test_every_ray_pod_exposes_the_port_the_podmonitor_scrapes():
    monitor = monitoring_objects()["PodMonitor"]["spec"]
    (endpoint,) = monitor["podMetricsEndpoints"]
    labels = monitor["selector"]["matchLabels"]
    for path in MANIFESTS:
        cluster = cluster_spec(yaml.safe_load(path.read_text()))
        for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
            template = group["template"]
            ours = {k: v for k, v in labels.items() if not k.startswith("ray.io/")}  # KubeRay adds ray.io/ labels
            assert ours.items() <= template["metadata"]["labels"].items(), path.name
            ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0].get("ports", [])}
            assert str(ports.get(endpoint["port"])) == group["rayStartParams"]["metrics-export-port"], path.name


@pytest.mark.own_ray
def test_every_metric_a_rule_or_panel_uses_is_one_the_job_run_exported(scraped):
    """A renamed metric, tag or status breaks this test, not a dashboard at 3 a.m."""
    _, samples = scraped
    expressions = rule_and_panel_expressions()
    assert len([w for w in expressions if w.startswith("alert")]) == 3 and len(expressions) > 15
    for where, expression in expressions.items():
        grouped_by: set[str] = set()
        used = selectors(expression, grouped_by)
        on_them = {label for s in used for sample in samples.get(s.name, []) for label in sample.labels}
        if not {s.name for s in used} & KUBERAY_OPERATOR_METRICS:
            assert grouped_by <= on_them | {"le"}, f"{where}: grouped by {grouped_by - on_them}, not a label they have"
        for selector in used:
            assert selector.name in set(samples) | KUBERAY_OPERATOR_METRICS, f"{where}: {selector.name} not exported"
            if selector.name in KUBERAY_OPERATOR_METRICS:
                continue
            labels = {label for s in samples[selector.name] for label in s.labels}
            for matcher in selector.matchers.matchers:
                assert matcher.name in labels, f"{where}: {selector.name} has no label {matcher.name}"
                values = {s.labels[matcher.name] for s in samples[selector.name] if matcher.name in s.labels}
                if matcher.op == promql_parser.MatchOp.Equal and matcher.name != "run_id":
                    assert matcher.value in values, f"{where}: {selector.name}{{{matcher.name}={matcher.value!r}}}"
    names = {s.name for e in expressions.values() for s in selectors(e)}
    assert {"ray_object_store_memory", "ray_data_output_rows"} <= names, "object store and Ray Data panels"
    assert {n for n in monitoring.EXPORTED if not n.endswith(("_sum", "_count"))} - {
        "ray_colorize_run_start_time_seconds"} <= names | {"ray_colorize_stage_seconds_bucket"}


@pytest.mark.skipif(not SCHEMAS.is_dir(), reason=f"KubeRay CRD schemas not found at {SCHEMAS}")
def test_the_rayjob_alert_names_a_deployment_status_kuberay_has():
    rule = next(r for g in monitoring_objects()["PrometheusRule"]["spec"]["groups"] for r in g["rules"]
                if r["alert"] == "ColorizeRayJobFailed")
    (selector,) = selectors(rule["expr"])
    (status,) = [m.value for m in selector.matchers.matchers if m.name == "deployment_status"]
    assert f"- {status}\n" in (SCHEMAS / CRDS["RayJob"]).read_text(), "KubeRay's JobDeploymentStatus values"
