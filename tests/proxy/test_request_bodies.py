"""Request bodies and methods at the proxy's edges: chunked bodies (no Content-Length), a server
that cannot pass one on (411), and HEAD with an API key."""

import http.client
import io
import json

import pytest

from connections import ratebudget
from oauthclients.providers.base import ApiRateLimits
from tests.proxy.helpers import DIVISION, accounts, tokens_client
from tests.proxy.live import LiveServer

pytestmark = pytest.mark.usefixtures("budgets")


def payload(size: int) -> bytes:
    return json.dumps({"Name": "Bakkerij Jansen", "Notes": "x" * size}).encode()


def chunked(body: bytes) -> dict:
    """What a WSGI server that decodes chunked bodies (gunicorn) hands Django: no CONTENT_LENGTH."""
    return {
        "CONTENT_LENGTH": "",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
    }


def test_a_small_chunked_body_is_sent_on_with_its_length(connection, exact):
    body = payload(1000)

    response = tokens_client(connection.workspace).post(
        accounts(connection), data=b"", content_type="application/json", **chunked(body)
    )

    assert response.status_code == 201
    [call] = exact.api_requests
    assert call.body == body
    assert call.headers["Content-Length"] == str(len(body))


def test_a_large_chunked_body_is_streamed_on_chunked(connection, exact, settings):
    settings.PROXY_REPLAY_MAX_BYTES = 1024
    body = payload(300_000)

    response = tokens_client(connection.workspace).post(
        accounts(connection), data=b"", content_type="application/json", **chunked(body)
    )

    assert response.status_code == 201
    [call] = exact.api_requests
    assert call.body_length == len(body)
    assert "Content-Length" not in call.headers
    assert call.headers.get("Transfer-Encoding") == "chunked"


def test_a_chunked_body_the_server_cannot_pass_on_is_411_and_nothing_is_sent(connection, exact):
    response = tokens_client(connection.workspace).post(
        accounts(connection),
        data=payload(10),
        content_type="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
    )

    assert response.status_code == 411
    assert response.json()["error"]["code"] == "length_required"
    assert exact.api_requests == []
    budget = ratebudget.read(connection.oauth_client.client_id, str(DIVISION), ApiRateLimits(60, 5000))
    assert budget.minutely_remaining == 60  # nothing taken for a call that was not sent


def test_head_with_an_api_key_is_forwarded_as_head(connection, exact):
    response = tokens_client(connection.workspace).head(accounts(connection))

    assert response.status_code == 200
    assert response["X-Tokenkeeper-Proxy"] == "provider"
    [call] = exact.api_requests
    assert call.method == "HEAD"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_chunked_bodies_go_through_gunicorn_whole(team, connection, exact, tmp_path):
    """The production server decodes the chunks; both sizes reach the provider whole."""
    key = tokens_client(team.a)._credentials["HTTP_AUTHORIZATION"]
    small, large = payload(2000), payload(200_000)
    server = LiveServer(tmp_path).wait_ready()
    try:
        statuses = []
        for body in (small, large):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            pieces = [body[i : i + 7000] for i in range(0, len(body), 7000)]
            conn.request(
                "POST",
                accounts(connection),
                body=iter(pieces),
                headers={"Authorization": key, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                encode_chunked=True,
            )
            answer = conn.getresponse()
            answer.read()
            statuses.append(answer.status)
            conn.close()
    finally:
        server.stop()

    assert statuses == [201, 201]
    first, second = exact.api_requests
    assert first.body == small and first.headers["Content-Length"] == str(len(small))
    assert second.body_length == len(large) and second.headers.get("Transfer-Encoding") == "chunked"
