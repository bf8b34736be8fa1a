"""A second Tokenkeeper process: gunicorn serving the app on loopback against the test database
pytest-django created and the same Redis (so two processes share the rate budgets)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings

from tests.fixtures.workers import _database_url

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, tmp_path: Path, **extra_env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "gunicorn.log"
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"} and not key.startswith("PYTEST_")
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DATABASE_URL": _database_url(settings.DATABASES["default"]),
                "REDIS_URL": os.environ.get("REDIS_URL", ""),
                "RATE_BUDGET_REDIS_URL": settings.RATE_BUDGET_REDIS_URL,
                "RATE_BUDGET_KEY_PREFIX": settings.RATE_BUDGET_KEY_PREFIX,
                "CONNECTION_CACHE_SECONDS": str(settings.CONNECTION_CACHE_SECONDS),
                "CONNECTION_CACHE_CHANNEL": settings.CONNECTION_CACHE_CHANNEL,
                "OAUTH_ALLOW_INSECURE_URLS": "true",
                "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL,
                "SECRET_KEY": settings.SECRET_KEY,
                "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
                "TOKENKEEPER_VAR_DIR": str(tmp_path / "var"),
                "TOKENKEEPER_ENV": "development",
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "WEB_CONCURRENCY": "1",
                "GUNICORN_THREADS": "2",
                "PYTHONUNBUFFERED": "1",
                **extra_env,
            }
        )
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                [str(GUNICORN), "config.wsgi", "-c", "config/gunicorn.conf.py"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30) -> LiveServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"gunicorn ended:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"gunicorn not ready:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
