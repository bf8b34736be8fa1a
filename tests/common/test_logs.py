"""Logs: no secret or token in any line at any level, JSON lines with a request id that follows a
request into the tasks it queues, and an access log without query strings."""

import contextlib
import io
import json
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from common.logging import json_formatter
from connections import refresh
from connections.models import Connection
from tests.connections.helpers import exact_consent, finish_flow, query_of, start_flow
from tests.factories import make_api_key
from tests.fixtures.peers import EXACT_CLIENT_SECRET
from tests.refresh.helpers import compressed_exact, connect, token_url, tokens_client, wait_until

ROOT = Path(__file__).resolve().parents[2]


class Everything(logging.Handler):
    """Keeps every record and its JSON line (the production format)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines = io.StringIO()
        self.json = json_formatter()

    def emit(self, record):
        if not self.paused:
            self.records.append(record)
            self.lines.write(self.json.format(record) + "\n")

    paused = False

    @contextlib.contextmanager
    def pause(self):
        """Not Tokenkeeper's logs: the test's stand-in for the user's browser at the provider."""
        self.paused = True
        try:
            yield
        finally:
            self.paused = False

    def texts(self) -> list[str]:
        texts = [self.lines.getvalue()]
        for record in self.records:
            texts += [record.getMessage(), repr(record.args), record.exc_text or "", str(record.__dict__)]
        return texts


@pytest.fixture
def everything():
    handler = Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quiet = {name: logging.getLogger(name).level for name in ("urllib3", "authlib", "django", "celery")}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def make_due(exact, connection) -> None:
    """The provider lets it refresh now, and so does Tokenkeeper's schedule."""
    exact.expire_access_token(Connection.objects.get(pk=connection.pk).access_token)
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=now + timedelta(seconds=2), refresh_due_at=now
    )


@compressed_exact
@pytest.mark.django_db
def test_no_secret_reaches_any_log_line_at_debug_level(everything, people, team, exact, exact_connection, api):
    secrets = {EXACT_CLIENT_SECRET}

    def keep_tokens():
        connection = Connection.objects.get(pk=exact_connection.pk)
        secrets.update(t for t in (str(connection.access_token), str(connection.refresh_token)) if t)

    # Connect: the authorization code and state travel through URLs.
    authorize = start_flow(people.alice, exact_connection)
    with everything.pause():
        callback = exact_consent(authorize)
    secrets.update({query_of(authorize)["state"], query_of(callback)["code"]})
    assert finish_flow(people.alice, callback).status_code == 200
    keep_tokens()

    # Token API, both ways, with a key.
    raw_key = make_api_key(team.a, scopes=["tokens", "read", "write"])
    secrets.add(raw_key)
    key = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}
    assert people.anonymous.get(token_url(exact_connection), **key).status_code == 200
    assert people.anonymous.get(token_url(exact_connection) + "?x=1", **key).status_code == 200
    assert people.anonymous.get(token_url(exact_connection), HTTP_AUTHORIZATION=f"Bearer {raw_key}x").status_code == 401

    # Refresh as a worker does (sweep, batch), on demand, after a provider error, and forced by an admin.
    make_due(exact, exact_connection)
    refresh.sweep(enqueue=lambda ids, lease: refresh.refresh_batch(connection_ids=ids, lease_token=lease))
    keep_tokens()
    make_due(exact, exact_connection)
    exact.fail_next(1, status=500)
    assert people.anonymous.get(token_url(exact_connection), **key).status_code == 200  # failed, still valid
    make_due(exact, exact_connection)
    Connection.objects.filter(pk=exact_connection.pk).update(last_error_at=None)
    assert people.anonymous.get(token_url(exact_connection), **key).status_code == 200
    keep_tokens()
    make_due(exact, exact_connection)
    forced = api.as_user(team.alice).post(f"/api/v1/workspaces/acme/connections/{exact_connection.id}/refresh")
    assert forced.status_code == 200, forced.content
    keep_tokens()

    # Disconnect.
    assert api.as_user(team.alice).post(f"/api/v1/workspaces/acme/connections/{exact_connection.id}/disconnect")
    secrets.update(r.refresh_token for r in exact.token_requests if getattr(r, "refresh_token", None))

    # The net was out: provider requests (urllib3 at DEBUG), refresh failures, refused requests.
    assert {"urllib3.connectionpool", "connections.refresh", "django.request"} <= {r.name for r in everything.records}
    assert any("refresh of connection" in r.getMessage() for r in everything.records)
    texts = everything.texts()
    leaked = sorted({secret[:12] + "…" for secret in secrets if len(secret) >= 8 for t in texts if secret in t})
    assert not leaked, f"secrets in the logs: {leaked}"


def test_log_lines_are_json_with_the_request_id(client, everything):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="req-7f3a")
    assert response["X-Request-ID"] == "req-7f3a"
    assert len(client.get("/healthz")["X-Request-ID"]) == 32  # a new one when none (or a bad one) is given

    logging.getLogger("tokenkeeper.test").warning("with %s", "context")

    line = json.loads(everything.lines.getvalue().strip().splitlines()[-1])
    assert line["event"] == "with context"
    assert line["level"] == "warning"
    assert line["logger"] == "tokenkeeper.test"
    assert "timestamp" in line


def test_what_looks_like_a_key_or_bearer_credential_is_masked(everything):
    logging.getLogger("tokenkeeper.test").error(
        "careless: Authorization: Bearer abc.def and tk_0123456789ab_SECRETSECRET in one line"
    )
    line = everything.lines.getvalue()
    assert "abc.def" not in line and "SECRETSECRET" not in line
    assert "Bearer ********" in line and "tk_********" in line


def test_the_access_log_never_records_query_strings():
    config = (ROOT / "config" / "gunicorn.conf.py").read_text()
    log_format = re.search(r"access_log_format = \((.*?)\n\)", config, re.S).group(1)
    assert "%(U)s" in log_format  # the path alone
    assert not re.search(r"%\((r|q)\)s", log_format)  # neither the request line nor the query string
    assert "%({x-request-id}o)s" in log_format


@compressed_exact
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_request_id_follows_a_request_into_the_email_task_it_queued(team, exact, exact_client, celery):
    worker = celery.worker("mailer", queues="email", concurrency=1)
    due = connect(exact_client, exact, name="Due", owner=team.alice, remaining=20)
    exact.revoke_all()

    response = tokens_client(team.a).get(token_url(due), HTTP_X_REQUEST_ID="req-from-the-token-api")

    assert response.status_code == 409  # refreshed on demand: invalid_grant, needs re-authorization, e-mails
    line = wait_until(
        lambda: next((text for text in worker.text().splitlines() if "e-mail sent" in text), None),
        timeout=20,
        message="the e-mail task's log line",
    )
    assert "request_id=req-from-the-token-api" in line
    assert "task=common.tasks.send_email" in line
