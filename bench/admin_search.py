#!/usr/bin/env python
"""Support's connection search at 1,000,000 connections: the Django admin's own queries, timed.

Fills the database in ``DATABASE_URL`` (PostgreSQL; use a scratch database:
it migrates it and adds ``--rows`` connections in ``--workspaces`` workspaces,
each with an owner and an Exact Online client), then opens the connection list
as a support user does, for each search and filter below, through
``ConnectionAdmin.changelist_view`` (the page is rendered, as in a browser).
Reported per case: the page's wall time (median of ``--repeat``), how many
queries it ran, and ``EXPLAIN (ANALYZE, BUFFERS)`` of each query on the
connections table (its execution time and plan). Results in
``bench/results/admin_search.json``; the numbers are in docs/support.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scratch .venv/bin/python bench/admin_search.py
    ... --rows 1000000 --keep      # keep the rows for the next run (reused if the count matches)

Without ``--keep`` the bench rows are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("OAUTH_ALLOW_INSECURE_URLS", "true")

CIPHER = "gAAAAABbenchconstantciphertext" + "x" * 140  # as wide as a real encrypted token
PREFIX = "bench-admin"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def setup() -> None:
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("DATABASE_URL must point at PostgreSQL (the numbers are PostgreSQL's).")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(rows: int, workspaces: int) -> None:
    """Workspaces with an owner and an Exact client each, and ``rows`` connections spread over them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM connections_connection WHERE name LIKE %s", [f"{PREFIX} %"])
        if cursor.fetchone()[0] == rows:
            log(f"reusing the {rows:,} bench connections already there")
            return
        clean()
        log(f"inserting {workspaces:,} workspaces, owners and clients, and {rows:,} connections")
        t0 = time.perf_counter()
        cursor.execute(
            """
            INSERT INTO accounts_user (email, name, password, is_staff, is_superuser, is_active, date_joined)
            SELECT %(p)s || '-owner-' || i || '@example.com', 'Owner ' || i, '!', false, false, true, now()
            FROM generate_series(1, %(n)s) AS i;
            INSERT INTO workspaces_workspace (id, name, slug, created_at, created_by_id)
            SELECT gen_random_uuid(), 'Bench workspace ' || i, %(p)s || '-' || i, now(),
                   (SELECT id FROM accounts_user WHERE email = %(p)s || '-owner-' || i || '@example.com')
            FROM generate_series(1, %(n)s) AS i;
            INSERT INTO oauthclients_oauthclient (
                id, workspace_id, provider, site, name, client_id, client_secret, webhook_secret,
                authorization_url, token_url, scopes, access_token_expires_in, refresh_token_expires_in,
                token_endpoint_auth_method, use_pkce, api_base_url, identity_url, created_at, updated_at)
            SELECT gen_random_uuid(), w.id, 'exact_online', 'nl', 'Exact Online NL', %(p)s || '-client-' || w.slug,
                   %(c)s, '', 'https://start.exactonline.nl/api/oauth2/auth',
                   'https://start.exactonline.nl/api/oauth2/token', '', 599999, 2592000000,
                   'client_secret_post', false, '', '', now(), now()
            FROM workspaces_workspace w WHERE w.slug LIKE %(p)s || '-%%';
            """,
            {"p": PREFIX, "n": workspaces, "c": CIPHER},
        )
        # Connection i belongs to workspace (i mod W) + 1; its division is 1,000,000 + i (Exact
        # divisions are six or seven digits); 3 %% failing, 2 %% needing re-authorization.
        cursor.execute(
            """
            WITH clients AS (
                SELECT split_part(w.slug, '-', 3)::int AS n, c.id, c.workspace_id, w.created_by_id
                FROM oauthclients_oauthclient c JOIN workspaces_workspace w ON w.id = c.workspace_id
                WHERE w.slug LIKE %(p)s || '-%%'
            )
            INSERT INTO connections_connection (
                id, workspace_id, oauth_client_id, owner_id, name, status, access_token, refresh_token, token_type,
                granted_scopes, access_token_expires_at, access_token_lifetime, account_id, account_name,
                account_email, account_details, account_division, refresh_due_at, refresh_failures, last_error,
                token_calls, created_at, updated_at)
            SELECT gen_random_uuid(), c.workspace_id, c.id, c.created_by_id, %(p)s || ' ' || i,
                   CASE WHEN i %% 50 = 0 THEN 'needs_reauth' WHEN i %% 33 = 0 THEN 'refresh_failing' ELSE 'active' END,
                   %(c)s, %(c)s, 'bearer', '', now() + interval '10 minutes', 600, i::text, 'Account holder ' || i,
                   'user' || i || '@customer.example', jsonb_build_object('Division', 1000000 + i),
                   1000000 + i,
                   CASE WHEN i %% 50 = 0 THEN NULL ELSE now() + random() * interval '10 minutes' END,
                   CASE WHEN i %% 33 = 0 THEN 2 ELSE 0 END,
                   CASE WHEN i %% 33 = 0 THEN 'The provider answered HTTP 503 (temporarily_unavailable).' ELSE '' END,
                   0, now(), now()
            FROM generate_series(1, %(rows)s) AS i
            JOIN clients c ON c.n = (i %% %(w)s) + 1
            """,
            {"p": PREFIX, "c": CIPHER, "rows": rows, "w": workspaces},
        )
        log(f"inserted in {time.perf_counter() - t0:.0f} s; VACUUM ANALYZE")
        for table in (
            "connections_connection",
            "connections_connectionsearchtext",
            "workspaces_workspace",
            "oauthclients_oauthclient",
            "accounts_user",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def clean() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM connections_connection WHERE name LIKE %s", [f"{PREFIX} %"])
        cursor.execute("DELETE FROM oauthclients_oauthclient WHERE client_id LIKE %s", [f"{PREFIX}-client-%"])
        cursor.execute("DELETE FROM workspaces_workspace WHERE slug LIKE %s", [f"{PREFIX}-%"])
        cursor.execute("DELETE FROM accounts_user WHERE email LIKE %s", [f"{PREFIX}-owner-%"])


def support_user():
    from accounts.models import User
    from accounts.services import support_grant
    from audit.services import SYSTEM

    user, _ = User.objects.get_or_create(email=f"{PREFIX}-support@tokenkeeper.example")
    support_grant(user=user, actor=SYSTEM)
    return User.objects.get(pk=user.pk)


def open_list(user, params: dict) -> tuple[float, list[str], int]:
    """Render the connection list as ``user``: (seconds, SQL of each query, rows found)."""
    from django.contrib import admin
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from connections.models import Connection

    request = RequestFactory().get("/django-admin/connections/connection/", params)
    request.user = user
    request.session = {}
    request._messages = FallbackStorage(request)
    model_admin = admin.site._registry[Connection]
    with CaptureQueriesContext(connection) as queries:
        t0 = time.perf_counter()
        response = model_admin.changelist_view(request)
        response.render()
        seconds = time.perf_counter() - t0
    assert response.status_code == 200, response.status_code
    return seconds, [q["sql"] for q in queries.captured_queries], response.context_data["cl"].result_count


def explain(sql: str) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        plan = [row[0] for row in cursor.fetchall()]
    execution = next(float(line.split()[2]) for line in plan if line.startswith("Execution Time"))
    return {"execution_ms": execution, "plan": plan}


def measure(user, name: str, params: dict, repeat: int) -> dict:
    open_list(user, params)  # warm the cache: a support page is rarely the first read of its rows
    runs = [open_list(user, params) for _ in range(repeat)]
    seconds = [r[0] for r in runs]
    _, queries, found = runs[-1]
    on_connections = [sql for sql in queries if "connections_connection" in sql and sql.lstrip().startswith("SELECT")]
    explained = [{"sql": sql, **explain(sql)} for sql in on_connections]
    result = {
        "case": name,
        "params": params,
        "rows_found": found,
        "page_ms_median": round(statistics.median(seconds) * 1000, 1),
        "page_ms_each": [round(s * 1000, 1) for s in seconds],
        "queries": len(queries),
        "connection_queries": explained,
    }
    sql_ms = ", ".join(f"{e['execution_ms']:.2f}" for e in explained)
    log(
        f"{name}: {found:,} found; page {result['page_ms_median']} ms (median), {len(queries)} queries; "
        f"EXPLAIN ANALYZE of its connection queries: {sql_ms} ms"
    )
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--workspaces", type=int, default=2_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--keep", action="store_true", help="keep the bench rows (the next run reuses them)")
    args = p.parse_args(argv)
    setup()
    seed(args.rows, args.workspaces)
    user = support_user()
    division = str(1_000_000 + args.rows // 2 + 7)
    cases = [
        ("division number", {"q": division}),
        ("division number, unknown", {"q": "4242"}),
        ("connection id", {"q": _some_id()}),
        ("workspace slug, and division", {"workspace": f"{PREFIX}-17", "q": str(1_000_000 + 16)}),
        ("workspace filter", {"workspace": f"{PREFIX}-17"}),
        ("status filter: needs re-authorization", {"status": "needs_reauth"}),
        ("no search (first page)", {}),
        ("text: an account holder's name", {"q": f"Account holder {args.rows // 3}"}),
        ("text: a connection's name", {"q": f"{PREFIX} {args.rows // 5}"}),
        ("text: an owner's e-mail", {"q": f"{PREFIX}-owner-42@example.com"}),
        ("text: a workspace's slug", {"q": f"{PREFIX}-1234"}),
    ]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), pg_size_pretty(pg_total_relation_size('connections_connection')), "
            "pg_size_pretty(pg_relation_size('connection_account_division')), "
            "pg_size_pretty(pg_total_relation_size('connections_connectionsearchtext')) FROM connections_connection"
        )
        total, table_size, index_size, text_size = cursor.fetchone()
    log(
        f"{total:,} connections; table with indexes {table_size}; index connection_account_division {index_size}; "
        f"search text table with its trigram index {text_size}"
    )
    results = {
        "connections": total,
        "table_size": table_size,
        "division_index_size": index_size,
        "search_text_size": text_size,
        "postgres": connection.cursor().connection.info.server_version,
        "cases": [measure(user, name, params, args.repeat) for name, params in cases],
    }
    out = ROOT / "bench" / "results" / "admin_search.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    log(f"results in {out.relative_to(ROOT)}")
    if not args.keep:
        clean()
        log("bench rows deleted")
    return 0


def _some_id() -> str:
    from connections.models import Connection

    return str(Connection.objects.filter(name__startswith=PREFIX).values_list("id", flat=True).first())


if __name__ == "__main__":
    sys.exit(main())
