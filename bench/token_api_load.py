#!/usr/bin/env python
"""The token API against ``/healthz`` under gunicorn, in one run (acceptance point 1 of the
production issue).

Starts gunicorn with production settings (``TOKENKEEPER_ENV=production``,
``DEBUG`` off, PostgreSQL, Redis) on a free loopback port, seeds one workspace
with one valid Exact Online connection and an API key with the ``tokens``
scope, and drives both endpoints with ``wrk`` in alternating rounds, so that
both see the same machine. Reported per round and as a spread over rounds:
requests/s, p50 and p99 latency, the ratio token/healthz, gunicorn's CPU per
request, and, measured in-process with Django's test client, the queries of
one token request (with the API key cold and warm in the key cache) and the
CPU of one request of each kind.

The rows it creates (a workspace ``bench-tokens-<random>`` and what hangs off
it) are deleted at the end; it migrates the database first. It uses the cache
and the key-revocation counter of ``--redis-url``; nothing is flushed.

    .venv/bin/python bench/token_api_load.py --database-url postgres://postgres@127.0.0.1:5432/tk_h9 \\
        --redis-url redis://127.0.0.1:6379/14 --rounds 5 --duration 10
    .venv/bin/python bench/token_api_load.py ... --gunicorn "--workers 4"          # the README's old command
    .venv/bin/python bench/token_api_load.py ... --gunicorn "-c config/gunicorn.conf.py"   # the shipped config (default)

Needs ``wrk`` (``apt-get install wrk``). Results: a table on stdout and JSON
under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gunicorn_server import (  # noqa: E402 (after the path set-up)
    CLK_TCK,
    base_env,
    free_port,
    group_cpu_seconds,
    log,
    start_gunicorn,
    stop,
)

# A token about as long as Exact Online's (they are ~600 characters).
ACCESS_TOKEN = "gAAAAAbench" + "Q" * 590


def server_env(args, var_dir: str) -> dict[str, str]:
    env = base_env(database_url=args.database_url, redis_url=args.redis_url, var_dir=var_dir)
    env.update(TOKENKEEPER_ENV="production", PUBLIC_BASE_URL="https://127.0.0.1")
    for item in args.env or []:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    import django

    django.setup()


def seed() -> tuple[str, str, str]:
    """A workspace with one valid Exact Online connection and a ``tokens`` key: (slug, connection id, raw key)."""
    from django.utils import timezone

    from audit.services import SYSTEM
    from connections.models import Connection, Status
    from oauthclients.models import OAuthClient
    from workspaces.models import Workspace
    from workspaces.services import api_key_create

    slug = f"bench-tokens-{secrets.token_hex(4)}"
    workspace = Workspace.objects.create(name="Token bench", slug=slug)
    client = OAuthClient.objects.create(
        workspace=workspace,
        provider="exact_online",
        name="Exact bench",
        client_id="bench-client",
        client_secret="bench-secret",
        authorization_url="https://start.exactonline.nl/api/oauth2/auth",
        token_url="https://start.exactonline.nl/api/oauth2/token",
        site="nl",
        access_token_expires_in=600_000,
        refresh_token_expires_in=0,
    )
    now = timezone.now()
    expires = now + timedelta(hours=6)  # valid and not due for the whole run
    connection = Connection.objects.create(
        workspace=workspace,
        oauth_client=client,
        name="Acme BV",
        status=Status.ACTIVE,
        access_token=ACCESS_TOKEN,
        refresh_token="bench-refresh-token",
        token_type="bearer",
        access_token_expires_at=expires,
        access_token_lifetime=600,
        refresh_due_at=expires - timedelta(seconds=25),
        connected_at=now,
    )
    _, raw = api_key_create(workspace=workspace, name="bench", scopes=["tokens"], actor=SYSTEM)
    return slug, str(connection.id), raw


def unseed(slug: str) -> None:
    from workspaces.models import Workspace

    Workspace.objects.filter(slug=slug).delete()


HTTPS = {"HTTP_X_FORWARDED_PROTO": "https"}  # as the TLS-terminating proxy in front of gunicorn says


def in_process(token_path: str, raw_key: str, n: int) -> dict:
    """Queries per token request (key cold and warm) and CPU per request of each kind, with Django's test client."""
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from connections import rowcache
    from workspaces import keycache

    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}", **HTTPS}
    assert client.get(token_path, **auth).status_code == 200  # the key's last use recorded
    keycache.clear()
    cache.clear()
    rowcache.clear()
    with CaptureQueriesContext(connection) as cold:
        assert client.get(token_path, **auth).status_code == 200
    # Counted at once: every later request empties the connection's query log (request_started).
    queries = {"queries_key_cold": len(cold.captured_queries)}
    rowcache.clear()
    with CaptureQueriesContext(connection) as warm:
        assert client.get(token_path, **auth).status_code == 200
    queries.update(queries_key_warm=len(warm.captured_queries), queries_sql_warm=[q["sql"][:200] for q in warm])
    # The connection's row as a web process keeps it for CONNECTION_CACHE_SECONDS (once subscribed).
    deadline = time.monotonic() + 5
    while rowcache.lifetime() > 0 and not rowcache.listening() and time.monotonic() < deadline:
        time.sleep(0.05)
    client.get(token_path, **auth)
    with CaptureQueriesContext(connection) as row_cached:
        assert client.get(token_path, **auth).status_code == 200
    queries["queries_row_cached"] = len(row_cached.captured_queries)

    def cpu_ms(path: str, headers: dict) -> float:
        for _ in range(50):
            client.get(path, **headers)
        start = time.process_time()
        for _ in range(n):
            client.get(path, **headers)
        return (time.process_time() - start) / n * 1000

    return {
        **queries,
        "connection_cache_seconds": rowcache.lifetime() if rowcache.listening() else 0,
        "cpu_ms_healthz": round(min(cpu_ms("/healthz", HTTPS) for _ in range(3)), 3),
        "cpu_ms_token": round(min(cpu_ms(token_path, auth) for _ in range(3)), 3),
    }


