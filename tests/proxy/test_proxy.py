"""The provider proxy against the Exact Online emulator: forwarding, path rules, tenancy, 401s, errors."""

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from connections.models import Connection, EventKind, Status
from connections.oauth import TokenSet
from connections.services import connection_create
from connections.tokens import apply_tokens
from oauthclients.services import oauth_client_create
from tests.proxy.helpers import DIVISION, exact_connection_with_division, proxy_url, tokens_client
from tests.refresh.helpers import refreshes

pytestmark = pytest.mark.usefixtures("budgets")


@pytest.fixture
def api(team):
    return tokens_client(team.a)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def data_calls(exact) -> list:
    return [r for r in exact.api_requests if r.path != "/api/v1/current/Me"]


# --- Forwarding -------------------------------------------------------------------------------


def test_current_me_is_forwarded_with_the_bearer_token(connection, api, exact):
    response = api.get(proxy_url(connection, "current/Me"), HTTP_ACCEPT="application/json", HTTP_ACCEPT_ENCODING="gzip")

    assert response.status_code == 200
    assert response["X-Tokenkeeper-Proxy"] == "provider"
    assert response["Content-Type"].startswith("application/json")
    me = json.loads(body_of(response))["d"]["results"][0]
    assert me["CurrentDivision"] == DIVISION
    [call] = exact.api_requests
    assert call.authorization and call.status == 200
    assert call.headers["Accept"] == "application/json"
    assert call.headers["Accept-Encoding"] == "gzip"
    assert "Content-Type" not in call.headers  # no body, no content type


