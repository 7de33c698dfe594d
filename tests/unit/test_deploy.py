"""deploy/: every manifest parses, and the cluster config it embeds is one chatctl accepts and agrees with."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from chatcluster.cli import main
from chatcluster.common.config import ClusterConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def k8s_documents() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["metadata"]["name"], path
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def config_from_text(text: str, tmp_path: Path) -> ClusterConfig:
    """Through the same loader `chatctl up --config` uses."""
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return ClusterConfig.load(path)


def container(doc: dict) -> dict:
    (only,) = doc["spec"]["template"]["spec"]["containers"]
    return only


def up_args(c: dict) -> list[str]:
    return (c.get("command", []) + c.get("args", [])) if c.get("command") != ["sh", "-c"] else c["args"][0].split()


def test_kubernetes_manifests_agree_with_their_config(tmp_path):
    docs = k8s_documents()
    config = config_from_text(docs[("ConfigMap", "chatcluster-config")]["data"]["cluster.toml"], tmp_path)
    shards = docs[("StatefulSet", "chatcluster-shard")]
    assert shards["spec"]["replicas"] == len(config.shards)
    assert config.shard_ids == list(range(len(config.shards)))  # pod ordinals are the shard ids
    for spec in config.shards:
        assert spec.endpoint == f"tcp://chatcluster-shard-{spec.id}.chatcluster-shard:5600"
        assert spec.bind == "tcp://*:5600" and spec.control_bind == "0.0.0.0"
    shard = container(shards)
    assert "--role shard --id ${HOSTNAME##*-}" in " ".join(shard["args"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert shard[probe]["httpGet"] == {"path": "/healthz", "port": config.shards[0].control_port}
    gateway = container(docs[("Deployment", "chatcluster-gateway")])
    assert gateway["args"][-4:] == ["--role", "gateway", "--id", "auto"]
    spec = config.gateways[0]
    assert {p["containerPort"] for p in gateway["ports"]} == {spec.port, spec.http_port, spec.control_port}
    mounts = {m["name"]: m["mountPath"] for m in gateway["volumeMounts"]}
    assert Path(config.tls_cert).parent == Path(config.tls_key).parent == Path(mounts["tls"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert gateway[probe]["httpGet"]["port"] == config.gateways[0].control_port
    service = docs[("Service", "chatcluster")]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [spec.port, spec.http_port]
    assert docs[("Service", "chatcluster-shard")]["spec"]["clusterIP"] == "None"  # stable per-pod DNS names
    job = container(docs[("Job", "chatcluster-db-init")])
    assert job["args"][:2] == ["db", "init"]
    assert "${CHAT_DB_PASSWORD}" in config.db_url  # the password comes from the Secret, not the ConfigMap


def test_compose_file_agrees_with_its_config(tmp_path):
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    config = config_from_text((DEPLOY / "compose" / "cluster.toml").read_text(), tmp_path)
    services = compose["services"]
    for spec in config.shards:
        name = f"shard{spec.id}"
        assert services[name]["command"][-4:] == ["--role", "shard", "--id", str(spec.id)]
        assert spec.endpoint == f"tcp://{name}:5600"
    spec = config.gateways[0]
    assert services["gateway"]["ports"] == [f"{spec.port}:{spec.port}", f"{spec.http_port}:{spec.http_port}"]
    assert services["db-init"]["command"][:2] == ["db", "init"]
    assert "SERVER=postgres" in config.db_url


@pytest.mark.parametrize("path", ["cluster.example.toml", "compose/cluster.toml"])
def test_example_configs_load(path, tmp_path):
    config = config_from_text((DEPLOY / path).read_text(), tmp_path)
    assert config.shards and config.gateways
    assert tomllib.loads((DEPLOY / path).read_text())  # plain TOML, nothing chatcluster-specific


def test_systemd_units_run_one_process_each():
    for role in ("shard", "gateway"):
        text = (DEPLOY / "systemd" / f"chatcluster-{role}@.service").read_text()
        exec_start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1)
        assert exec_start.endswith(f"up --config /etc/chatcluster/cluster.toml --role {role} --id %i")
        assert "KillSignal=SIGTERM" in text and "Restart=always" in text
    single = (DEPLOY / "chatcluster.service").read_text()
    assert "chatctl up --shards" in single


def test_the_commands_the_manifests_run_are_accepted(tmp_path):
    """Every `chatctl ...` the manifests run parses as a chatctl command line (checked with --help)."""
    runner = CliRunner()
    commands = [["up", "--config", "x", "--role", "gateway", "--id", "auto"], ["db", "init", "--config", "x"],
                ["up", "--config", "x", "--role", "shard", "--id", "0"]]
    for args in commands:
        sub = args[:2] if args[0] == "db" else args[:1]
        result = runner.invoke(main, [*sub, "--help"])
        assert result.exit_code == 0
        for option in (a for a in args if a.startswith("--")):
            assert option in result.output, (option, sub)


def test_dockerfile_installs_the_package_and_its_drivers():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "odbc-postgresql" in text and "pip install" in text and 'ENTRYPOINT ["chatctl"]' in text
    for folder in ("chatcluster", "proto", "common", "gateway", "shards", "loadtest"):
        assert f"COPY {folder} {folder}" in text  # every package folder of pyproject's package-dir
