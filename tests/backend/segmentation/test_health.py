"""GET /api/health/: ok only when the database, the broker and a worker answer."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from backend.segmentation import health
from backend.segmentation.checkpoints import segmentation_model_install
from tests.live import LiveApp, live_app_fixture  # noqa: F401
from tests.tiny_sam import save_tiny_checkpoint


def fetch(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(autouse=True)
def _fresh_ping_cache() -> None:
    health._last_ping = (0.0, False)


@pytest.mark.slow
def test_it_is_ok_with_a_running_worker(live_app: LiveApp) -> None:
    status, report = fetch(f"{live_app.url}api/health/")
    assert status == 200, report
    assert report["status"] == "ok"
    assert report["checks"] == {"database": True, "broker": True, "worker": True}
    assert report["engine"]["arch"] == "classical"
    assert "install_model" in report["install_hint"]


@pytest.mark.django_db
def test_it_is_degraded_without_a_worker() -> None:
    # The test Redis answers, but no worker consumes from the test process's
    # broker database (live apps claim databases of their own).
    response = Client().get("/api/health/")
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "degraded"
    assert report["checks"]["database"] is True
    assert report["checks"]["worker"] is False


@pytest.mark.django_db
def test_it_names_an_installed_sam_model(tmp_path: Path) -> None:
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pth")
    segmentation_model_install(
        name="tiny", arch="custom", checkpoint_path=checkpoint, prepare_decoder=False
    )
    report = health.health_report()
    assert report["engine"]["name"] == "tiny"
    assert report["engine"]["arch"] == "custom"
    assert report["install_hint"] == ""


@pytest.mark.django_db
def test_it_lists_the_engines_this_process_has_loaded() -> None:
    from backend.segmentation.engines import engine_for
    from backend.segmentation.selectors import default_engine_spec
    from worker.engines import registry

    spec = default_engine_spec()
    registry.forget()
    assert spec.key not in health.health_report()["engines_loaded"]
    engine_for(spec, decoding_only=True)
    assert spec.key in health.health_report()["engines_loaded"]