def postgres_cpu_seconds(database: str) -> float:
    """utime + stime of the PostgreSQL backends serving ``database`` (their process titles name it)."""
    total = 0
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if f" {database} " not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy() -> tuple[float, float]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(args, url: str, headers: dict[str, str], duration: float, pgid: int) -> dict:
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{round(duration)}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    database = args.database_url.rsplit("/", 1)[-1].split("?")[0]
    cpu0, pg0, (busy0, total0) = group_cpu_seconds(pgid), postgres_cpu_seconds(database), machine_busy()
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    cpu1, pg1, (busy1, total1) = group_cpu_seconds(pgid), postgres_cpu_seconds(database), machine_busy()
    if "Latency Distribution" not in output:
        raise SystemExit(f"wrk measured nothing:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    return {
        "rps": rate,
        "requests": requests,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
        "p50_ms": _ms(latency["50"]),
        "p90_ms": _ms(latency["90"]),
        "p99_ms": _ms(latency["99"]),
        "gunicorn_cpu_ms_per_request": round((cpu1 - cpu0) / max(requests, 1) * 1000, 3),
        "postgres_cpu_ms_per_request": round(max(pg1 - pg0, 0) / max(requests, 1) * 1000, 3),
        "machine_busy": round((busy1 - busy0) / max(total1 - total0, 1), 3),
    }


