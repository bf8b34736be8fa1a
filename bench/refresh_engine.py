#!/usr/bin/env python
"""Benchmark of the token refresh engine (acceptance point 5).

Two phases, each against its own PostgreSQL database (dropped and created,
then migrated with ``manage.py migrate``) and Redis database 9:

``engine``
    10,000 Exact Online connections, seeded with real encrypted tokens that
    the Exact Online emulator (``tests/peers/exact_online.py``, 50 ms latency,
    600 s tokens, the 30 s refresh window enforced) issued. Their refreshes
    fall due over ``--spread`` seconds (due = expiry - 25 s, as the Exact
    policy computes it). Real Celery worker(s) and a real Celery beat
    (sweeping every ``--sweep-interval`` s) run as subprocesses and do the
    work. Measured per worker configuration: refreshes completed per second
    in steady state, the lead of each refresh (seconds before the token's
    expiry at which the provider received it; inside the window when
    0 < lead <= 30), failures, and CPU per process group.

``sweeper``
    1,000,000 connection rows (``INSERT ... SELECT generate_series``), 100 of
    them due, the rest due later or never. Times the real
    ``connections.refresh.claim_due`` over ``--sweep-runs`` runs
    (re-arming the 100 due rows between runs) and shows
    ``EXPLAIN (ANALYZE, BUFFERS)`` of the claim's SELECT.

Everything runs on this machine: the emulator lives in this process (a
thread-per-connection stdlib HTTP server), so the provider shares the cores
with the engine, PostgreSQL and Redis. Subprocesses are stopped and the bench
database is dropped at the end unless ``--keep``. Results: a summary on stdout
and JSON under ``bench/results/``.

    .venv/bin/python bench/refresh_engine.py                      # both phases, recommended config
    .venv/bin/python bench/refresh_engine.py --phases engine --configs prefork:4,threads:8x4
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import baseline  # noqa: E402 (after the path is set)

BENCH_DB = "tokenkeeper_bench"
CLIENT_ID = "bench-exact-client"
CLIENT_SECRET = "bench-exact-secret-8Qm2"  # the emulator's, not a real one
# A fixed Fernet key so every process (driver, workers, beat) can decrypt.
FIELD_KEY = base64.urlsafe_b64encode(b"tokenkeeper-bench-key-0123456789").decode()
WINDOW = 30  # Exact Online accepts a refresh only in the last 30 s
AIM = 25  # ... and the Exact policy aims 5 s after the window opens: due = expiry - 25 s
ACCESS_LIFETIME = 600
DEFAULT_CONFIGS = "prefork:4"
MATRIX_CONFIGS = "prefork:4,prefork:6,prefork:8,prefork:32,threads:8x4,threads:16x2"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values: list[float], q: float) -> float | None:
    """Percentile with linear interpolation (q in 0..100)."""
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def rnd(value, digits=2):
    return None if value is None else round(value, digits)


# --- Environment and database ----------------------------------------------------------


def bench_env(args, var_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"{args.pg_url.rstrip('/')}/{BENCH_DB}",
        REDIS_URL=args.redis_url,
        CELERY_BROKER_URL=args.redis_url,
        OAUTH_ALLOW_INSECURE_URLS="true",
        FIELD_ENCRYPTION_KEYS=FIELD_KEY,
        SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
        DEBUG="false",  # as in production: no query log in the workers
        LOG_LEVEL=args.log_level,
        REFRESH_SWEEP_SECONDS=str(args.sweep_interval),
        TOKENKEEPER_VAR_DIR=var_dir,
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    for item in getattr(args, "env", None) or []:
        name, _, value = item.partition("=")
        env[name] = value  # a setting under trial, e.g. REFRESH_BATCH_MAX=10
    if getattr(args, "tls", False):
        args.tls_files = make_tls_files(var_dir)
        env["REQUESTS_CA_BUNDLE"] = args.tls_files[0]  # requests trusts the provider's self-signed certificate
    else:
        args.tls_files = None
    return env


def admin_sql(args, *statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{args.pg_url.rstrip('/')}/postgres", autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


class RunLock:
    """One bench run at a time on this PostgreSQL server: a second one would drop the first one's database
    and flush its broker. A session-level advisory lock, held by a connection open for the whole run."""

    KEY = 0x746B_6265  # "tkbe"

    def __init__(self, args):
        import psycopg

        self.conn = psycopg.connect(f"{args.pg_url.rstrip('/')}/postgres", autocommit=True)
        if not self.conn.execute("SELECT pg_try_advisory_lock(%s)", [self.KEY]).fetchone()[0]:
            self.conn.close()
            raise SystemExit(
                "Another bench run is using the bench database and Redis database right now "
                "(advisory lock held); try again when it has finished."
            )

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def create_database(args, env) -> None:
    log(f"creating database {BENCH_DB} and migrating")
    admin_sql(args, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)", f"CREATE DATABASE {BENCH_DB}")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


def drop_database(args) -> None:
    log(f"dropping database {BENCH_DB}")
    admin_sql(args, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def setup_django(env) -> None:
    os.environ.update(
        {
            k: env[k]
            for k in (
                "DJANGO_SETTINGS_MODULE",
                "DATABASE_URL",
                "REDIS_URL",
                "CELERY_BROKER_URL",
                "OAUTH_ALLOW_INSECURE_URLS",
                "FIELD_ENCRYPTION_KEYS",
                "SECRET_KEY",
                "DEBUG",
                "LOG_LEVEL",
                "REFRESH_SWEEP_SECONDS",
                "TOKENKEEPER_VAR_DIR",
                "REQUESTS_CA_BUNDLE",
            )
            if k in env
        }
    )
    import django

    django.setup()


def base_rows(token_url: str, authorization_url: str):
    """The workspace and Exact Online OAuth client every bench connection belongs to."""
    from oauthclients.models import OAuthClient
    from workspaces.models import Workspace

    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    client, _ = OAuthClient.objects.update_or_create(
        workspace=workspace,
        name="Exact Online (bench)",
        defaults={
            "provider": "exact_online",
            "site": "nl",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authorization_url": authorization_url,
            "token_url": token_url,
            "scopes": "",
            "access_token_expires_in": ACCESS_LIFETIME * 1000,
            "refresh_token_expires_in": 30 * 24 * 3600 * 1000,
            "token_endpoint_auth_method": "client_secret_post",
            "use_pkce": False,
        },
    )
    return workspace, client


def truncate_connections() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # CASCADE: and every table that refers to connections (search text, integrations' rows).
        cursor.execute(
            "TRUNCATE connections_connection, connections_connectionevent, "
            "connections_authorizationstate, connections_connectlink CASCADE"
        )


# --- Process CPU accounting (from /proc) --------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, cpu seconds) of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    if comm == "postgres" and fields[1] == "1":
        # The postmaster: add what its exited children (backends) used.
        return comm, 1, sum(int(x) for x in fields[11:15]) / CLK_TCK
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _all_procs() -> dict[int, tuple[str, int, float]]:
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _proc_stat(int(name))
            if stat:
                procs[int(name)] = stat
    return procs


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class CpuSampler:
    """Cumulative CPU seconds per group of processes.

    Groups given by root pid (with descendants), plus ``postgres`` (the
    backends of the bench database and the server's shared background
    processes), ``redis`` (the whole server) and ``others`` (whatever else
    kept the machine busy: other people's work on a shared machine).
    """

    def __init__(self, groups: dict[str, list[int]]):
        self.groups = groups
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._pg_cmd: dict[int, str] = {}

    def _descendants(self, procs, roots: list[int]) -> set[int]:
        found = {r for r in roots if r in procs}
        changed = True
        while changed:
            changed = False
            for pid, (_, ppid, _) in procs.items():
                if ppid in found and pid not in found:
                    found.add(pid)
                    changed = True
        return found

    def sample(self) -> None:
        procs = _all_procs()
        totals: dict[str, float] = {}
        for group, roots in self.groups.items():
            # This process started the workers: it counts for itself only.
            pids = {r for r in roots if r in procs} if group == "driver" else self._descendants(procs, roots)
            totals[group] = sum(procs[p][2] for p in pids)
        postgres = 0.0
        for pid, (comm, _, cpu) in procs.items():
            if comm == "postgres":
                if pid not in self._pg_cmd:
                    self._pg_cmd[pid] = _cmdline(pid)
                # A client backend reads "postgres: 15/main: USER DATABASE HOST(PORT) STATE"; count ours
                # and the server's shared processes (postmaster, WAL writer, checkpointer, autovacuum).
                words = self._pg_cmd[pid].split()
                backend = len(words) >= 5 and "(" in words[4]
                if BENCH_DB in words or not backend:
                    postgres += cpu
        totals["postgres"] = postgres
        totals["redis"] = sum(s[2] for s in procs.values() if s[0].startswith("redis-server"))
        busy, total = _machine_cpu()
        totals["machine_busy"], totals["machine_total"] = busy, total
        self.samples.append((time.time(), totals))

    def usage(self, start: float, end: float) -> dict[str, float]:
        """Average cores used per group between two wall-clock times (nearest samples)."""
        if len(self.samples) < 2:
            return {}
        first = min(self.samples, key=lambda s: abs(s[0] - start))
        last = min(self.samples, key=lambda s: abs(s[0] - end))
        wall = last[0] - first[0]
        if wall <= 0:
            return {}
        out = {}
        for key in first[1]:
            if key in ("machine_busy", "machine_total"):
                continue
            out[key] = rnd((last[1][key] - first[1][key]) / wall, 2)
        total = last[1]["machine_total"] - first[1]["machine_total"]
        busy = last[1]["machine_busy"] - first[1]["machine_busy"]
        ours = sum(v for k, v in out.items())
        out["others"] = rnd(max(busy / wall - ours, 0.0), 2)
        out["machine_busy_pct"] = rnd(100 * busy / total, 1) if total else None
        return out


# --- The engine phase ------------------------------------------------------------------


@dataclass
class EngineConfig:
    pool: str
    concurrency: int
    processes: int = 1

    @classmethod
    def parse(cls, text: str) -> EngineConfig:
        pool, _, rest = text.strip().partition(":")
        conc, _, procs = rest.partition("x")
        if pool not in ("prefork", "threads") or not conc.isdigit():
            raise argparse.ArgumentTypeError(
                f"bad config {text!r}: use POOL:CONCURRENCY[xPROCESSES], e.g. prefork:4 or threads:8x4"
            )
        return cls(pool, int(conc), int(procs or 1))

    @property
    def label(self) -> str:
        return f"{self.pool}:{self.concurrency}" + (f"x{self.processes}" if self.processes > 1 else "")

    def batching_env(self, env: dict[str, str], given: list[str] | None) -> dict[str, str]:
        """The engine's batching fitted to this configuration, unless ``--env`` set it:
        one task per worker process (prefork children, or threads of the threads pool),
        and no threads inside a task when the pool is already threads."""
        tuned = {"REFRESH_BATCH_FANOUT": str(self.concurrency * self.processes)}
        if self.pool == "threads":
            tuned["REFRESH_THREADS"] = "1"
        names = {item.partition("=")[0] for item in given or []}
        return {**env, **{k: v for k, v in tuned.items() if k not in names}}

    def worker_commands(self, celery: str, loglevel: str) -> list[list[str]]:
        return [
            [
                celery,
                "-A",
                "config",
                "worker",
                "-Q",
                "refresh",  # the refresh queue alone, as in production (docs/deploy.md)
                f"--pool={self.pool}",
                f"--concurrency={self.concurrency}",
                f"--loglevel={loglevel}",
                "-n",
                f"bench{i}@%h",
            ]
            for i in range(self.processes)
        ]


@dataclass
class Engine:
    procs: list[subprocess.Popen] = field(default_factory=list)
    beat: subprocess.Popen | None = None

    def stop(self) -> None:
        everything = [*self.procs, *([self.beat] if self.beat else [])]
        for proc in everything:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 20
        for proc in everything:
            try:
                proc.wait(timeout=max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # A prefork child may outlive its parent for a moment: kill what is left of each group.
        for proc in everything:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs, self.beat = [], None


def start_workers(config: EngineConfig, env, log_dir: Path, loglevel: str) -> Engine:
    from config.celery_app import app

    celery = str(Path(sys.executable).parent / "celery")
    engine = Engine()
    for i, cmd in enumerate(config.worker_commands(celery, loglevel)):
        out = open(log_dir / f"worker-{config.label.replace(':', '-')}-{i}.log", "wb")  # noqa: SIM115
        engine.procs.append(
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        )
    deadline = time.time() + 90
    while time.time() < deadline:
        for proc in engine.procs:
            if proc.poll() is not None:
                engine.stop()
                raise RuntimeError(f"a worker exited with {proc.returncode}; see {log_dir}")
        replies = [r for r in app.control.ping(timeout=1.0) or [] if next(iter(r)).startswith("bench")]
        if len(replies) >= config.processes:
            return engine
        time.sleep(0.5)
    engine.stop()
    raise RuntimeError("workers did not answer a ping within 90 s")


def start_beat(engine: Engine, env, log_dir: Path, var_dir: str, loglevel: str) -> None:
    celery = str(Path(sys.executable).parent / "celery")
    schedule = Path(var_dir) / "beat-schedule"
    for old in Path(var_dir).glob("beat-schedule*"):
        old.unlink()
    out = open(log_dir / "beat.log", "ab")  # noqa: SIM115
    engine.beat = subprocess.Popen(
        [celery, "-A", "config", "beat", f"--loglevel={loglevel}", "-s", str(schedule)],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class _BenchEmulatorMixin:
    def set_access_expiry(self, expiries: dict[int, float]) -> None:
        """Move many tokens' expiry at once (the emulator has no public call for that)."""
        with self._lock:
            for grant_id, expires_at in expiries.items():
                grant = self._grants[grant_id]
                grant.access_expires_at = expires_at
                self._access_tokens[grant.access_token] = (grant_id, expires_at)


def make_tls_files(directory: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (the bench's provider speaking https); returns (cert, key) paths."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = Path(directory) / "provider-cert.pem", Path(directory) / "provider-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def _provider_main(conn, latency: float, tls: tuple[str, str] | None = None) -> None:
    """The provider process: an Exact Online emulator, driven over a pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops us
    from tests.peers.exact_online import ExactOnlineEmulator

    class BenchExactOnline(_BenchEmulatorMixin, ExactOnlineEmulator):
        pass

    exact = BenchExactOnline(
        latency=latency,
        access_token_lifetime=ACCESS_LIFETIME,
        refresh_window=WINDOW,
        clients={CLIENT_ID: CLIENT_SECRET},
    ).start()
    # http.server writes a response's headers and body in two send() calls. With Nagle's algorithm on,
    # the body then waits for the client's delayed ACK (40 ms) on a kept-alive connection: an emulator
    # artifact, not provider latency. Accepted sockets inherit TCP_NODELAY from the listening one (Linux).
    exact._server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    token_url, authorization_url = exact.token_url, exact.authorization_url
    if tls:
        import ssl

        # https as in production: same fd, so the running accept loop carries on; each connection's
        # handshake happens in its handler thread on the first read.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        exact._server.socket = context.wrap_socket(
            exact._server.socket, server_side=True, do_handshake_on_connect=False
        )
        token_url = token_url.replace("http://", "https://", 1)
        authorization_url = authorization_url.replace("http://", "https://", 1)
    conn.send(
        {
            "token_url": token_url,
            "authorization_url": authorization_url,
            "refresh_token_lifetime": exact.refresh_token_lifetime,
        }
    )
    while True:
        command, *params = conn.recv()
        if command == "stop":
            exact.stop()
            conn.send(None)
            return
        if command == "issue":
            n, expires_in = params
            out = []
            for i in range(n):
                body = exact.issue_tokens(CLIENT_ID, user=f"user{i:06d}@bench.example", access_expires_in=expires_in)
                out.append(
                    (
                        exact.grant_for(body["refresh_token"]).id,
                        body["access_token"],
                        body["refresh_token"],
                        int(body["expires_in"]),
                    )
                )
            conn.send(out)
        elif command == "set_access_expiry":
            conn.send(exact.set_access_expiry(params[0]))
        elif command == "count":
            conn.send(exact.count(params[0]))
        elif command == "outcomes":
            conn.send(exact.outcomes)
        elif command == "records":
            conn.send([(r.time, r.grant_type, r.outcome, r.lead) for r in exact.token_requests])
        elif command == "overlapping_refreshes":
            conn.send(exact.overlapping_refreshes)
        elif command == "clear_records":
            conn.send(exact.clear_records())
        else:
            conn.send(ValueError(command))


class Provider:
    """The Exact Online emulator in a process of its own (so its CPU is measured apart), driven over a pipe."""

    def __init__(self, latency: float, tls: tuple[str, str] | None = None):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_provider_main, args=(child, latency, tls), name="bench-provider", daemon=True
        )
        self.process.start()
        info = self._conn.recv()
        self.token_url, self.authorization_url = info["token_url"], info["authorization_url"]
        self.refresh_token_lifetime = info["refresh_token_lifetime"]
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _call(self, *command):
        with self._lock:
            self._conn.send(command)
            answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def issue(self, n: int, expires_in: float) -> list[tuple[int, str, str, int]]:
        return self._call("issue", n, expires_in)

    def set_access_expiry(self, expiries: dict[int, float]) -> None:
        self._call("set_access_expiry", expiries)

    def count(self, outcome: str) -> int:
        return self._call("count", outcome)

    @property
    def outcomes(self) -> dict[str, int]:
        return self._call("outcomes")

    def records(self) -> list[tuple[float, str | None, str, float | None]]:
        return self._call("records")

    @property
    def overlapping_refreshes(self) -> int:
        return self._call("overlapping_refreshes")

    def clear_records(self) -> None:
        self._call("clear_records")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._call("stop")
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


def seed_connections(exact, workspace, client, n: int) -> dict[int, int]:
    """Create ``n`` active connections holding emulator-issued tokens; not due yet. Returns index -> grant id."""
    from django.utils import timezone

    from connections.models import Connection, Status

    now = timezone.now()
    grants: dict[int, int] = {}
    rows = []
    for i, (grant_id, access_token, refresh_token, expires_in) in enumerate(exact.issue(n, 3600)):
        grants[i] = grant_id
        rows.append(
            Connection(
                workspace=workspace,
                oauth_client=client,
                name=f"bench {i:06d}",
                status=Status.ACTIVE,
                access_token=access_token,
                refresh_token=refresh_token,
                token_type="bearer",
                access_token_expires_at=now,
                access_token_lifetime=expires_in,
                refresh_token_expires_at=now + timedelta(seconds=exact.refresh_token_lifetime),
                refresh_due_at=None,
                account_id=str(i),
                account_name=f"grant {grants[i]}",
                connected_at=now,
            )
        )
    Connection.objects.bulk_create(rows, batch_size=1000)
    return grants


def arm(exact, grants: dict[int, int], start: float, spread: float) -> None:
    """Make connection i due at start + i * step, its token expiring AIM seconds later (provider and DB agree)."""
    from django.db import connection

    n = len(grants)
    step = spread / n
    exact.set_access_expiry({gid: start + i * step + AIM for i, gid in grants.items()})
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE connections_connection SET "
            "  refresh_due_at = to_timestamp(%s) + (account_id::int * %s) * interval '1 second', "
            "  access_token_expires_at = to_timestamp(%s) + (account_id::int * %s) * interval '1 second'",
            [start, step, start + AIM, step],
        )


def run_engine_config(args, env, var_dir, log_dir, exact, workspace, client, config: EngineConfig) -> dict:
    from django.db import connection as db
    from django.db.models import Count

    from connections.models import Connection, Status

    log(f"--- {config.label}: seeding {args.connections} connections")
    truncate_connections()
    flush_redis(args.redis_url)
    exact.clear_records()
    grants = seed_connections(exact, workspace, client, args.connections)
    db.close()  # the driver's connection sits idle while the run goes on

    log(f"{config.label}: starting workers")
    env = config.batching_env(env, args.env)
    engine = start_workers(config, env, log_dir, args.log_level)
    profiler = None
    try:
        start_beat(engine, env, log_dir, var_dir, args.log_level)
        sampler = CpuSampler(
            {
                "workers": [p.pid for p in engine.procs],
                "beat": [engine.beat.pid],
                "provider": [exact.pid],
                "driver": [os.getpid()],
            }
        )
        start = time.time() + args.start_delay
        arm(exact, grants, start, args.spread)
        db.close()
        log(
            f"{config.label}: {args.connections} refreshes fall due over {args.spread:g} s from now+{args.start_delay:g} s"
        )
        if args.profile:
            profiler = start_profiler(engine, log_dir, config, args)
        deadline = start + args.spread + args.max_wait
        last_ok, last_change = 0, time.time()
        while time.time() < deadline:
            sampler.sample()
            ok = exact.count("ok")
            if ok != last_ok:
                last_ok, last_change = ok, time.time()
            if ok >= args.connections:
                break
            if time.time() - last_change > 30 and time.time() > start + args.spread:
                log(f"{config.label}: no progress for 30 s, giving up")
                break
            if int(time.time()) % 5 == 0:
                log(f"{config.label}: {ok} refreshed, outcomes {exact.outcomes}")
            time.sleep(1.0 - (time.time() % 1.0))
        time.sleep(1.5)  # let the last transactions commit
        sampler.sample()
    finally:
        if profiler is not None:
            with contextlib.suppress(Exception):
                profiler.wait(timeout=60)
        engine.stop()

    # --- collect -------------------------------------------------------------------------
    records = [r for r in exact.records() if r[1] == "refresh_token"]  # (time, grant type, outcome, lead)
    leads = [lead for _, _, outcome, lead in records if outcome == "ok" and lead is not None]
    outcomes: dict[str, int] = {}
    for _, _, outcome, _ in records:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    status_counts = dict(Connection.objects.order_by().values_list("status").annotate(n=Count("id")))
    done = sorted(
        t.timestamp()
        for t in Connection.objects.filter(status=Status.ACTIVE, last_refreshed_at__isnull=False).values_list(
            "last_refreshed_at", flat=True
        )
    )
    db.close()
    n = args.connections
    result = {
        "config": config.label,
        "pool": config.pool,
        "concurrency": config.concurrency,
        "processes": config.processes,
        "connections": n,
        "spread_s": args.spread,
        "engine_settings": {k: v for k, v in env.items() if k.startswith("REFRESH_")},
        "offered_per_s": rnd(n / args.spread, 1),
        "refreshed": len(done),
        "provider_outcomes": outcomes,
        "status_counts": status_counts,
    }
    if len(done) >= 10:
        t10, t90 = done[int(len(done) * 0.1)], done[int(len(done) * 0.9) - 1]
        result["steady_per_s"] = rnd(0.8 * len(done) / (t90 - t10), 1) if t90 > t10 else None
        result["steady_window_s"] = [rnd(t10 - start, 1), rnd(t90 - start, 1)]
        result["first_done_s"] = rnd(done[0] - start, 2)
        result["last_done_s"] = rnd(done[-1] - start, 2)
        result["overall_per_s"] = rnd(len(done) / (done[-1] - start), 1)
        per_second: dict[int, int] = {}
        for t in done:
            per_second[int(t - start)] = per_second.get(int(t - start), 0) + 1
        result["completed_per_second"] = [per_second.get(s, 0) for s in range(0, int(done[-1] - start) + 1)]
        result["peak_5s_per_s"] = rnd(
            max(
                sum(result["completed_per_second"][i : i + 5]) / 5
                for i in range(max(len(result["completed_per_second"]) - 4, 1))
            ),
            1,
        )
        result["cpu_cores"] = cores = sampler.usage(t10, t90)
        rate = result["steady_per_s"]
        if rate:
            ours = ("workers", "beat", "provider", "postgres", "redis")
            result["cpu_ms_per_refresh"] = {k: rnd(1000 * cores[k] / rate, 2) for k in ours if k in cores}
            engine = sum(cores[k] for k in ("workers", "beat", "postgres", "redis") if k in cores)
            result["cpu_ms_per_refresh"]["engine"] = rnd(1000 * engine / rate, 2)
            # What the engine (workers, beat, PostgreSQL, Redis) could do with the 2 cores to itself.
            result["projected_per_s_on_idle_cores"] = rnd((os.cpu_count() or 1) / (engine / rate), 0)
    inside = [x for x in leads if 0 < x <= WINDOW]
    result["lead_s"] = {
        "min": rnd(min(leads, default=None)),
        "p1": rnd(pct(leads, 1)),
        "p50": rnd(pct(leads, 50)),
        "p99": rnd(pct(leads, 99)),
        "max": rnd(max(leads, default=None)),
    }
    late = [AIM - x for x in leads]
    result["late_vs_due_s"] = {
        "min": rnd(min(late, default=None)),
        "p50": rnd(pct(late, 50)),
        "p99": rnd(pct(late, 99)),
        "max": rnd(max(late, default=None)),
    }
    result["inside_window_pct"] = rnd(100 * len(inside) / n, 3)
    result["overlapping_refreshes"] = exact.overlapping_refreshes
    return result


def start_profiler(engine: Engine, log_dir: Path, config: EngineConfig, args) -> subprocess.Popen | None:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        log("py-spy is not installed in the venv; skipping --profile")
        return None
    out = Path(args.results_dir) / f"profile-{config.label.replace(':', '-')}.txt"
    log(f"profiling worker {engine.procs[0].pid} (+children) for {args.profile:g} s into {out}")
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(engine.procs[0].pid),
            "--subprocesses",
            "--nonblocking",
            "--gil",
            "--rate",
            "200",
            "--duration",
            str(int(args.profile)),
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def engine_phase(args, env, var_dir, log_dir) -> list[dict]:
    exact = Provider(args.latency, args.tls_files)
    try:
        workspace, client = base_rows(exact.token_url, exact.authorization_url)
        results = []
        for config in args.configs:
            result = run_engine_config(args, env, var_dir, log_dir, exact, workspace, client, config)
            results.append(result)
            print_engine_result(result)
        return results
    finally:
        exact.stop()


def print_engine_result(r: dict) -> None:
    log(
        f"{r['config']}: refreshed {r['refreshed']}/{r['connections']}, steady {r.get('steady_per_s')}/s "
        f"(offered {r['offered_per_s']}/s), inside window {r['inside_window_pct']}%, lead {r['lead_s']}, "
        f"late vs due {r['late_vs_due_s']}, outcomes {r['provider_outcomes']}, cores {r.get('cpu_cores')}, "
        f"CPU ms/refresh {r.get('cpu_ms_per_refresh')}"
    )


# --- The sweeper phase ------------------------------------------------------------------


def sweeper_phase(args) -> dict:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from connections.refresh import claim_due

    workspace, client = base_rows("http://127.0.0.1:9/api/oauth2/token", "http://127.0.0.1:9/api/oauth2/auth")
    truncate_connections()
    rows, due, null_pct = args.sweep_rows, args.sweep_due, args.sweep_null_pct
    log(
        f"sweeper: inserting {rows:,} connections ({due} due, {null_pct}% never due, the rest due "
        f"over the next {args.sweep_horizon:g} s)"
    )
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        # Columns Django gives no database default: every NOT NULL one is set here. The
        # ciphertext is a constant (the sweeper never decrypts).
        cursor.execute(
            """
            INSERT INTO connections_connection (
                id, workspace_id, oauth_client_id, name, status, access_token, refresh_token, token_type,
                granted_scopes, access_token_expires_at, access_token_lifetime, account_id, account_name,
                account_email, account_details, refresh_due_at, refresh_failures, last_error, token_calls, created_at, updated_at)
            SELECT gen_random_uuid(), %(ws)s, %(client)s, 'bench ' || i,
                   CASE WHEN i <= %(nulls)s THEN 'needs_reauth' ELSE 'active' END,
                   %(cipher)s, %(cipher)s, 'bearer', '', now() + interval '10 minutes', 600, i::text, '', '', '{}',
                   CASE WHEN i <= %(nulls)s THEN NULL
                        WHEN i <= %(nulls)s + %(due)s THEN now() - (i - %(nulls)s) * interval '10 ms'
                        ELSE now() + interval '1 minute' + random() * %(horizon)s * interval '1 second' END,
                   0, '', 0, now(), now()
            FROM generate_series(1, %(rows)s) AS i
            """,
            {
                "ws": workspace.id,
                "client": client.id,
                "rows": rows,
                "due": due,
                "nulls": int(rows * null_pct / 100),
                "horizon": args.sweep_horizon,
                "cipher": "gAAAAABbenchconstantciphertext" + "x" * 140,
            },
        )
    insert_s = time.perf_counter() - t0
    connection.close()
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE connections_connection")
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('connections_connection')), "
            "pg_size_pretty(pg_relation_size('connection_refresh_due')), "
            "count(*) FILTER (WHERE refresh_due_at <= now()), count(*) FILTER (WHERE refresh_due_at IS NULL),"
            " count(*) FROM connections_connection"
        )
        table_size, index_size, due_now, never, total = cursor.fetchone()
    log(
        f"sweeper: inserted in {insert_s:.1f} s, vacuum/analyze {time.perf_counter() - t0:.1f} s; table {table_size}, "
        f"index connection_refresh_due {index_size}; {due_now} due, {never:,} never, {total:,} rows"
    )

    def rearm():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE connections_connection SET lease_token = NULL, lease_expires_at = NULL, "
                "interrupted_at = NULL WHERE refresh_due_at <= now()"
            )
            return cursor.rowcount

    # The SQL of the claim, as Django sends it.
    rearm()
    with CaptureQueriesContext(connection) as queries:
        ids, _ = claim_due(limit=500)
    select_sql = next(q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT"))
    update_sql = next(
        (q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")), ""
    )
    # What the claim sets for its transaction (SET LOCAL …): the EXPLAINs below run under it too.
    set_sqls = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SET ")]
    assert len(ids) == due, f"claimed {len(ids)}, expected {due}"

    # The insert's WAL would otherwise be checkpointed while we time (slow commits): settle first.
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    timings, select_ms, claimed = [], [], []
    parts: dict[str, list[float]] = {"select": [], "update": [], "commit_and_python": []}
    run_parts: dict[str, float] = {}

    def statement_timer(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            kind = sql.lstrip()[:6].lower()
            run_parts[kind] = run_parts.get(kind, 0.0) + (time.perf_counter() - t0) * 1000

    for _ in range(args.sweep_runs):
        rearm()
        run_parts.clear()
        with connection.execute_wrapper(statement_timer):
            t0 = time.perf_counter()
            ids, _ = claim_due(limit=500)
            elapsed = (time.perf_counter() - t0) * 1000
        timings.append(elapsed)
        claimed.append(len(ids))
        parts["select"].append(run_parts.get("select", 0.0))
        parts["update"].append(run_parts.get("update", 0.0))
        parts["commit_and_python"].append(elapsed - parts["select"][-1] - parts["update"][-1])
        # The SELECT alone (as the server executes it), in a transaction rolled back.
        rearm()
        with transaction.atomic(), connection.cursor() as cursor:
            for sql in set_sqls:
                cursor.execute(sql)
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + select_sql)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            select_ms.append(plan[0]["Execution Time"] + plan[0]["Planning Time"])
            transaction.set_rollback(True)
    rearm()
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in set_sqls:
            cursor.execute(sql)
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + select_sql)
        explain = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    uses_index = "connection_refresh_due" in explain and "Seq Scan" not in explain
    result = {
        "rows": total,
        "due": due_now,
        "never_due": never,
        "table_size": table_size,
        "index_size": index_size,
        "insert_s": rnd(insert_s, 1),
        "runs": args.sweep_runs,
        "claimed_per_run": sorted(set(claimed)),
        "claim_ms": {
            "median": rnd(statistics.median(timings), 3),
            "p99": rnd(pct(timings, 99), 3),
            "min": rnd(min(timings), 3),
            "max": rnd(max(timings), 3),
        },
        "select_server_ms": {"median": rnd(statistics.median(select_ms), 3), "p99": rnd(pct(select_ms, 99), 3)},
        "claim_parts_ms": {
            k: {"median": rnd(statistics.median(v), 3), "p99": rnd(pct(v, 99), 3)} for k, v in parts.items()
        },
        "select_sql": select_sql,
        "update_sql": update_sql[:400] + ("…" if len(update_sql) > 400 else ""),
        "explain": explain,
        "uses_index": uses_index,
    }
    log(
        f"sweeper: claim_due over {args.sweep_runs} runs: median {result['claim_ms']['median']} ms, "
        f"p99 {result['claim_ms']['p99']} ms (SELECT on the server: median {result['select_server_ms']['median']} ms; "
        f"parts: {result['claim_parts_ms']}); "
        f"index scan on connection_refresh_due: {uses_index}"
    )
    print(explain)
    truncate_connections()
    return result


# --- Main -------------------------------------------------------------------------------


def machine_info(args) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        pg = cursor.fetchone()[0]
        settings = {}
        for name in ("shared_buffers", "max_connections", "synchronous_commit", "work_mem"):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    connection.close()
    import celery
    import django
    import redis

    client = redis.Redis.from_url(args.redis_url)
    redis_version = client.info("server").get("redis_version")
    client.close()
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "celery": celery.__version__,
        "postgres": pg,
        "postgres_settings": settings,
        "redis": redis_version,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Configs are POOL:CONCURRENCY[xPROCESSES]: prefork:4, threads:8x4 "
        "(four worker processes). --configs matrix runs " + MATRIX_CONFIGS + ".",
    )
    p.add_argument("--phases", default="engine,sweeper", help="engine, sweeper or both (default: %(default)s)")
    p.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help="worker configurations to run, comma-separated, or 'matrix' (default: %(default)s)",
    )
    p.add_argument("--connections", type=int, default=10_000, help="connections in the engine phase (%(default)s)")
    p.add_argument(
        "--spread",
        type=float,
        default=10.0,
        help="seconds over which their refreshes fall due (default %(default)s: 1,000/s offered, "
        "more than the engine can do, so the steady rate is its capacity)",
    )
    p.add_argument("--latency", type=float, default=0.05, help="provider latency per token request, s (%(default)s)")
    p.add_argument(
        "--tls",
        action="store_true",
        help="the provider speaks https (self-signed certificate for 127.0.0.1), as a real one does",
    )
    p.add_argument("--sweep-interval", type=float, default=1.0, help="beat's sweep interval, s (%(default)s)")
    p.add_argument("--start-delay", type=float, default=3.0, help="seconds from arming to the first due refresh")
    p.add_argument(
        "--max-wait",
        type=float,
        default=120.0,
        help="give up this many seconds after the last refresh fell due (%(default)s)",
    )
    p.add_argument(
        "--env",
        action="append",
        metavar="NAME=VALUE",
        help="a setting for the workers and beat, from the environment like every setting, e.g. "
        "--env REFRESH_BATCH_MAX=10 (repeatable)",
    )
    p.add_argument("--log-level", default="WARNING", help="worker/beat log level (%(default)s)")
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="py-spy the first worker (and its children) for this many seconds (needs py-spy in the venv)",
    )
    p.add_argument("--sweep-rows", type=int, default=1_000_000, help="rows in the sweeper phase (%(default)s)")
    p.add_argument("--sweep-due", type=int, default=100, help="of which due (%(default)s)")
    p.add_argument(
        "--sweep-null-pct",
        type=float,
        default=10.0,
        help="percentage never due (needs_reauth: refresh_due_at NULL) (%(default)s)",
    )
    p.add_argument(
        "--sweep-horizon",
        type=float,
        default=600.0,
        help="the others fall due over this many seconds after the next minute (%(default)s)",
    )
    p.add_argument("--sweep-runs", type=int, default=50, help="timed claims (%(default)s)")
    p.add_argument(
        "--pg-url",
        default="postgres://postgres@127.0.0.1:5432",
        help="PostgreSQL server, without a database name (%(default)s)",
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="Redis database to use (flushed!)")
    p.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    p.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DB} database afterwards")
    p.add_argument(
        "--baseline",
        nargs="?",
        const="origin/main",
        metavar="REF",
        help="first run the engine phase of git REF (default origin/main) from a temporary worktree with its own "
        "virtualenv, on identical data, then this one, and print both with their ratio",
    )
    args = p.parse_args(argv)
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if not set(args.phases) <= {"engine", "sweeper"}:
        p.error("--phases takes engine and/or sweeper")
    configs = MATRIX_CONFIGS if args.configs == "matrix" else args.configs
    try:
        args.configs = [EngineConfig.parse(c) for c in configs.split(",") if c.strip()]
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    # Before this run takes the bench lock: the baseline's bench takes it too.
    baseline_report = baseline.run(args.baseline, baseline.engine_argv(argv), log) if args.baseline else None
    var_dir = tempfile.mkdtemp(prefix="tokenkeeper-bench-")
    log_dir = Path(var_dir) / "logs"
    log_dir.mkdir()
    env = bench_env(args, var_dir)
    started = datetime.now(UTC)
    lock = RunLock(args)
    create_database(args, env)
    setup_django(env)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine_info(args),
        "parameters": {k: (v if k != "configs" else [c.label for c in v]) for k, v in vars(args).items()},
        "logs": str(log_dir),
    }
    interrupted = threading.Event()
    try:
        if "engine" in args.phases:
            report["engine"] = engine_phase(args, env, var_dir, log_dir)
        if "sweeper" in args.phases:
            report["sweeper"] = sweeper_phase(args)
    except KeyboardInterrupt:
        interrupted.set()
        log("interrupted")
    finally:
        from django.db import connections

        connections.close_all()
        with contextlib.suppress(Exception):
            flush_redis(args.redis_url)
        if not args.keep:
            drop_database(args)
        lock.release()
    if baseline_report:
        report["baseline"] = {
            "ref": baseline_report["ref"],
            "commit": baseline_report["commit"],
            "engine": baseline_report.get("engine"),
            "comparison": baseline.compare(baseline_report, report),
        }
    out = Path(args.results_dir) / f"refresh_engine-{started:%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print_summary(report)
    if baseline_report:
        baseline.print_comparison(report["baseline"]["comparison"], baseline_report)
    log(f"results: {out} (worker/beat logs: {log_dir})")
    return 1 if interrupted.is_set() else 0


def print_summary(report: dict) -> None:
    print("\n=== Refresh engine benchmark ===")
    m = report["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB; PostgreSQL {m['postgres'].split()[1]}, "
        f"Redis {m['redis']}, Python {m['python']}, Celery {m['celery']}"
    )
    if report.get("engine"):
        print(
            "\nconfig         done   steady/s  peak5s/s  inside%  lead s min/p50/p99/max    "
            "cores: workers prov pg redis others  CPU ms/refresh (engine)"
        )
        for r in report["engine"]:
            lead, cpu, ms = r["lead_s"], r.get("cpu_cores") or {}, r.get("cpu_ms_per_refresh") or {}
            print(
                f"{r['config']:<14} {r['refreshed']:>5}  {r.get('steady_per_s')!s:>8}  {r.get('peak_5s_per_s')!s:>8}  "
                f"{r['inside_window_pct']:>7}  {lead['min']}/{lead['p50']}/{lead['p99']}/{lead['max']!s:<8}  "
                f"{cpu.get('workers')!s:>13} {cpu.get('provider')!s:>4} {cpu.get('postgres')!s:>4} "
                f"{cpu.get('redis')!s:>5} {cpu.get('others')!s:>6}  {ms.get('engine')}"
            )
    if report.get("sweeper"):
        s = report["sweeper"]
        print(
            f"\nsweeper: {s['rows']:,} rows, {s['due']} due: claim_due median {s['claim_ms']['median']} ms, "
            f"p99 {s['claim_ms']['p99']} ms over {s['runs']} runs (SELECT on the server: median "
            f"{s['select_server_ms']['median']} ms); index scan on connection_refresh_due: {s['uses_index']}"
        )


if __name__ == "__main__":
    sys.exit(main())
