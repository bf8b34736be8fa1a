"""Schemathesis against the live schema: every operation, with generated (valid and invalid) input.

The schema is the one the app serves at ``/api/schema/``, and the requests go
to the app itself through its WSGI handler (in this process, no server), as
an API key with every scope and as a signed-in admin (session cookie and CSRF
token), in workspace ``acme``. That workspace holds members, a pending
invitation, API keys, audit events, an OAuth client pointed at the Exact
Online emulator and connections in every state (pending, active, due for a
refresh, refresh failing, needs re-authorization, revoked, one made by an API
key). A path's ``id`` is two times in three one of those objects' ids, else
what Schemathesis generated; a new connection's ``oauth_client`` half the
time Acme's client.

Phases: the fuzzing phase (``MAX_EXAMPLES`` generated cases per operation)
for both callers; the coverage phase (every boundary, missing field and
wrong type of each input, one at a time, on a real object, plus methods and
media types the schema does not list) once, as the admin, since the same
validation answers every caller.

Each request runs in a savepoint that is rolled back, so a DELETE or a
"leave" does not take the objects away from the requests after it.

Checks: no 500 nor any 5xx the operation does not document (the token API's
503 is documented), a status code the schema documents, a body that matches
its schema, the documented content type and headers, no operation that
answers without credentials (``ignored_auth`` sends each one again without
them and with wrong ones), 405 for methods the schema does not list. A
failure prints the request as a curl command.

Every operation of the schema is exercised but one that answers an event
stream (``text/event-stream``; there is none today): the request would read
its response to the end, and a stream has none. No DNS query leaves the
machine: names other than ``localhost`` do not resolve here (none is needed:
the test settings let OAuth client URLs through the SSRF guard without
resolving them, and nothing calls a generated host).
"""

import ipaddress
import json
import os
import secrets
import socket
from datetime import timedelta
from types import SimpleNamespace

import pytest
import schemathesis
import werkzeug
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.test import Client
from django.utils import timezone
from hypothesis import strategies as st
from schemathesis import checks as stchecks
from schemathesis.specs.openapi import checks as openapi_checks

from audit.models import AuditEvent
from audit.services import Actor
from connections.models import Connection, ConnectionEvent, EventKind, Status
from connections.services import connection_create
from tests.factories import make_api_key
from tests.fixtures.connections import make_exact_client
from tests.refresh.helpers import connect
from workspaces.models import ApiKey, Invitation, Membership
from workspaces.services import invitation_create

# Per operation and caller, in the fuzzing phase (the coverage phase adds its own cases). The seed makes
# every run send the same cases, so CI never fails by luck; a deeper run by hand, e.g.
# TOKENKEEPER_SCHEMATHESIS_EXAMPLES=200 TOKENKEEPER_SCHEMATHESIS_SEED=7 pytest tests/schema
MAX_EXAMPLES = int(os.environ.get("TOKENKEEPER_SCHEMATHESIS_EXAMPLES", "12"))
SEED = int(os.environ.get("TOKENKEEPER_SCHEMATHESIS_SEED", "20260110"))


@schemathesis.check
def not_a_server_error_unless_documented(ctx, response, case):
    """No 5xx, except one the operation documents as its answer (503 ``refresh_failing`` from the token API).

    A 500 always fails: it is never an answer.
    """
    status = response.status_code
    if status != 500 and str(status) in case.operation.responses.status_codes:
        return None
    return stchecks.not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_error_unless_documented,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.ignored_auth,
    openapi_checks.unsupported_method,
]


def config(*, coverage: bool) -> schemathesis.Config:
    """Schemathesis' settings; ``coverage``: run its coverage phase too (every boundary and wrong type of each field)."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["all"],
            "parameters": {"path.workspace_slug": "acme"},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": False}, "coverage": {"enabled": coverage}},
        }
    )


@pytest.fixture
def offline_dns(monkeypatch):
    """IP addresses and ``localhost`` resolve; every other name is unknown (no DNS query leaves the machine)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if name != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def acme(team, exact, offline_dns):
    """Workspace Acme with one of everything the API shows, and the ids of each kind of object."""
    client = make_exact_client(team.a, team.alice, exact)
    alice = Actor(user=team.alice)
    pending = connection_create(workspace=team.a, oauth_client=client, name="Pending", owner=team.bob, actor=alice)
    by_key = connection_create(workspace=team.a, oauth_client=client, name="Made by a key", owner=None, actor=alice)
    active = connect(client, exact, name="Active", owner=team.alice, remaining=500)
    due = connect(client, exact, name="Due", owner=team.bob, remaining=10)
    failing = connect(client, exact, name="Failing", owner=team.alice, remaining=0.5)
    # Its token is gone and the provider's error budget is spent: the token API answers 503, "refresh" 409.
    Connection.objects.filter(pk=failing.pk).update(
        status=Status.REFRESH_FAILING,
        refresh_failures=10,
        last_error="The provider answered 503.",
        last_error_at=timezone.now(),
        refresh_due_at=timezone.now() + timedelta(minutes=5),
    )
    ConnectionEvent.objects.bulk_create(
        ConnectionEvent(connection=failing, kind=EventKind.REFRESH_FAILED, detail="The provider answered 503.")
        for _ in range(10)
    )
    reauth = connect(client, exact, name="Needs reauth", owner=team.bob, remaining=300)
    Connection.objects.filter(pk=reauth.pk).update(status=Status.NEEDS_REAUTH, last_error="invalid_grant")
    revoked = connect(client, exact, name="Revoked", owner=team.alice, remaining=300)
    Connection.objects.filter(pk=revoked.pk).update(
        status=Status.REVOKED, access_token="", refresh_token="", access_token_expires_at=None
    )
    invitation_create(workspace=team.a, email="erin@example.com", role="member", actor=alice)
    key = make_api_key(team.a, scopes=("read", "write", "tokens"), name="Schemathesis")
    make_api_key(team.a, scopes=("read",), name="Read only")
    ids = {
        "members": list(Membership.objects.filter(workspace=team.a).values_list("id", flat=True)),
        "invitations": list(Invitation.objects.filter(workspace=team.a).values_list("id", flat=True)),
        "api-keys": list(ApiKey.objects.filter(workspace=team.a).values_list("id", flat=True)),
        "audit-events": list(AuditEvent.objects.filter(workspace=team.a).values_list("id", flat=True)[:5]),
        "oauth-clients": [client.id],
        "connections": [c.id for c in (pending, by_key, active, due, failing, reauth, revoked)],
    }
    return SimpleNamespace(workspace=team.a, key=key, ids={kind: [str(i) for i in v] for kind, v in ids.items()})


