"""Health of the parts a click depends on: database, broker, worker, engine."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import connection

from backend.segmentation.selectors import default_engine_spec
from worker.celery_app import app
from worker.engines.registry import loaded_keys
from worker.engines.spec import CLASSICAL, EngineSpec

WORKER_PING_TTL_SECONDS = 10.0
INSTALL_HINT = (
    "No SAM checkpoint is installed, so the offline classical engine segments. "
    "Install SAM weights with `python manage.py fetch_model vit_b --install` "
    "(needs internet) or `python manage.py install_model NAME --arch vit_b "
    "--checkpoint PATH` for a checkpoint you downloaded."
)

_ping_lock = threading.Lock()
_last_ping: tuple[float, bool] = (0.0, False)


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


def broker_ok() -> bool:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


def worker_ok() -> bool:
    """Whether a Celery worker answers a ping; cached briefly (a ping takes ~1 s)."""
    global _last_ping
    with _ping_lock:
        checked_at, answered = _last_ping
        if answered and time.monotonic() - checked_at < WORKER_PING_TTL_SECONDS:
            return True
        try:
            answered = bool(app.control.ping(timeout=1.5))
        except Exception:
            answered = False
        _last_ping = (time.monotonic(), answered)
        return answered


def engine_info(spec: EngineSpec) -> dict[str, Any]:
    if spec.arch == CLASSICAL and spec.checkpoint_path:
        description = "Classical segmenter on a pixel classifier trained for this project"
    elif spec.arch == CLASSICAL:
        description = "Offline classical segmenter (seeded watershed / random walker)"
    else:
        description = f"Segment Anything {spec.arch} ({spec.name})"
    return {"name": spec.name, "key": spec.key, "arch": spec.arch, "description": description}


def health_report() -> dict[str, Any]:
    checks = {"database": database_ok(), "broker": broker_ok(), "worker": worker_ok()}
    report: dict[str, Any] = {
        "status": "ok" if all(checks.values()) else "degraded",
        "checks": checks,
        # The decoding engines this web process has loaded (warm.py): clicks
        # on their projects' images wait for no load.
        "engines_loaded": loaded_keys(),
    }
    if checks["database"]:
        spec = default_engine_spec()
        report["engine"] = engine_info(spec)
        report["install_hint"] = INSTALL_HINT if spec.arch == CLASSICAL else ""
    return report
