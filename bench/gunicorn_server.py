"""What the benchmarks that load the web server share: gunicorn started on a
loopback port and stopped with its workers, the CPU its process group used,
and the settings every such run gives it.

Used by ``token_api_load.py`` and ``proxy_overhead.py``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIELD_KEY = base64.urlsafe_b64encode(b"tokenkeeper-bench-key-0123456789").decode()
SECRET_KEY = "bench-only-secret-key-not-for-production-" + "x9" * 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(*, database_url: str, redis_url: str, var_dir: str) -> dict[str, str]:
    """The environment of a benchmarked server: this one's, without test or engine overrides, plus the bench's keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFRESH_", "PYTEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        SECRET_KEY=SECRET_KEY,
        FIELD_ENCRYPTION_KEYS=FIELD_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        TOKENKEEPER_VAR_DIR=var_dir,
        PROMETHEUS_MULTIPROC_DIR=str(Path(var_dir) / "metrics"),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def start_gunicorn(options: list[str], env: dict, port: int, log_dir: Path, *, health_headers=None) -> subprocess.Popen:
    """``gunicorn config.wsgi OPTIONS`` on 127.0.0.1:port in a process group of its own, once /healthz answers 200."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn), "config.wsgi", *options, "--bind", f"127.0.0.1:{port}"]
    log(f"starting {' '.join(command[1:])}")
    out = (log_dir / "gunicorn.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz", headers=health_headers or {})
            if conn.getresponse().status == 200:
                return process
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not come up:\n{(log_dir / 'gunicorn.log').read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every process in gunicorn's process group (master and workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5: pgrp
                total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"
