"""The refresh engine for real: PostgreSQL row locks, a Celery worker and beat.

- ``@pytest.mark.postgres`` tests need ``DATABASE_URL=postgres://…``;
  ``@pytest.mark.worker`` tests also need ``REDIS_URL=redis://…``. Without
  them they are skipped, except with ``CI=true``, where that is a failure.
- ``exact``: a live Exact Online emulator with compressed lifetimes (40 s
  tokens, refresh only in the last 30 s); ``exact_client``: workspace Acme's
  OAuth client pointed at it.
- ``celery``: starts real ``celery -A config worker`` and ``beat``
  subprocesses against the test database pytest-django created and a
  dedicated Redis database (flushed first). Their logs go to files that are
  attached to the report of a failing test; they are stopped before the
  database is flushed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from tests.engine.helpers import exact_client as make_exact_client
from tests.engine.helpers import exact_emulator

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")
CI = os.environ.get("CI", "").lower() == "true"
WORKER_REDIS_DB = int(os.environ.get("ENGINE_TEST_REDIS_DB", "5"))
STARTUP_TIMEOUT = 30

# What the subprocesses get unless a test says otherwise: fast sweeps, short
# leases (longer than the hard time limit, as the engine requires) and short
# retry delays.
ENGINE_ENV = {
    "REFRESH_SWEEP_SECONDS": "1",
    "REFRESH_LEASE_SECONDS": "6",
    "REFRESH_TASK_TIME_LIMIT": "5",
    "REFRESH_RETRY_BASE_SECONDS": "1",
}


# --- Requirements: skip locally, fail in CI -------------------------------------------


def _is_postgres() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def worker_broker_url() -> str | None:
    """REDIS_URL with the database number reserved for these tests."""
    url = os.environ.get("REDIS_URL", "")
    if not url.startswith(("redis://", "rediss://")):
        return None
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{WORKER_REDIS_DB}", "", ""))


_redis_ok: dict[str, bool] = {}


def _redis_reachable(url: str) -> bool:
    if url not in _redis_ok:
        import redis

        try:
            _redis_ok[url] = bool(redis.Redis.from_url(url, socket_timeout=2).ping())
        except redis.RedisError:
            _redis_ok[url] = False
    return _redis_ok[url]


def pytest_runtest_setup(item):
    missing = []
    if (item.get_closest_marker("postgres") or item.get_closest_marker("worker")) and not _is_postgres():
        missing.append("PostgreSQL (DATABASE_URL=postgres://…)")
    if item.get_closest_marker("worker"):
        url = worker_broker_url()
        if url is None or not _redis_reachable(url):
            missing.append("a reachable Redis (REDIS_URL=redis://…)")
    if missing:
        message = f"needs {' and '.join(missing)}"
        if CI:
            pytest.fail(f"CI must run this test, but it {message}.", pytrace=False)
        pytest.skip(message)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the worker and beat logs to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "_celery_cluster", None)
    if cluster is not None and report.failed:
        report.sections.append(("Celery worker and beat logs", cluster.logs()))


# --- The emulator and Tokenkeeper's client ----------------------------------------------


@pytest.fixture
def exact():
    with exact_emulator() as emulator:
        yield emulator


@pytest.fixture
def exact_client(team, exact):
    return make_exact_client(team.a, team.alice, exact)


# --- Real Celery processes -------------------------------------------------------------------


class CeleryProcess:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, ready: str):
        self.name = name
        self.log = log
        self.ready_marker = ready
        with log.open("wb") as out:
            # Its own process group: a kill takes the prefork children with it.
            self.popen = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.ready_marker not in self.text():
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.text()[-5000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready after {timeout} s:\n{self.text()[-5000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group, as when a container is killed: nothing gets to clean up."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self) -> None:
        """Ask for a warm shutdown (finish running tasks, give back the rest)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def reap(self, deadline: float) -> None:
        """Wait for the shutdown until ``deadline`` (monotonic), then SIGKILL what is left of the group."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # prefork children left behind, if any
        self.popen.wait(timeout=10)


class CeleryCluster:
    """Start ``worker()`` and ``beat()`` subprocesses sharing this test's database and broker."""

    def __init__(self, tmp_path: Path, env: dict[str, str]):
        self.tmp_path = tmp_path
        self.env = env
        self.mail_dir = Path(env["EMAIL_FILE_PATH"])
        self.processes: list[CeleryProcess] = []

    def _start(self, name: str, args: list[str], ready: str, env: dict[str, str]) -> CeleryProcess:
        process = CeleryProcess(
            name, [str(CELERY), "-A", "config", *args], {**self.env, **env}, self.tmp_path / f"{name}.log", ready
        )
        self.processes.append(process)
        return process

    def worker(self, name: str = "worker1", *, concurrency: int = 4, wait: bool = True, **env) -> CeleryProcess:
        process = self._start(
            name,
            [
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "-l",
                "info",
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            " ready.",
            env,
        )
        if wait:
            process.wait_ready()
        return process

    def beat(self, *, wait: bool = True, **env) -> CeleryProcess:
        process = self._start(
            "beat", ["beat", "-l", "info", "-s", str(self.tmp_path / "beat-schedule")], "beat: Starting", env
        )
        if wait:
            process.wait_ready()
        return process

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} ({p.log}) =====\n{p.text()[-20000:]}" for p in self.processes)

    def stop_all(self, grace: float = 4) -> None:
        for process in self.processes:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in self.processes:
            process.reap(deadline)


def _database_url(database: dict) -> str:
    user = quote(database.get("USER") or "postgres", safe="")
    password = f":{quote(database['PASSWORD'], safe='')}" if database.get("PASSWORD") else ""
    host = database.get("HOST") or "127.0.0.1"
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(database['NAME'], safe='')}"


@pytest.fixture
def celery(request, transactional_db, settings, tmp_path, exact):
    """``celery.worker()``, ``celery.beat()``: real processes on the test database pytest-django created.

    Depends on ``transactional_db`` so it is torn down (processes stopped)
    before pytest-django flushes the database.
    """
    import redis

    broker = worker_broker_url()
    redis.Redis.from_url(broker).flushdb()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EMAIL_BACKEND", "EMAIL_FILE_PATH"}
        and not key.startswith(("REFRESH_", "PYTEST_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": _database_url(settings.DATABASES["default"]),
            "CELERY_BROKER_URL": broker,
            "OAUTH_ALLOW_INSECURE_URLS": "true",
            "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL,
            "SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(tmp_path / "mail"),
            "TOKENKEEPER_VAR_DIR": str(tmp_path / "var"),
            "TOKENKEEPER_ENV": "development",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **ENGINE_ENV,
        }
    )
    cluster = CeleryCluster(tmp_path, env)
    request.node._celery_cluster = cluster
    try:
        yield cluster
    finally:
        cluster.stop_all()
        redis.Redis.from_url(broker).flushdb()
