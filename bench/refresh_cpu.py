#!/usr/bin/env python
"""CPU cost of one refresh, without Celery: a companion to refresh_engine.py.

Calls ``connections.refresh.refresh_group`` (what the Celery task runs for
each group of ``--group`` ids; ``--group 1`` is ``refresh_claimed``) for
``--connections`` due, leased connections in one thread of this process, the
group's token requests one after the other in that thread, against the
Exact Online emulator (latency 0 by default), and reports
the CPU time of the calling thread per refresh (``time.thread_time``: the
emulator's threads are not counted). CPU time, not wall time, so the number
holds on a busy machine, which makes it the number to compare before and after
a change. ``--profile`` prints where that time goes (cProfile, timed with the
thread's CPU clock, so waiting for the provider or PostgreSQL does not count).

    .venv/bin/python bench/refresh_cpu.py --connections 2000 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import refresh_engine as rb


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--latency", type=float, default=0.0, help="provider latency, s (%(default)s)")
    p.add_argument("--tls", action="store_true", help="the provider speaks https, as a real one does")
    p.add_argument("--group", type=int, default=8, help="ids per transaction, as REFRESH_GROUP_SIZE (%(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="measure this many rounds, report each (%(default)s)")
    p.add_argument("--profile", action="store_true", help="print the top functions by cumulative CPU (cProfile)")
    p.add_argument("--profile-out", help="also save the cProfile data to this file (for pstats)")
    p.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    args.log_level, args.sweep_interval = "WARNING", 1.0
    env = rb.bench_env(args, tempfile.mkdtemp(prefix="tokenkeeper-bench-"))
    lock = rb.RunLock(args)
    rb.create_database(args, env)
    rb.setup_django(env)
    from django.conf import settings
    from django.db import connection, transaction

    from connections.refresh import Batch, refresh_group, write_history

    settings.REFRESH_THREADS = 1  # a group's token requests in this thread, so its CPU clock counts them

    exact = rb.Provider(args.latency, args.tls_files)
    try:
        workspace, client = rb.base_rows(exact.token_url, exact.authorization_url)
        per_round = []
        for round_no in range(args.repeat + 1):  # round 0 warms up
            rb.truncate_connections()
            exact.clear_records()
            grants = rb.seed_connections(exact, workspace, client, args.connections)
            rb.arm(exact, grants, time.time() - 1, 0.0001)  # every one due now, inside its window
            lease = uuid.uuid4()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE connections_connection SET lease_token = %s, "
                    "lease_expires_at = now() + interval '10 minutes' RETURNING id",
                    [lease],
                )
                ids = [row[0] for row in cursor.fetchall()]
            profiler = cProfile.Profile(time.thread_time) if args.profile and round_no == args.repeat else None
            c0, w0 = time.thread_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            batch = Batch()
            results = [
                outcome
                for start in range(0, len(ids), args.group)
                for outcome in refresh_group(
                    connection_ids=ids[start : start + args.group], lease_token=lease, batch=batch
                )
            ]
            write_history(batch.events)
            if profiler:
                profiler.disable()
            cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
            assert results.count("refreshed") == len(ids), {r: results.count(r) for r in set(results)}
            if round_no:
                per_round.append(1000 * cpu / len(ids))
            rb.log(
                f"round {round_no}{' (warm-up)' if not round_no else ''}: {len(ids)} refreshes, "
                f"{1000 * cpu / len(ids):.2f} ms CPU and {1000 * wall / len(ids):.2f} ms wall each "
                f"(provider outcomes {exact.outcomes})"
            )
        print(
            f"\nCPU per refresh (calling thread, no Celery, groups of {args.group}{', https' if args.tls else ''}): "
            f"{min(per_round):.2f} ms best, "
            f"{sorted(per_round)[len(per_round) // 2]:.2f} ms median of {len(per_round)} rounds"
        )
        if args.profile and args.profile_out:
            profiler.dump_stats(args.profile_out)
        if args.profile:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
            print(out.getvalue())
    finally:
        exact.stop()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            rb.drop_database(args)
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