@pytest.fixture(params=["api_key", "admin_session"])
def caller(request, acme, team) -> dict:
    """How a caller authenticates: Alice's API key with every scope, or Alice signed in (with her CSRF token)."""
    if request.param == "api_key":
        return {"headers": {"Authorization": f"Bearer {acme.key}"}, "coverage": False}
    browser = Client()
    browser.force_login(team.alice)
    csrf = secrets.token_hex(16)  # 32 characters: a valid unmasked CSRF secret, as the cookie holds it
    return {
        "headers": {"X-CSRFToken": csrf},
        "cookies": {"sessionid": browser.cookies["sessionid"].value, "csrftoken": csrf},
        "coverage": True,  # the same validation answers every caller: its cases run once, as the admin
    }


@pytest.fixture
def in_process_requests():
    """Requests through the WSGI handler share the test's database transaction: don't let them close it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def kind_of(path: str) -> str:
    """``/api/v1/workspaces/{workspace_slug}/connections/{id}/token/`` -> ``connections``."""
    return path.split("/{workspace_slug}/")[1].split("/")[0]


def with_id_examples(raw: dict, ids: dict[str, list[str]]) -> dict:
    """The served schema, with a real object's id as the example of each ``{id}``.

    The coverage phase builds its cases (every boundary and wrong type of each
    field, one at a time) on a path's example: with a real id they reach the
    validation of the body instead of a 404.
    """
    for path, item in raw["paths"].items():
        if "{id}" in path and ids.get(kind_of(path)):
            for operation in item.values():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path" and parameter["name"] == "id":
                        parameter["example"] = ids[kind_of(path)][0]
    return raw


@pytest.fixture
def api_schema(acme, caller, in_process_requests):
    app = get_wsgi_application()
    raw = json.loads(werkzeug.Client(app).get("/api/schema/", headers={"Accept": "application/json"}).get_data())
    schema = schemathesis.openapi.from_dict(with_id_examples(raw, acme.ids), config=config(coverage=caller["coverage"]))
    schema.app, schema.location = app, "/api/schema/"

    @schema.auth(refresh_interval=None, retry_on=[])
    class Caller:
        """The caller's credentials on every request, in place of any Schemathesis generated."""

        def get(self, case, context):
            return caller

        def set(self, case, data, context):
            headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            case.headers = {**headers, **data["headers"]}
            case.cookies = {**(case.cookies or {}), **data.get("cookies", {})}

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        """A path's ``id``: mostly an object of Acme of the path's kind, else what Schemathesis generated."""
        if not path_parameters or "id" not in path_parameters:
            return st.just(path_parameters)
        known = acme.ids.get(kind_of(context.operation.path), [])
        if not known:
            return st.just(path_parameters)
        return st.one_of(st.sampled_from(known), st.sampled_from(known), st.just(path_parameters["id"])).map(
            lambda value: {**path_parameters, "id": value}
        )

    @schema.hook
    def flatmap_body(context, body):
        """A body's ``oauth_client`` (a new connection): half the time Acme's OAuth client, else what was generated."""
        if not isinstance(body, dict) or "oauth_client" not in body:
            return st.just(body)
        return st.sampled_from([body, {**body, "oauth_client": acme.ids["oauth-clients"][0]}])

    return schema


def answers_an_event_stream(ctx) -> bool:
    """A ``text/event-stream`` response: an in-process request reads a response to its end, and a stream has none."""
    responses = ctx.operation.definition.raw.get("responses", {})
    return any("text/event-stream" in (r.get("content") or {}) for r in responses.values() if isinstance(r, dict))


schema = schemathesis.pytest.from_fixture("api_schema").exclude(answers_an_event_stream)


@schema.parametrize()
def test_api_conforms_to_its_schema(case):
    with transaction.atomic():
        try:
            response = case.call()
            case.validate_response(response, checks=CHECKS)
        finally:
            transaction.set_rollback(True)
