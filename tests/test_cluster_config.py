"""cluster.yaml passes Ray's own cluster-launcher validation (what `ray up` runs before it launches anything)."""
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parent.parent / "cluster.yaml"


def test_cluster_yaml_is_a_valid_ray_cluster_config():
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    validate_config(prepare_config(config))
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert nodes["gpu_worker"]["node_config"]["InstanceType"].startswith(("g", "p"))
    # one TensorFlow build a node: CUDA on GPU workers (their own commands replace the global worker ones)
    assert any("[gpu]" in c for c in nodes["gpu_worker"]["worker_setup_commands"])
    assert not any("[cpu]" in c for c in nodes["gpu_worker"]["worker_setup_commands"] + config["setup_commands"])
    assert any("[cpu]" in c for c in config["head_setup_commands"]) and any("[cpu]" in c for c in config["worker_setup_commands"])
    assert "worker_setup_commands" not in nodes["cpu_worker"]


def test_validation_catches_a_broken_config():
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    config["available_node_types"]["gpu_worker"]["min_workers"] = "many"
    with pytest.raises(Exception, match="many"):
        validate_config(prepare_config(config))
