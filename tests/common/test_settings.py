"""Production mode refuses to start without its secrets, and passes Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_SECRET_KEY = "k3Y-" + "x7Qp9LmZ2vB8nR4tW6yC1dF5gH0jK3sA" * 2
# Production also needs PostgreSQL and Redis (nothing connects to them here).
PRODUCTION_SERVICES = {
    "DATABASE_URL": "postgres://tokenkeeper@db.example.com:5432/tokenkeeper",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run Python in a clean environment: nothing from the test run leaks in."""
    clean = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TOKENKEEPER_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TOKENKEEPER_ENV": "production",
        **env,
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "SECRET_KEY, FIELD_ENCRYPTION_KEYS"),
        ({"FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}, "SECRET_KEY"),
        ({"SECRET_KEY": PRODUCTION_SECRET_KEY}, "FIELD_ENCRYPTION_KEYS"),
    ],
)
def test_production_refuses_to_start_without_its_secrets(tmp_path, env, missing):
    result = run(["-c", "import django; django.setup()"], tmp_path, **env)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: Production mode needs {missing} in the environment." in result.stderr


def test_production_starts_with_its_secrets(tmp_path):
    result = run(
        ["-c", "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"],
        tmp_path,
        SECRET_KEY=PRODUCTION_SECRET_KEY,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        **PRODUCTION_SERVICES,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_production_passes_the_deployment_checks(tmp_path):
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        SECRET_KEY=PRODUCTION_SECRET_KEY,
        FIELD_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        ALLOWED_HOSTS="tokenkeeper.example.com",
        PUBLIC_BASE_URL="https://tokenkeeper.example.com",
        **PRODUCTION_SERVICES,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
