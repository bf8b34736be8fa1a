"""The examples in the README and /api/docs/ work: they run here against a live Tokenkeeper."""

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest
import requests

from audit.services import Actor
from integrations import examples, services, stream
from integrations.models import DeliveryStatus, WebhookDelivery
from tests.factories import make_api_key
from tests.integrations.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def stream_env(team, live_server):
    for n, type in enumerate(["connection.authorized", "connection.needs_reauth", "connection.reconnected"]):
        stream.event_record(workspace_id=team.a.id, type=type, data={"connection": {"name": f"Books {n}"}})
    return {
        **os.environ,
        "TOKENKEEPER_URL": live_server.url,
        "WORKSPACE": "acme",
        "TOKENKEEPER_KEY": make_api_key(team.a, scopes=["read"]),
    }


def test_the_python_event_stream_reader_reads_every_event(stream_env):
    result = subprocess.run(
        [sys.executable, "-c", examples.EVENTS_PYTHON], env=stream_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "1 connection.authorized Books 0",
        "2 connection.needs_reauth Books 1",
        "3 connection.reconnected Books 2",
    ]


def test_the_curl_example_reads_the_stream(stream_env):
    result = subprocess.run(
        ["bash", "-c", examples.EVENTS_CURL], env=stream_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert [e["cursor"] for e in json.loads(result.stdout)["events"]] == [1, 2, 3]


@pytest.fixture
def example_receiver():
    """An HTTP server that answers with the README's ``receive()``: (its URL, the statuses it answered)."""
    namespace: dict = {}
    answered: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if "receive" not in namespace:
                exec(examples.VERIFY_PYTHON, namespace)  # noqa: S102 (our own documented example)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = namespace["receive"](body, dict(self.headers.items()))
            answered.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", answered
    server.shutdown()
    server.server_close()


def test_the_verification_example_accepts_our_webhooks_and_refuses_forgeries(
    team, inline_tasks, monkeypatch, example_receiver
):
    url, answered = example_receiver
    endpoint, secret = services.webhook_endpoint_create(workspace=team.a, actor=Actor(user=team.alice), url=url)
    monkeypatch.setenv("TOKENKEEPER_WEBHOOK_SECRET", secret)
    stream.event_record(workspace_id=team.a.id, type="connection.revoked", data={"n": 1})
    row = wait_for(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).first(), timeout=10)
    assert row.last_status_code == 204 and answered == [204]
    forged = requests.post(
        url,
        data=b'{"type":"connection.revoked"}',
        headers={"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
        timeout=10,
    )
    assert forged.status_code == 400


def test_the_api_docs_show_the_examples(client):
    schema = client.get("/api/schema/", {"format": "json"}).content.decode()
    for snippet in (
        "/events/?after=0&limit=100",
        "from standardwebhooks import Webhook",
        "webhook.verify(body, headers)",
    ):
        assert json.dumps(snippet)[1:-1] in schema, snippet
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.parametrize("name", ["EVENTS_CURL", "EVENTS_PYTHON", "VERIFY_PYTHON"])
def test_the_readme_shows_the_same_examples(name):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        assert getattr(examples, name) in readme.read()
