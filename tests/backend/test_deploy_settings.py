"""Production settings pass Django's deployment checks, and refuse to start
without a secret key."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from tests.paths import REPO


def _production_env(**overrides: str) -> dict[str, str]:
    """The environment a deployment sets; DATABASE_URL and REDIS_URL pass through."""
    env = {name: value for name, value in os.environ.items() if name != "SECRET_KEY"}
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="maskroom.example.org",
    )
    env.update(overrides)
    return {name: value for name, value in env.items() if value != ""}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_the_deployment_checks() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())

    assert result.returncode == 0, result.stdout + result.stderr


def test_it_flags_a_weak_secret_key() -> None:
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", env=_production_env(SECRET_KEY="short")
    )

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_it_refuses_to_start_without_secret_key_when_debug_is_off() -> None:
    result = _manage("check", env=_production_env(SECRET_KEY=""))

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is false" in result.stderr


def test_it_refuses_an_unknown_encoder_precision_or_batch() -> None:
    for name, value, message in (
        ("EMBED_PRECISION", "fp8", "EMBED_PRECISION must be auto, float32 or bfloat16"),
        ("EMBED_BATCH", "-1", "EMBED_BATCH >= 0"),
    ):
        result = _manage("check", env=_production_env(**{name: value}))
        assert result.returncode != 0
        assert message in result.stderr, result.stderr
