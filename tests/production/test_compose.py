"""docker-compose.yml is for users (no Docker engine here): check that Compose
accepts it and that it has the pieces production mode needs."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_accepts_the_file_and_it_has_every_role():
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    env = {**os.environ, "COURIER_JWT_SECRET": "test-secret"}
    checked = subprocess.run([*command, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    rendered = subprocess.run([*command, "config", "--services"], cwd=ROOT, env=env, capture_output=True, text=True)
    services = set(rendered.stdout.split())
    assert {"mysql", "redis", "migrate", "gateway-1", "gateway-2", "worker"} <= services


def test_compose_refuses_to_start_without_a_jwt_secret():
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    env = {k: v for k, v in os.environ.items() if k != "COURIER_JWT_SECRET"}
    checked = subprocess.run([*command, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert checked.returncode != 0
    assert "COURIER_JWT_SECRET" in checked.stderr


def test_redis_in_compose_keeps_an_append_only_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert '"--appendonly", "yes"' in text and '"--appendfsync", "always"' in text
    assert 'command: ["courier", "worker"]' in text


# Read as YAML (no Docker engine needed): what the profiles hold.

def services() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_default_profile_is_one_redis_and_the_courier_services_use_it():
    default = {name: service for name, service in services().items() if not service.get("profiles")}
    assert set(default) == {"mysql", "redis", "migrate", "gateway-1", "gateway-2", "worker"}
    for name in ("migrate", "gateway-1", "gateway-2", "worker"):
        assert default[name]["environment"]["COURIER_REDIS_URL"] == "redis://redis:6379/0"


def test_the_cluster_profile_has_six_nodes_joined_as_three_masters_with_a_replica_each():
    cluster = {name: service for name, service in services().items() if "cluster" in service.get("profiles", [])}
    nodes = {name: service for name, service in cluster.items() if name.startswith("redis-node-")}
    assert sorted(nodes) == [f"redis-node-{n}" for n in range(1, 7)]
    for service in nodes.values():
        command = service["command"]
        assert command[command.index("--cluster-enabled") + 1] == "yes"
        assert command[command.index("--appendfsync") + 1] == "always"  # as the one Redis: no 201 lost
    assert len({service["volumes"][0] for service in nodes.values()}) == 6  # a volume each
    init = cluster["redis-cluster-init"]
    script = init["command"][0]
    assert "--cluster create" in script and "--cluster-replicas 1" in script and "--cluster-yes" in script
    assert "for n in 1 2 3 4 5 6" in script
    assert set(init["depends_on"]) == set(nodes)
    assert init["restart"] == "no"


def test_the_cluster_profiles_courier_services_point_at_the_cluster_after_it_is_made():
    from entrypoints import settings

    cluster = {name: service for name, service in services().items() if "cluster" in service.get("profiles", [])}
    couriers = {name: service for name, service in cluster.items() if name.startswith("cluster-")}
    assert set(couriers) == {"cluster-gateway-1", "cluster-gateway-2", "cluster-worker"}
    for service in couriers.values():
        url = service["environment"]["COURIER_REDIS_URL"]
        assert url.startswith("redis+cluster://")
        address = settings.load(environ={"COURIER_REDIS_URL": url}).redis_address
        assert address.cluster and all(host.startswith("redis-node-") for host, _ in address.nodes)
        assert service["depends_on"]["redis-cluster-init"] == {"condition": "service_completed_successfully"}
        assert "COURIER_JWT_SECRET" in service["environment"]  # the shared settings, merged in
    assert couriers["cluster-worker"]["command"] == ["courier", "worker"]
    ports = {port for service in services().values() for port in service.get("ports", [])}
    assert len(ports) == sum(len(service.get("ports", [])) for service in services().values())  # none shared
