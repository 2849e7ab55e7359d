"""docker-compose.yml describes a production stack that can start: the
services, their health checks, shared data and the optional GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPO

COMPOSE = REPO / "docker-compose.yml"
GPU_OVERRIDE = REPO / "docker-compose.gpu.yml"
APP_SERVICES = ("web", "worker")


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return _load(COMPOSE)["services"]


def test_it_defines_database_broker_web_and_worker(services: dict[str, Any]) -> None:
    assert {"db", "redis", "web", "worker"} <= set(services)
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_every_service_has_a_health_check(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_app_services_wait_for_a_healthy_database_and_broker(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_app_services_get_production_settings(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"} <= set(env), name
        assert env["DEBUG"] == "false", name
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), f"{name}: SECRET_KEY optional"


def test_web_and_worker_share_the_data_volume(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        assert "maskroom-data:/data" in services[name]["volumes"], name
        assert services[name]["environment"]["MASKROOM_HOME"] == "/data", name


def test_every_named_volume_is_declared(services: dict[str, Any]) -> None:
    declared = set(_load(COMPOSE).get("volumes") or {})
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


def test_the_gpu_override_reserves_nvidia_gpus_for_the_worker(services: dict[str, Any]) -> None:
    assert "deploy" not in services["worker"], "the default stack must start without a GPU"
    worker = _load(GPU_OVERRIDE)["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices


def test_the_web_health_check_script_goes_into_the_image(services: dict[str, Any]) -> None:
    test = services["web"]["healthcheck"]["test"]
    script = next(part for part in test if part.endswith(".py"))
    assert (REPO / script).is_file()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not any(script.startswith(pattern.rstrip("/")) for pattern in ignored)


def test_the_image_runs_as_an_unprivileged_user() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "collectstatic" in dockerfile
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}


def _docker_compose() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    # No .env file: the variables are exactly those each test passes.
    return [docker, "compose", "--project-directory", str(REPO), "--env-file", os.devnull]


def _compose_env(**values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "SECRET_KEY"}
    env.update(values)
    return env


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, GPU_OVERRIDE]], ids=["cpu", "gpu"])
def test_docker_compose_accepts_the_files(files: list[Path]) -> None:
    command = _docker_compose()
    for path in files:
        command += ["-f", str(path)]
    result = subprocess.run(
        [*command, "config", "--quiet"],
        env=_compose_env(SECRET_KEY="x" * 60),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_a_secret_key() -> None:
    result = subprocess.run(
        [*_docker_compose(), "-f", str(COMPOSE), "config", "--quiet"],
        env=_compose_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_only_the_proxy_is_published_and_on_loopback_only(services: dict[str, Any]) -> None:
    [published] = services["proxy"]["ports"]
    assert published.startswith("${BIND_ADDRESS:-127.0.0.1}:"), published
    assert published.endswith(":8080")
    assert "ports" not in services["web"], "web processes are reached through the proxy"


def test_web_processes_scale(services: dict[str, Any]) -> None:
    # `--scale web=N` needs no fixed name or host port; one uvicorn per container,
    # so that the proxy's image affinity picks a process, not a container.
    web = services["web"]
    assert "container_name" not in web and "ports" not in web
    assert str(web["environment"]["WEB_CONCURRENCY"]) == "1"
    assert "--lifespan on" in " ".join(web["command"])  # engines load at startup


def test_forwarded_headers_are_trusted_from_the_proxy_only(services: dict[str, Any]) -> None:
    trusted = services["web"]["environment"]["FORWARDED_ALLOW_IPS"]
    assert "*" not in trusted
    default = trusted.removeprefix("${FORWARDED_ALLOW_IPS:-").removesuffix("}").split(",")
    proxy_address = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert sorted(default) == sorted(["127.0.0.1", proxy_address])
    # ... and the proxy believes only the host's TLS proxy, the network's gateway.
    network = _load(COMPOSE)["networks"]["default"]["ipam"]["config"][0]
    assert [d["args"] for d in _http(_nginx()) if d["directive"] == "set_real_ip_from"] == [
        [network["gateway"]]
    ]


NGINX = REPO / "deploy" / "nginx.conf"


def _nginx() -> list[dict[str, Any]]:
    """deploy/nginx.conf parsed by crossplane (NGINX's own parser and checker)."""
    import crossplane

    parsed = crossplane.parse(str(NGINX), check_ctx=True, check_args=True)
    assert parsed["status"] == "ok", parsed["errors"]
    [config] = parsed["config"]
    assert config["errors"] == []
    return list(config["parsed"])


def _http(parsed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    [http] = [d for d in parsed if d["directive"] == "http"]
    return list(http["block"])


def _block(directives: list[dict[str, Any]], name: str, *args: str) -> list[dict[str, Any]]:
    [found] = [
        d for d in directives if d["directive"] == name and d["args"][: len(args)] == [*args]
    ]
    return list(found["block"])


def test_the_proxy_config_parses_and_mounts_into_the_proxy(services: dict[str, Any]) -> None:
    _nginx()
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["proxy"]["volumes"]


def test_each_images_websocket_goes_to_one_web_process() -> None:
    import re

    http = _http(_nginx())
    upstream = _block(http, "upstream", "web")
    assert ["$affinity", "consistent"] in [d["args"] for d in upstream if d["directive"] == "hash"]
    assert ["web:8000", "resolve"] in [d["args"] for d in upstream if d["directive"] == "server"]
    # The map's key: the image id of /ws/images/<id>/, the same for every connection to it.
    [affinity] = [d for d in http if d["directive"] == "map" and d["args"][1] == "$affinity"]
    pattern, capture = (
        next(d for d in affinity["block"] if d["directive"].startswith("~"))["directive"][1:],
        "image",
    )
    for path, image in (("/ws/images/42/", "42"), ("/ws/images/7/", "7")):
        found = re.match(pattern.replace("?<", "?P<"), path)
        assert found is not None and found[capture] == image
    assert re.match(pattern.replace("?<", "?P<"), "/api/images/42/") is None
    server = _block(http, "server")
    websocket = _block(server, "location", "/ws/")
    sets = {tuple(d["args"]) for d in websocket if d["directive"] == "proxy_set_header"}
    assert ("Upgrade", "$http_upgrade") in sets and ("Connection", "$connection_upgrade") in sets
    assert ["http://web"] in [d["args"] for d in websocket if d["directive"] == "proxy_pass"]
