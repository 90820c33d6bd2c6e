"""The deployment files for the real tensorflow/serving image: they parse, match the TF
version, and point at the paths and ports the README and the Pusher use."""
import os
import re

import tensorflow as tf
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serving", "deploy")
TF_MINOR = ".".join(tf.__version__.split(".")[:2])


def read(name):
    with open(os.path.join(DEPLOY, name)) as f:
        return f.read()


def test_compose_serves_grpc_and_rest_with_the_configs():
    compose = yaml.safe_load(read("docker-compose.yml"))["services"]["tfserving"]
    assert compose["image"].startswith(f"tensorflow/serving:{TF_MINOR}")
    assert set(compose["ports"]) == {"8500:8500", "8501:8501"}
    args = " ".join(compose["command"])
    for flag in ("--model_config_file=/config/models.config", "--batching_parameters_file=/config/batching.config",
                 "--monitoring_config_file=/config/monitoring.config", "--enable_batching=true"):
        assert flag in args
    mounted = {v.split(":")[-2] for v in compose["volumes"]}  # source:target:ro
    assert {"/models", "/config/models.config", "/config/batching.config", "/config/monitoring.config"} <= mounted


def test_model_config_is_a_valid_model_server_config():
    config = text_format.Parse(read("models.config"), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "i2vae" and model.base_path == "/models/i2vae" and model.model_platform == "tensorflow"


def test_batching_and_monitoring_use_known_fields():
    batching_fields = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                       "pad_variable_length_inputs", "allowed_batch_sizes", "thread_pool_name"}
    used = set(re.findall(r"^(\w+)", re.sub(r"#.*", "", read("batching.config")), re.M))
    assert used and used <= batching_fields
    assert "prometheus_config" in read("monitoring.config") and "enable: true" in read("monitoring.config")


def test_kubernetes_manifest_matches_compose():
    deployment, service = list(yaml.safe_load_all(read("kubernetes.yaml")))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == yaml.safe_load(read("docker-compose.yml"))["services"]["tfserving"]["image"]
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    assert service["kind"] == "Service" and {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
