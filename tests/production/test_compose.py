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