def test_a_get_in_a_division_keeps_its_query_string_and_returns_the_rate_limit_headers(connection, api, exact):
    exact.set_api_results("crm/Accounts", [{"ID": "a1", "Name": "Bakkerij"}])

    response = api.get(
        proxy_url(connection, f"{DIVISION}/crm/Accounts") + "?$select=ID,Name&$filter=Name%20eq%20'x'&$top=2",
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 200
    assert json.loads(body_of(response))["d"]["results"] == [{"ID": "a1", "Name": "Bakkerij"}]
    [call] = exact.api_requests
    assert call.path == f"/api/v1/{DIVISION}/crm/Accounts"
    assert call.query == "$select=ID,Name&$filter=Name%20eq%20'x'&$top=2"
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert response[header]
    assert response["X-RateLimit-Minutely-Remaining"] == "59"
    assert int(response["X-RateLimit-Minutely-Reset"]) > 1_700_000_000_000  # epoch milliseconds


def test_a_post_with_a_body_is_forwarded_with_its_content_type(connection, api, exact):
    payload = {"Name": "Bakkerij Jansen", "City": "Utrecht"}

    response = api.post(
        proxy_url(connection, f"{DIVISION}/crm/Accounts"),
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 201
    assert json.loads(body_of(response)) == {"d": payload}
    [call] = exact.api_requests
    assert call.method == "POST"
    assert json.loads(call.body) == payload
    assert call.headers["Content-Type"] == "application/json"
    assert int(call.headers["Content-Length"]) == len(json.dumps(payload))


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_put_patch_and_delete_are_forwarded(connection, api, exact, method):
    key = f"{DIVISION}/crm/Accounts(guid'6a3e2b5c-1111-2222-3333-444455556666')"
    body = json.dumps({"Name": "Nieuw"}) if method != "delete" else ""

    response = getattr(api, method)(proxy_url(connection, key), data=body, content_type="application/json")

    assert response.status_code == 204
    [call] = exact.api_requests
    assert call.method == method.upper()
    assert call.path == f"/api/v1/{key}"
    assert call.body_length == len(body)


def test_a_body_larger_than_the_replay_limit_is_streamed_on(connection, api, exact, settings):
    settings.PROXY_REPLAY_MAX_BYTES = 1024
    payload = json.dumps({"Notes": "x" * 300_000})

    response = api.post(
        proxy_url(connection, f"{DIVISION}/crm/Accounts"), data=payload, content_type="application/json"
    )

    assert response.status_code == 201
    [call] = exact.api_requests
    assert call.body_length == len(payload)
    assert call.headers["Content-Length"] == str(len(payload))


def test_a_proxied_call_with_a_warm_key_reads_the_database_once(connection, api, exact, django_assert_num_queries):
    api.get(proxy_url(connection, "current/Me"))  # the key is read and remembered (workspaces.keycache)

    with django_assert_num_queries(1) as captured:  # the connection joined with its OAuth client
        response = api.get(proxy_url(connection, "current/Me"))
        body_of(response)

    assert response.status_code == 200
    assert "oauthclients_oauthclient" in captured.captured_queries[0]["sql"]


def test_proxied_calls_are_not_audit_events(connection, api, exact):
    before = AuditEvent.objects.count()

    api.get(proxy_url(connection, "current/Me"))

    assert AuditEvent.objects.count() == before


# --- Path rules -------------------------------------------------------------------------------

ESCAPES = [
    "../oauth2/token",
    "current/../../oauth2/token",
    "./current/Me",
    "current/./Me",
    "current/.;/Me",
    "current//Me",
    "/evil.example/x",
    "https://evil.example/x",
    "https:/evil.example/x",
    "javascript:alert(1)",
    "current\\..\\..\\oauth2\\token",
    "user@evil.example/x",
    "current/Me%00",
    "%2e%2e/oauth2/token",
    "%252e%252e/oauth2/token",
    "123456%252fcrm",
    "current/Me%0d%0aX-Injected:%201",
]
RAW_ESCAPES = [
    "123456%2Fcrm/Accounts",
    "123456%2fcrm/Accounts",
    "current%5CMe",
    "%2E%2E/oauth2/token",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_a_path_that_could_leave_the_api_base_is_refused_without_calling_the_provider(connection, api, exact, path):
    response = api.get(proxy_url(connection, path))

    assert response.status_code == 400, path
    assert response.json()["error"]["code"] == "path_refused"
    assert exact.api_requests == [] and exact.token_requests == []


@pytest.mark.parametrize("path", RAW_ESCAPES)
def test_encoded_slashes_backslashes_and_dots_in_the_request_line_are_refused(connection, api, exact, path):
    """What gunicorn passes as ``RAW_URI`` (the path before decoding) is checked too."""
    url = proxy_url(connection, path)

    response = api.get(url, RAW_URI=url)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "path_refused"
    assert exact.api_requests == []


def test_an_empty_path_is_refused(connection, api, exact):
    response = api.get(proxy_url(connection, ""))

    assert response.status_code == 400
    assert exact.api_requests == []


# --- Tenancy and scopes -----------------------------------------------------------------------


def test_another_workspaces_key_gets_404(team, connection, exact):
    outsider = tokens_client(team.b)

    assert outsider.get(proxy_url(connection, "current/Me")).status_code == 404
    assert outsider.get(proxy_url(connection, "current/Me", workspace_slug=team.b.slug)).status_code == 404
    assert exact.api_requests == []


def test_a_key_without_the_tokens_scope_gets_403(team, connection, exact):
    reader = tokens_client(team.a, scopes=("read",))

    response = reader.get(proxy_url(connection, "current/Me"))

    assert response.status_code == 403
    assert exact.api_requests == []


def test_no_key_gets_401(client, connection, exact):
    assert client.get(proxy_url(connection, "current/Me")).status_code in (401, 403)
    assert exact.api_requests == []


def test_an_admin_session_can_use_the_proxy(people, connection, exact):
    response = people.alice.get(proxy_url(connection, "current/Me"))

    assert response.status_code == 200
    assert len(exact.api_requests) == 1


def test_a_connection_that_needs_reauthorization_answers_409(connection, api, exact):
    Connection.objects.filter(pk=connection.pk).update(status=Status.NEEDS_REAUTH)

    response = api.get(proxy_url(connection, "current/Me"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "needs_reauth"
    assert exact.api_requests == []


# --- A 401 from the provider -----------------------------------------------------------------


def _reject_token(connection):
    """The provider no longer knows the stored access token (it stays valid by Tokenkeeper's clock)."""
    Connection.objects.filter(pk=connection.pk).update(access_token="revoked-at-the-provider")


def test_a_401_inside_the_window_leads_to_one_refresh_and_one_retry(team, exact_client, exact, api):
    connection = exact_connection_with_division(exact_client, exact, owner=team.alice, remaining=28)
    _reject_token(connection)

    response = api.post(proxy_url(connection, f"{DIVISION}/crm/Accounts"), data={"Name": "x"}, format="json")

    assert response.status_code == 201
    assert [r.status for r in data_calls(exact)] == [401, 201]
    assert json.loads(data_calls(exact)[1].body) == {"Name": "x"}  # the body was sent again
    assert refreshes(exact, "ok") == 1 and refreshes(exact) == 1
    assert connection.events.filter(kind=EventKind.REFRESHED, detail__contains="401").count() == 1


def test_a_401_outside_the_window_is_answered_as_is_without_a_refresh(team, exact_client, exact, api):
    connection = exact_connection_with_division(exact_client, exact, owner=team.alice, remaining=300)
    _reject_token(connection)

    response = api.get(proxy_url(connection, f"{DIVISION}/crm/Accounts"))

    assert response.status_code == 401
    assert response["X-Tokenkeeper-Proxy"] == "provider"
    assert [r.status for r in data_calls(exact)] == [401]
    assert refreshes(exact) == 0


def test_a_401_to_a_streamed_body_is_not_retried(team, exact_client, exact, api, settings):
    settings.PROXY_REPLAY_MAX_BYTES = 16
    connection = exact_connection_with_division(exact_client, exact, owner=team.alice, remaining=28)
    _reject_token(connection)

    response = api.post(proxy_url(connection, f"{DIVISION}/crm/Accounts"), data={"Name": "x" * 100}, format="json")

    assert response.status_code == 401
    assert [r.status for r in data_calls(exact)] == [401]
    assert refreshes(exact) == 0


def test_a_401_when_the_token_was_refreshed_meanwhile_retries_with_the_new_one(team, exact_client, exact, api):
    """Single flight: the token another call got is used, no second refresh."""
    connection = exact_connection_with_division(exact_client, exact, owner=team.alice, remaining=28)
    from connections.refresh import refresh_after_rejection

    first = refresh_after_rejection(connection=connection, rejected_token=connection.access_token)
    again = refresh_after_rejection(connection=connection, rejected_token=connection.access_token)

    assert first.connection.access_token != connection.access_token
    assert again.connection.access_token == first.connection.access_token
    assert refreshes(exact) == 1


# --- Other providers and errors ---------------------------------------------------------------


class _Provider(BaseHTTPRequestHandler):
    """A provider's API that answers what the test sets in ``server.answer``."""

    def do_GET(self):
        status, headers, body = self.server.answer
        if status is None:  # hang: never answer
            self.server.hung.wait(10)
            return
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def provider():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    server.answer = (200, {}, b"{}")
    server.hung = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}/api"
    yield server
    server.hung.set()
    server.shutdown()
    server.server_close()


def generic_connection(team, api_base_url: str) -> Connection:
    client = oauth_client_create(
        workspace=team.a,
        actor=Actor(user=team.alice),
        provider="generic",
        name="Generic API",
        client_id="generic-client",
        client_secret="generic-secret",
        authorization_url="http://127.0.0.1:9/authorize",
        token_url="http://127.0.0.1:9/token",
        api_base_url=api_base_url,
        access_token_expires_in=3_600_000,
        refresh_token_expires_in=0,
    )
    connection = connection_create(
        workspace=team.a, oauth_client=client, name="Generic", owner=team.alice, actor=Actor(user=team.alice)
    )
    tokens = TokenSet(
        access_token="generic-access",
        refresh_token="generic-refresh",
        token_type="bearer",
        expires_in=3600,
        refresh_expires_in=None,
        scope="",
    )
    apply_tokens(connection, tokens, issued_at=timezone.now() - timedelta(seconds=10))
    connection.status = Status.ACTIVE
    connection.save()
    return connection


def test_another_providers_429_and_its_headers_come_through_untouched(team, api, provider):
    headers = {"Retry-After": "17", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000000"}
    provider.answer = (429, {**headers, "Content-Type": "application/json"}, b'{"message":"slow down"}')
    connection = generic_connection(team, provider.base)

    responses = [api.get(proxy_url(connection, "v2/items")) for _ in range(3)]

    for response in responses:
        assert response.status_code == 429
        assert response["X-Tokenkeeper-Proxy"] == "provider"
        assert {name: response[name] for name in headers} == headers
        assert body_of(response) == b'{"message":"slow down"}'


def test_a_provider_that_cannot_be_reached_is_a_502(team, api):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection = generic_connection(team, f"http://127.0.0.1:{port}/api")

    response = api.get(proxy_url(connection, "v2/items"))

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_unreachable"
    assert "X-Tokenkeeper-Proxy" not in response


def test_a_provider_that_does_not_answer_in_time_is_a_504(team, api, provider, settings):
    settings.PROXY_READ_TIMEOUT = 0.3
    provider.answer = (None, {}, b"")
    connection = generic_connection(team, provider.base)

    response = api.get(proxy_url(connection, "v2/items"))

    assert response.status_code == 504
    assert response.json()["error"]["code"] == "provider_timeout"


def test_a_redirect_is_not_followed(team, api, provider):
    provider.answer = (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    connection = generic_connection(team, provider.base)

    response = api.get(proxy_url(connection, "v2/items"))

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_redirect"


def test_a_client_without_an_api_base_url_answers_409(team, api):
    connection = generic_connection(team, "")

    response = api.get(proxy_url(connection, "v2/items"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_api_base_url"