def spread(values: list[float], digits: int = 1) -> str:
    low, high, mid = min(values), max(values), statistics.median(values)
    return f"{low:.{digits}f}–{high:.{digits}f} (median {mid:.{digits}f})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    p.add_argument("--gunicorn", default="-c config/gunicorn.conf.py", help="gunicorn options (%(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of each endpoint (%(default)s)")
    p.add_argument("--duration", type=float, default=10, help="seconds of wrk per endpoint and round (%(default)s)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (%(default)s)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (%(default)s)")
    p.add_argument("--cpu-samples", type=int, default=1000, help="in-process requests per CPU sample (%(default)s)")
    p.add_argument("--access-log", action="store_true", help="let gunicorn write its access log (to a file)")
    p.add_argument("--env", action="append", help="NAME=VALUE for the server, repeatable")
    p.add_argument("--label", default="", help="a word for the results file name")
    args = p.parse_args(argv)
    if not args.database_url.startswith("postgres") or not args.redis_url.startswith("redis"):
        raise SystemExit("Give --database-url postgres://… and --redis-url redis://… (or DATABASE_URL/REDIS_URL).")

    var_dir = tempfile.mkdtemp(prefix="tokenkeeper-token-bench-")
    log_dir = Path(var_dir)
    env = server_env(args, var_dir)
    log("migrating")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    setup_django(env)
    slug, connection_id, raw_key = seed()
    token_path = f"/api/v1/workspaces/{slug}/connections/{connection_id}/token"
    report: dict = {"started_at": datetime.now(UTC).isoformat(), "gunicorn": args.gunicorn, "env": args.env or []}
    server = None
    try:
        log("in-process: queries and CPU per request")
        report["in_process"] = in_process(token_path, raw_key, args.cpu_samples)
        log(json.dumps({k: v for k, v in report["in_process"].items() if k != "queries_sql_warm"}))
        from django.db import connections

        connections.close_all()
        port = free_port()
        access_log = {"GUNICORN_ACCESS_LOG": "-" if args.access_log else ""}
        server = start_gunicorn(
            shlex.split(args.gunicorn),
            {**env, **access_log},
            port,
            log_dir,
            health_headers={"X-Forwarded-Proto": "https"},  # production settings redirect plain http
        )
        base = f"http://127.0.0.1:{port}"
        https = {"X-Forwarded-Proto": "https"}
        key = {**https, "Authorization": f"Bearer {raw_key}"}
        wrk(args, f"{base}/healthz", https, 2, server.pid)  # warm-up: workers import, connect
        wrk(args, f"{base}{token_path}", key, 2, server.pid)
        rounds = []
        for number in range(1, args.rounds + 1):
            healthz = wrk(args, f"{base}/healthz", https, args.duration, server.pid)
            token = wrk(args, f"{base}{token_path}", key, args.duration, server.pid)
            ratio = token["rps"] / healthz["rps"]
            rounds.append({"healthz": healthz, "token": token, "ratio": round(ratio, 3)})
            log(
                f"round {number}: healthz {healthz['rps']:.0f}/s p50 {healthz['p50_ms']:.2f} ms p99 "
                f"{healthz['p99_ms']:.2f} ms | token {token['rps']:.0f}/s p50 {token['p50_ms']:.2f} ms p99 "
                f"{token['p99_ms']:.2f} ms (non-2xx {token['non_2xx']}) | ratio {ratio:.2f} | gunicorn CPU/request "
                f"{healthz['gunicorn_cpu_ms_per_request']:.2f} / {token['gunicorn_cpu_ms_per_request']:.2f} ms, "
                f"PostgreSQL {token['postgres_cpu_ms_per_request']:.2f} ms | "
                f"busy {healthz['machine_busy']:.0%} / {token['machine_busy']:.0%}"
            )
        report["rounds"] = rounds
    finally:
        if server is not None:
            stop(server)
        unseed(slug)
    report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()}
    print_summary(report)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = f"token_api_{datetime.now(UTC):%Y%m%dT%H%M%S}{'_' + args.label if args.label else ''}.json"
    (out / name).write_text(json.dumps(report, indent=2))
    log(f"results: {out / name}")
    return 0


def print_summary(report: dict) -> None:
    rounds = report.get("rounds") or []
    if not rounds:
        return
    h = [r["healthz"] for r in rounds]
    t = [r["token"] for r in rounds]
    ip = report["in_process"]
    print()
    print(f"gunicorn {report['gunicorn']}; {len(rounds)} rounds")
    print(f"  /healthz  requests/s {spread([x['rps'] for x in h])}  p50 ms {spread([x['p50_ms'] for x in h], 2)}")
    print(f"            p99 ms {spread([x['p99_ms'] for x in h])}")
    print(f"  token API requests/s {spread([x['rps'] for x in t])}  p50 ms {spread([x['p50_ms'] for x in t], 2)}")
    print(f"            p99 ms {spread([x['p99_ms'] for x in t])}")
    print(f"  ratio {spread([r['ratio'] for r in rounds], 2)}")
    print(
        f"  queries per token request: {ip['queries_key_cold']} (key not in the cache), "
        f"{ip['queries_key_warm']} (key seen in the last seconds), {ip['queries_row_cached']} "
        f"(connection row read in the last {ip['connection_cache_seconds']:g} s; 0 s: the row cache is off)"
    )
    print(f"  in-process CPU per request: healthz {ip['cpu_ms_healthz']} ms, token {ip['cpu_ms_token']} ms")
    print(
        f"  gunicorn CPU per request, ms: healthz {spread([x['gunicorn_cpu_ms_per_request'] for x in h], 2)}, "
        f"token {spread([x['gunicorn_cpu_ms_per_request'] for x in t], 2)}; PostgreSQL per token request "
        f"{spread([x['postgres_cpu_ms_per_request'] for x in t], 2)} ms; machine busy "
        f"{spread([x['machine_busy'] * 100 for x in h + t], 0)} %"
    )


if __name__ == "__main__":
    sys.exit(main())
