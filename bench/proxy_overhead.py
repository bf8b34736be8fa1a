#!/usr/bin/env python
"""The latency the provider proxy adds over calling the provider directly, under gunicorn (issue 11).

Starts the Exact Online emulator (``tests/peers/exact_online.py``, a stdlib
threaded HTTP server, limits raised so that its own 60-a-minute budget does
not stop the run) and gunicorn with ``config/gunicorn.conf.py`` on loopback
ports, against PostgreSQL and Redis. Seeds one workspace with an Exact Online
connection holding a token the emulator issued and an API key with the
``tokens`` scope. Then alternates rounds of N sequential calls on one
keep-alive connection each, for both paths in every round (so that a machine
whose speed drifts drifts for both alike):

- **direct**: ``GET {emulator}/api/v1/{path}`` with the access token;
- **proxy**: ``GET {gunicorn}/api/v1/workspaces/…/connections/{id}/proxy/{path}``
  with the API key (the fast path, then the emulator).

Paths: ``current/Me`` (no rate budget) and ``{division}/crm/Accounts`` (the
Exact Online rate budget in Redis taken and seeded on every call). Reported:
p50 and p99 of each, and the added latency (proxy − direct) at p50 and p99.

The database ``--database`` is created (and dropped at the end unless
``--keep``); the rate-budget keys of the bench's OAuth client in Redis are
deleted at the end. Nothing else is touched.

    .venv/bin/python bench/proxy_overhead.py --calls 2000 --rounds 3
    .venv/bin/python bench/proxy_overhead.py --postgres postgres://postgres@127.0.0.1:5432 \\
        --redis-url redis://127.0.0.1:6379/7 --database tk_proxy_bench

Results: a table on stdout and JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import secrets
import shutil
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
    base_env,
    cpu_model,
    free_port,
    group_cpu_seconds,
    log,
    start_gunicorn,
    stop,
)

CLIENT_ID = "bench-proxy-client"
CLIENT_SECRET = "bench-proxy-secret"
DIVISION = 123456


def create_database(postgres: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{postgres}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(postgres: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{postgres}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(args, var_dir: str) -> dict[str, str]:
    env = base_env(database_url=f"{args.postgres}/{args.database}", redis_url=args.redis_url, var_dir=var_dir)
    env.update(
        TOKENKEEPER_ENV="development",  # the emulator speaks http on loopback: insecure URLs allowed
        OAUTH_ALLOW_INSECURE_URLS="true",
        PUBLIC_BASE_URL="http://127.0.0.1",
        GUNICORN_ACCESS_LOG="",
        WEB_CONCURRENCY=str(args.workers),
        GUNICORN_THREADS=str(args.threads),
    )
    return env


def seed(exact) -> tuple[str, str, str, str]:
    """(workspace slug, connection id, raw API key, access token)."""
    from django.utils import timezone

    from audit.services import SYSTEM
    from connections.models import Connection, Status
    from oauthclients.models import OAuthClient
    from workspaces.models import Workspace
    from workspaces.services import api_key_create

    body = exact.issue_tokens(CLIENT_ID, "jan@example.nl")
    slug = f"bench-proxy-{secrets.token_hex(4)}"
    workspace = Workspace.objects.create(name="Proxy bench", slug=slug)
    client = OAuthClient.objects.create(
        workspace=workspace,
        provider="exact_online",
        name="Exact bench",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        authorization_url=exact.authorization_url,
        token_url=exact.token_url,
        site="nl",
        access_token_expires_in=600_000,
        refresh_token_expires_in=0,
    )
    now = timezone.now()
    expires = now + timedelta(seconds=int(body["expires_in"]))
    connection = Connection.objects.create(
        workspace=workspace,
        oauth_client=client,
        name="Jansen",
        status=Status.ACTIVE,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        token_type="bearer",
        access_token_expires_at=expires,
        access_token_lifetime=int(body["expires_in"]),
        refresh_due_at=expires - timedelta(seconds=25),
        account_division=DIVISION,
        account_details={"Division": DIVISION},
        connected_at=now,
    )
    _, raw = api_key_create(workspace=workspace, name="bench", scopes=["tokens"], actor=SYSTEM)
    return slug, str(connection.id), raw, body["access_token"]


def timed_calls(port: int, path: str, headers: dict, n: int) -> list[float]:
    """n sequential GETs on one keep-alive connection; milliseconds each (response read to the end)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            times.append((time.perf_counter() - start) * 1000)
            if response.status != 200:
                raise SystemExit(f"GET {path} answered {response.status}: {response.headers} {body[:300]!r}")
    finally:
        conn.close()
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(round(q * (len(ordered) - 1))), len(ordered) - 1)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="server URL, no database")
    p.add_argument("--database", default="tk_proxy_bench", help="created for the run (%(default)s)")
    p.add_argument("--keep", action="store_true", help="keep the database and gunicorn's log directory")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/7"))
    p.add_argument("--calls", type=int, default=2000, help="calls per round and kind (%(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (%(default)s)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn processes (%(default)s)")
    p.add_argument("--threads", type=int, default=4, help="gunicorn threads per process (%(default)s)")
    p.add_argument("--label", default="")
    args = p.parse_args(argv)

    from tests.peers.exact_online import ExactOnlineEmulator

    var_dir = tempfile.mkdtemp(prefix="tokenkeeper-proxy-bench-")
    env = server_env(args, var_dir)
    log(f"creating database {args.database}")
    create_database(args.postgres, args.database)
    server = None
    exact = ExactOnlineEmulator(access_token_lifetime=6 * 3600, minutely_limit=10**9, daily_limit=10**9)
    exact.add_client(CLIENT_ID, CLIENT_SECRET, name="Tokenkeeper bench")
    exact.add_user("jan@example.nl", full_name="Jan de Vries", divisions=[DIVISION])
    exact.set_api_results("crm/Accounts", [{"ID": "a1", "Name": "Bakkerij Jansen", "City": "Utrecht"}])
    report: dict = {"started_at": datetime.now(UTC).isoformat(), "calls": args.calls, "rounds": args.rounds}
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        os.environ.update(env)
        import django

        django.setup()
        with exact:
            slug, connection_id, raw_key, access_token = seed(exact)
            from django.db import connections

            connections.close_all()
            port = free_port()
            server = start_gunicorn(["-c", "config/gunicorn.conf.py"], env, port, Path(var_dir))
            exact_port = int(exact.base_url.rsplit(":", 1)[1])
            direct_headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
            proxy_headers = {"Authorization": f"Bearer {raw_key}", "Accept": "application/json"}
            proxy_base = f"/api/v1/workspaces/{slug}/connections/{connection_id}/proxy"
            results = {}
            paths = ("current/Me", f"{DIVISION}/crm/Accounts")
            # Warm-up: every gunicorn worker imports, connects and fills its pools.
            for path in paths:
                timed_calls(exact_port, f"/api/v1/{path}", direct_headers, 200)
                for _ in range(4):
                    timed_calls(port, f"{proxy_base}/{path}", proxy_headers, 100)
            samples = {path: {"direct": [], "proxy": [], "cpu": [], "added": []} for path in paths}
            # Rounds outside, paths inside: a machine that drifts in speed drifts for both paths alike.
            for number in range(1, args.rounds + 1):
                for path in paths:
                    got = samples[path]
                    d = timed_calls(exact_port, f"/api/v1/{path}", direct_headers, args.calls)
                    cpu0 = group_cpu_seconds(server.pid)
                    x = timed_calls(port, f"{proxy_base}/{path}", proxy_headers, args.calls)
                    got["cpu"].append((group_cpu_seconds(server.pid) - cpu0) / args.calls * 1000)
                    got["direct"] += d
                    got["proxy"] += x
                    got["added"].append(statistics.median(x) - statistics.median(d))
                    log(
                        f"{path} round {number}: direct p50 {statistics.median(d):.3f} ms, "
                        f"proxy p50 {statistics.median(x):.3f} ms, gunicorn CPU {got['cpu'][-1]:.3f} ms/call, "
                        f"load {os.getloadavg()[0]:.2f}"
                    )
            results = {}
            for path in paths:
                got = samples[path]
                row = {
                    "gunicorn_cpu_ms_per_call": round(statistics.median(got["cpu"]), 3),
                    "direct_p50_ms": round(percentile(got["direct"], 0.50), 3),
                    "direct_p99_ms": round(percentile(got["direct"], 0.99), 3),
                    "proxy_p50_ms": round(percentile(got["proxy"], 0.50), 3),
                    "proxy_p99_ms": round(percentile(got["proxy"], 0.99), 3),
                }
                row["added_p50_ms"] = round(row["proxy_p50_ms"] - row["direct_p50_ms"], 3)
                row["added_p99_ms"] = round(row["proxy_p99_ms"] - row["direct_p99_ms"], 3)
                # Each round's own added p50 (proxy p50 − direct p50 of that round): the spread the machine gave.
                row["added_p50_ms_by_round"] = [round(value, 3) for value in got["added"]]
                results[path.replace(str(DIVISION), "{division}")] = row
            report["results"] = results
    finally:
        if server is not None:
            stop(server)
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(args.redis_url)
            keys = list(client.scan_iter(f"tokenkeeper:ratebudget:{CLIENT_ID}:*"))
            if keys:
                client.delete(*keys)
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if not args.keep:
            drop_database(args.postgres, args.database)
            shutil.rmtree(var_dir, ignore_errors=True)
    report["machine"] = {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "load": os.getloadavg(),
    }
    print()
    print(f"{report['machine']['cpu']}, {report['machine']['cpus']} CPUs; {args.rounds} × {args.calls} calls each")
    print(
        f"{'path':28} {'direct p50':>11} {'p99':>8} {'proxy p50':>10} {'p99':>8} {'added p50':>10} {'p99':>8} "
        f"{'CPU/call':>9}"
    )
    for path, row in report["results"].items():
        print(
            f"{path:28} {row['direct_p50_ms']:>11.3f} {row['direct_p99_ms']:>8.3f} {row['proxy_p50_ms']:>10.3f} "
            f"{row['proxy_p99_ms']:>8.3f} {row['added_p50_ms']:>10.3f} {row['added_p99_ms']:>8.3f} "
            f"{row['gunicorn_cpu_ms_per_call']:>9.3f}"
        )
        rounds = row["added_p50_ms_by_round"]
        print(
            f"{'':28} added p50 by round: {', '.join(f'{value:.2f}' for value in rounds)} "
            f"(best {min(rounds):.2f}, median {statistics.median(rounds):.2f})"
        )
    print(f"load average at the end: {report['machine']['load']}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = f"proxy_overhead_{datetime.now(UTC):%Y%m%dT%H%M%S}{'_' + args.label if args.label else ''}.json"
    (out / name).write_text(json.dumps(report, indent=2))
    log(f"results: {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
