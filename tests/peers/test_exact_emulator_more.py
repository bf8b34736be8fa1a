"""Proof that the Exact Online emulator's chaos, budgets, single-grant, data-API and
webhook behaviour works, against the live server with plain HTTP.

Run:  .venv/bin/python -m pytest tests/peers/test_exact_emulator_more.py -q -p no:cacheprovider
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from .exact_online import ExactOnlineEmulator, sign_webhook_content

CLIENT_ID = "8c1e6f0a-0000-4000-8000-00000000a001"
CLIENT_SECRET = "first-app-secret!"
OTHER_ID = "8c1e6f0a-0000-4000-8000-00000000b002"
OTHER_SECRET = "other-app-secret!"
WEBHOOK_SECRET = "app-webhook-secret-Zk2"
REDIRECT_URI = "https://tokenkeeper.test/oauth2/callback"
DIVISION = 123456
T0 = 1_700_000_000.0  # a fixed emulator time for tests that count per hour or day


# --------------------------------------------------------------------------- helpers


def _register_apps(exact: ExactOnlineEmulator) -> ExactOnlineEmulator:
    exact.add_client(CLIENT_ID, CLIENT_SECRET, name="Tokenkeeper", webhook_secret=WEBHOOK_SECRET)
    exact.add_client(OTHER_ID, OTHER_SECRET, name="Other app")
    return exact


def _emulator(**options) -> ExactOnlineEmulator:
    return _register_apps(ExactOnlineEmulator(**options))


# The shared ``exact`` fixture (tests/fixtures/peers.py), bare, with this module's two apps.
pytestmark = pytest.mark.exact_online(app=False, webhook_validation_delay=0.1)


@pytest.fixture(autouse=True)
def _two_apps(request):
    if "exact" in request.fixturenames:
        _register_apps(request.getfixturevalue("exact"))


@pytest.fixture
def clocked():
    """An emulator on a hand-moved clock (``clocked.now_box[0]``)."""
    now = [T0]
    with _emulator(clock=lambda: now[0]) as emulator:
        emulator.now_box = now
        yield emulator


def _token(exact, data, session=None, **kwargs):
    return (session or requests).post(exact.token_url, data=data, timeout=kwargs.pop("timeout", 5), **kwargs)


def _exchange(exact, code, client_id=CLIENT_ID, secret=CLIENT_SECRET):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": client_id,
        "client_secret": secret,
    }
    return _token(exact, data)


def _refresh(exact, refresh_token, client_id=CLIENT_ID, secret=CLIENT_SECRET, session=None, timeout=5):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    data["client_secret"] = secret
    return _token(exact, data, session=session, timeout=timeout)


def _connect(exact, user, client_id=CLIENT_ID, secret=CLIENT_SECRET) -> dict:
    response = _exchange(exact, exact.issue_code(client_id, REDIRECT_URI, user=user), client_id, secret)
    assert response.status_code == 200, response.text
    return response.json()


def _bearer(tokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"}


def _api(exact, path: str) -> str:
    return f"{exact.base_url}/api/v1/{DIVISION}/{path}"


def _seconds_to_next_day(exact) -> float:
    return 86400 - exact.now() % 86400 + 1


def _sent_bytes(record, timeout: float = 5.0) -> int:
    """``record.response_bytes`` once the server thread has set it (just after its last write)."""
    deadline = time.monotonic() + timeout
    while record.response_bytes is None:
        assert time.monotonic() < deadline, "the server never finished the answer"
        time.sleep(0.01)
    return record.response_bytes


# --------------------------------------------------------------------------- chaos


def test_random_failures_are_seeded_unprocessed_and_changeable_at_runtime():
    def run(seed):
        with _emulator(failure_rate=0.3, seed=seed) as exact:
            with requests.Session() as s:
                statuses = [_refresh(exact, "stampNL001.none!none", session=s).status_code for _ in range(40)]
            return statuses, exact

    first, exact = run(seed=7)
    second, _ = run(seed=7)
    assert first == second  # a seeded run fails the same requests
    assert set(first) == {500, 400} and 0 < first.count(500) < 40
    injected = [r for r in exact.token_requests if r.outcome == "injected"]
    assert len(injected) == first.count(500) and {r.injected for r in injected} == {"random"}

    with _emulator() as exact:
        tokens = _connect(exact, "piet@example.nl")
        exact.advance(590)  # inside the refresh window
        exact.set_failure_rate(1.0, status=503)
        for _ in range(3):
            failed = _refresh(exact, tokens["refresh_token"])
            assert failed.status_code == 503 and failed.json() == {"error": "server_error"}
        # not processed: the refresh token did not rotate
        assert exact.grant_for(tokens["refresh_token"]).refresh_token == tokens["refresh_token"]
        exact.set_failure_rate(0.0)
        assert _refresh(exact, tokens["refresh_token"]).status_code == 200
        assert exact.count("injected") == 3 and exact.count("ok", grant_type="refresh_token") == 1

        exact.set_failure_rate(0.5)
        exact.clear_failures()  # also clears the rates
        assert exact.failure_rate == 0.0
        with pytest.raises(ValueError):
            exact.set_failure_rate(1.5)


def test_outage_for_a_period_and_latency_changed_at_runtime(exact):
    exact.fail_all_for(0.4)
    down = _refresh(exact, "stampNL001.none!none")
    assert down.status_code == 503
    assert exact.token_requests[-1].outcome == "injected" and exact.token_requests[-1].injected == "outage"
    deadline = time.monotonic() + 5
    while _refresh(exact, "stampNL001.none!none").status_code == 503:
        assert time.monotonic() < deadline, "the outage did not end"
        time.sleep(0.05)
    assert exact.token_requests[-1].outcome == "invalid_grant"  # processed again

    exact.set_latency(0.5)
    with pytest.raises(requests.Timeout):
        _refresh(exact, "stampNL001.none!none", timeout=0.1)
    exact.set_latency(0.0)
    assert _refresh(exact, "stampNL001.none!none", timeout=2).status_code == 400


def test_api_failure_rate_answers_before_authentication(exact):
    tokens = _connect(exact, "piet@example.nl")
    exact.set_api_failure_rate(1.0, status=502)
    assert requests.get(_api(exact, "crm/Accounts"), headers=_bearer(tokens), timeout=5).status_code == 502
    assert requests.get(exact.me_url, headers=_bearer(tokens), timeout=5).status_code == 502
    assert [(r.status, r.injected) for r in exact.api_requests] == [(502, "random"), (502, "random")]
    exact.set_api_failure_rate(0.0)
    assert requests.get(exact.me_url, headers=_bearer(tokens), timeout=5).status_code == 200


# --------------------------------------------------------------------------- Exact's budgets


def test_errors_are_recorded_per_client_and_user_in_a_sliding_hour(clocked):
    exact = clocked
    tokens = _connect(exact, "piet@example.nl")
    for _ in range(12):  # too early: 400 each
        assert _refresh(exact, tokens["refresh_token"]).status_code == 400
    exact.fail_next(2, status=500)  # Exact does not count 5xx
    assert _refresh(exact, tokens["refresh_token"]).status_code == 500
    assert _refresh(exact, tokens["refresh_token"]).status_code == 500
    assert _refresh(exact, "stampNL001.unknown!token").status_code == 400  # user unknown to Exact

    assert exact.errors_in_last_hour(CLIENT_ID, "piet@example.nl") == 12
    assert exact.errors_in_last_hour(CLIENT_ID, None) == 1
    assert exact.max_errors_in_any_hour() == 12
    assert exact.max_errors_in_any_hour(OTHER_ID) == 0
    assert len(exact.token_error_requests) == 13
    assert exact.token_requests_today(CLIENT_ID, "piet@example.nl") == 1 + 12 + 2

    exact.now_box[0] += 1800
    assert _refresh(exact, "stampNL001.unknown!token").status_code == 400
    exact.now_box[0] += 1801  # the errors at T0 left the sliding hour, the one at T0 + 1800 did not
    assert exact.errors_in_last_hour(CLIENT_ID, "piet@example.nl") == 0
    assert exact.errors_in_last_hour(CLIENT_ID, None) == 1
    assert exact.max_errors_in_any_hour(CLIENT_ID, "piet@example.nl") == 12  # the record stays
    assert exact.max_errors_in_any_hour(CLIENT_ID) == 12  # None: any user (maximum per user)
    assert not exact.is_blocked(CLIENT_ID, "piet@example.nl")  # recorded, not enforced by default


def test_error_budget_enforced_blocks_the_user_for_an_hour():
    now = [T0]
    with _emulator(clock=lambda: now[0], enforce_error_budget=True) as exact:
        tokens = _connect(exact, "piet@example.nl")
        other = _connect(exact, "kees@example.nl")
        for _ in range(10):
            assert _refresh(exact, tokens["refresh_token"]).json()["error"] == "access_denied"
        blocked = _refresh(exact, tokens["refresh_token"])  # the 11th error within the hour
        assert blocked.status_code == 429
        assert blocked.json() == {
            "error": "too_many_requests",
            "error_description": "API key blocked: too many errors in the last hour",
        }
        assert exact.token_requests[-1].outcome == "blocked"
        assert exact.is_blocked(CLIENT_ID, "piet@example.nl")

        now[0] += 590  # the refresh would be valid now, but the user is blocked: not processed
        assert _refresh(exact, tokens["refresh_token"]).status_code == 429
        assert exact.grant_for(tokens["refresh_token"]).refresh_token == tokens["refresh_token"]
        # another user of the same app is not blocked
        assert _refresh(exact, other["refresh_token"]).status_code == 200

        now[0] += 3600
        assert _refresh(exact, tokens["refresh_token"]).status_code == 200
        assert exact.count("blocked") == 2 and exact.max_errors_in_any_hour() == 10


def test_daily_token_limit_recorded_and_enforced(clocked):
    exact = clocked
    exact.enforce_daily_token_limit = True
    tokens = _connect(exact, "piet@example.nl")  # token request 1 of the day
    with requests.Session() as s:
        statuses = [_refresh(exact, tokens["refresh_token"], session=s).status_code for _ in range(199)]
    assert set(statuses) == {400}  # too early, but each one counts
    refused = _refresh(exact, tokens["refresh_token"])  # the 201st
    assert refused.status_code == 429
    assert refused.json()["error_description"] == "Maximum number of token requests per day exceeded"
    assert exact.token_requests[-1].outcome == "daily_limit"
    assert exact.token_requests_today(CLIENT_ID, "piet@example.nl") == 201
    assert exact.max_token_requests_in_any_day() == 201

    exact.now_box[0] += _seconds_to_next_day(exact)
    assert _refresh(exact, tokens["refresh_token"]).status_code == 200  # a new day, and long expired: ok
    assert exact.token_requests_today(CLIENT_ID, "piet@example.nl") == 1
    assert exact.max_token_requests_in_any_day(CLIENT_ID, "piet@example.nl") == 201
    assert exact.max_token_requests_in_any_day(OTHER_ID) == 0


# --------------------------------------------------------------------------- one grant per (app, user)


def test_a_new_grant_of_the_same_user_supersedes_the_old_chain(exact):
    first = _connect(exact, "piet@example.nl")
    exact.expire_access_token(first["access_token"])
    rotated = _refresh(exact, first["refresh_token"]).json()
    other_user = _connect(exact, "kees@example.nl")
    other_app = _connect(exact, "piet@example.nl", OTHER_ID, OTHER_SECRET)
    assert exact.supersessions == []

    second = _connect(exact, "piet@example.nl")  # Piet authorizes Tokenkeeper again
    [(old_id, new_id, _)] = exact.supersessions
    assert exact.grant_for(first["refresh_token"]).id == old_id
    assert exact.live_grant(CLIENT_ID, "piet@example.nl").id == new_id

    for token in (rotated["refresh_token"], first["refresh_token"]):  # current and rotated-away
        dead = _refresh(exact, token)
        assert dead.status_code == 400 and dead.json() == {"error": "invalid_grant"}
    assert [r.grant_id for r in exact.superseded_refresh_token_requests] == [old_id, old_id]
    assert exact.count("superseded_refresh_token") == 2

    me = requests.get(exact.me_url, headers=_bearer(rotated), timeout=5)
    assert me.status_code == 401 and exact.api_requests[-1].detail == "superseded"
    assert requests.get(exact.me_url, headers=_bearer(second), timeout=5).status_code == 200
    # issue_tokens is a grant too
    third = exact.issue_tokens(CLIENT_ID, "piet@example.nl")
    assert _refresh(exact, second["refresh_token"]).json() == {"error": "invalid_grant"}
    assert exact.grant_for(third["refresh_token"]).live
    # other users and other apps keep theirs
    assert exact.grant_for(other_user["refresh_token"]).live and exact.grant_for(other_app["refresh_token"]).live


def test_single_grant_per_user_can_be_turned_off():
    with _emulator(single_grant_per_user=False) as exact:
        first = _connect(exact, "piet@example.nl")
        second = _connect(exact, "piet@example.nl")
        for tokens in (first, second):
            exact.expire_access_token(tokens["access_token"])
            assert _refresh(exact, tokens["refresh_token"]).status_code == 200
        assert exact.supersessions == [] and exact.superseded_refresh_token_requests == []


# --------------------------------------------------------------------------- data API


def test_api_records_query_headers_and_bodies_and_answers_like_exact(exact):
    tokens = _connect(exact, "piet@example.nl")
    exact.set_api_results("crm/Accounts", [{"ID": "a1"}])
    auth = _bearer(tokens)
    got = requests.get(_api(exact, "crm/Accounts") + "?$select=ID,Name&$top=1", headers=auth, timeout=5)
    assert got.status_code == 200 and got.json() == {"d": {"results": [{"ID": "a1"}]}}
    assert got.headers["X-RateLimit-Minutely-Remaining"] == "59"

    posted = requests.post(_api(exact, "crm/Accounts"), json={"Name": "Acme"}, headers=auth, timeout=5)
    assert posted.status_code == 201 and posted.json() == {"d": {"Name": "Acme"}}
    put = requests.put(_api(exact, "crm/Accounts(guid'a1')"), json={"Name": "Acme B.V."}, headers=auth, timeout=5)
    assert put.status_code == 204 and put.content == b"" and "Content-Length" not in put.headers
    assert "X-RateLimit-Remaining" in put.headers
    patch = requests.patch(_api(exact, "crm/Accounts(guid'a1')"), data=b"{}", headers=auth, timeout=5)
    assert patch.status_code == 204
    chunked = requests.post(
        _api(exact, "crm/Accounts"),
        data=iter([b'{"Name":', b'"Chunky"}']),  # a generator: Transfer-Encoding: chunked
        headers={**auth, "Content-Type": "application/json"},
        timeout=5,
    )
    assert chunked.status_code == 201 and chunked.json() == {"d": {"Name": "Chunky"}}
    big = b'{"Note":"' + b"y" * 70_000 + b'"}'
    assert requests.post(_api(exact, "crm/Accounts"), data=big, headers=auth, timeout=5).status_code == 201
    assert requests.delete(_api(exact, "crm/Accounts(guid'a1')"), timeout=5).status_code == 401

    get, post, put_r, patch_r, chunk_r, big_r, anonymous = exact.api_requests
    assert (get.method, get.path, get.status) == ("GET", f"/api/v1/{DIVISION}/crm/Accounts", 200)
    assert get.query == "$select=ID,Name&$top=1"
    assert get.headers["Accept"] == "application/json" and get.authorization and get.client_id == CLIENT_ID
    assert get.body_length == 0 and _sent_bytes(get) == len(got.content)
    assert (post.status, post.body, post.headers["Content-Type"]) == (201, b'{"Name": "Acme"}', "application/json")
    assert post.headers["Content-Length"] == str(len(post.body))
    assert (put_r.method, put_r.status, put_r.body) == ("PUT", 204, b'{"Name": "Acme B.V."}')
    assert (patch_r.method, patch_r.status) == ("PATCH", 204)
    assert chunk_r.headers["Transfer-Encoding"] == "chunked" and chunk_r.body == b'{"Name":"Chunky"}'
    assert big_r.body is None and big_r.body_length == len(big)  # over api_body_record_limit
    assert (anonymous.status, anonymous.authorization, anonymous.detail) == (401, False, "missing")
    assert tokens["access_token"] not in repr(exact.api_requests)  # the token's value is never kept


def test_expired_and_unknown_access_tokens_get_401_with_the_reason(exact):
    tokens = _connect(exact, "piet@example.nl")
    exact.expire_access_token(tokens["access_token"])
    expired = requests.get(_api(exact, "crm/Accounts"), headers=_bearer(tokens), timeout=5)
    assert expired.status_code == 401 and expired.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    unknown = requests.get(_api(exact, "crm/Accounts"), headers={"Authorization": "Bearer nope"}, timeout=5)
    assert unknown.status_code == 401
    assert [r.detail for r in exact.api_requests] == ["expired", "unknown"]


@pytest.mark.parametrize("transfer", ["length", "chunked"])
def test_large_response_is_streamed_as_valid_json_of_the_exact_size(exact, transfer):
    tokens = _connect(exact, "piet@example.nl")
    size = 3 * 1024 * 1024 + 17
    exact.set_large_response("sync/Financial/TransactionLines", size, chunk_size=32768, transfer=transfer)
    with requests.get(
        _api(exact, "sync/Financial/TransactionLines"), headers=_bearer(tokens), stream=True, timeout=10
    ) as response:
        assert response.status_code == 200
        if transfer == "length":
            assert response.headers["Content-Length"] == str(size)
        else:
            assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
        assert "X-RateLimit-Remaining" in response.headers
        body = b"".join(response.iter_content(65536))
    assert len(body) == size
    results = json.loads(body)["d"]["results"]
    assert len(results) > 3000 and results[0]["ID"] == "0000000000"
    assert _sent_bytes(exact.api_requests[-1]) == size

    head = requests.head(_api(exact, "sync/Financial/TransactionLines"), headers=_bearer(tokens), timeout=5)
    assert head.status_code == 200 and head.content == b""
    exact.set_large_response("sync/Financial/TransactionLines", None)
    small = requests.get(_api(exact, "sync/Financial/TransactionLines"), headers=_bearer(tokens), timeout=5)
    assert small.json() == {"d": {"results": []}}
    with pytest.raises(ValueError):
        exact.set_large_response("x", 5)


def test_large_response_to_a_client_that_goes_away_records_what_was_sent(exact):
    tokens = _connect(exact, "piet@example.nl")
    size = 8 * 1024 * 1024
    exact.set_large_response("crm/Accounts", size, chunk_size=65536, chunk_delay=0.02)
    sock = socket.create_connection((exact.host, exact.port), timeout=5)
    sock.sendall(
        f"GET /api/v1/{DIVISION}/crm/Accounts HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {tokens['access_token']}\r\n\r\n".encode()
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    sock.close()
    assert 0 < _sent_bytes(exact.api_requests[-1], timeout=10) < size


# --------------------------------------------------------------------------- webhooks


class Receiver:
    """A tiny live webhook receiver: records every request, answers ``status_for[path]``
    (default 200), redirects ``/moved`` and verifies Exact's HashCode."""

    def __init__(self, secret: str = WEBHOOK_SECRET):
        self.secret = secret
        self.requests: list[dict] = []
        self.status_for: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": raw, "valid": receiver.verify(raw)}
                )
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/landed")
                else:
                    self.send_response(receiver.status_for.get(self.path, 200))
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def verify(self, raw: bytes) -> bool | None:
        """None for an empty body; else whether HashCode signs the raw Content text."""
        if not raw:
            return None
        text = raw.decode()
        assert text.startswith('{"Content":') and text.endswith('"}')
        content, _, rest = text[len('{"Content":') :].rpartition(',"HashCode":')
        expected = hmac.new(self.secret.encode(), content.encode(), hashlib.sha256).hexdigest().upper()
        return hmac.compare_digest(json.loads(rest[:-1]), expected)

    def on(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _subscribe(exact, tokens, callback, topic="Accounts", division=DIVISION):
    return requests.post(
        f"{exact.base_url}/api/v1/{division}/webhooks/WebhookSubscriptions",
        json={"CallbackURL": callback, "Topic": topic},
        headers=_bearer(tokens),
        timeout=5,
    )


def test_webhook_subscription_validation_events_and_hashcode(exact, receiver):
    tokens = _connect(exact, "piet@example.nl")
    created = _subscribe(exact, tokens, receiver.url + "/hooks/exact")
    assert created.status_code == 201, created.text
    d = created.json()["d"]
    assert d["CallbackURL"] == receiver.url + "/hooks/exact" and d["Topic"] == "Accounts"
    assert d["Division"] == DIVISION and d["ClientID"] == CLIENT_ID and d["Description"] == "Tokenkeeper"
    assert d["UserID"] == exact.get_user("piet@example.nl").user_id and d["Created"].startswith("/Date(")
    assert len(d["ID"]) == 36

    # about webhook_validation_delay later: an empty POST, which the receiver answers 200
    assert exact.wait_for_webhook_validations(5)
    [ping] = receiver.on("/hooks/exact")
    assert ping["body"] == b"" and ping["headers"]["Content-Length"] == "0" and "Content-Type" not in ping["headers"]
    [sub] = exact.webhook_subscriptions
    assert (sub.id, sub.validated, sub.validation_status) == (d["ID"], True, 200)

    key = "19cee073-095e-46d1-8d2d-f3fc97ba5bc1"
    sent = exact.emit_webhook(CLIENT_ID, "Accounts", DIVISION, key=key)
    assert sent == [(receiver.url + "/hooks/exact", 200)]
    event = receiver.on("/hooks/exact")[-1]
    assert event["valid"] is True and event["headers"]["Content-Type"].startswith("application/json")
    text = event["body"].decode()
    content_text = text[len('{"Content":') : text.rindex(',"HashCode":')]
    content = json.loads(content_text)
    assert list(content) == [
        "Topic",
        "ClientId",
        "Division",
        "Action",
        "Key",
        "ExactOnlineEndpoint",
        "EventCreatedOn",
    ]
    assert (content["Topic"], content["ClientId"], content["Division"]) == ("Accounts", CLIENT_ID, DIVISION)
    assert (content["Action"], content["Key"]) == ("Update", key)
    assert json.loads(text)["HashCode"] == sign_webhook_content(content_text, WEBHOOK_SECRET)
    assert sign_webhook_content(content_text, WEBHOOK_SECRET) == (
        hmac.new(WEBHOOK_SECRET.encode(), content_text.encode(), hashlib.sha256).hexdigest().upper()
    )
    # the receiver can fetch the record from the endpoint, with the connection's token
    assert content["ExactOnlineEndpoint"] == f"{exact.base_url}/api/v1/{DIVISION}/crm/Accounts(guid'{key}')"
    assert requests.get(content["ExactOnlineEndpoint"], headers=_bearer(tokens), timeout=5).status_code == 200
    # a body signed with another secret does not verify at the receiver
    forged = f'{{"Content":{content_text},"HashCode":"{sign_webhook_content(content_text, "wrong")}"}}'
    requests.post(receiver.url + "/hooks/exact", data=forged.encode(), timeout=5)
    assert receiver.requests[-1]["valid"] is False

    # other topics, divisions and apps get nothing
    assert exact.emit_webhook(CLIENT_ID, "Items", DIVISION) == []
    assert exact.emit_webhook(CLIENT_ID, "Accounts", 654321) == []
    assert exact.emit_webhook(OTHER_ID, "Accounts", DIVISION) == []
    assert [(d.kind, d.status) for d in exact.webhook_deliveries] == [("validation", 200), ("event", 200)]


def test_webhook_subscriptions_belong_to_their_app_and_can_be_deleted(exact, receiver):
    mine = _connect(exact, "piet@example.nl")
    theirs = _connect(exact, "piet@example.nl", OTHER_ID, OTHER_SECRET)
    url = f"{exact.base_url}/api/v1/{DIVISION}/webhooks/WebhookSubscriptions"
    assert requests.post(url, json={"CallbackURL": receiver.url, "Topic": "Accounts"}, timeout=5).status_code == 401
    sub_id = _subscribe(exact, mine, receiver.url + "/a").json()["d"]["ID"]
    _subscribe(exact, mine, receiver.url + "/b", topic="Items")
    _subscribe(exact, theirs, receiver.url + "/c")

    listed = requests.get(url, headers=_bearer(mine), timeout=5).json()["d"]["results"]
    assert sorted(s["Topic"] for s in listed) == ["Accounts", "Items"]
    assert [s["ClientID"] for s in requests.get(url, headers=_bearer(theirs), timeout=5).json()["d"]["results"]] == [
        OTHER_ID
    ]
    one = requests.get(f"{url}(guid'{sub_id}')", headers=_bearer(mine), timeout=5)
    assert one.status_code == 200 and one.json()["d"]["ID"] == sub_id

    duplicate = _subscribe(exact, mine, receiver.url + "/again")
    assert duplicate.status_code == 500
    assert duplicate.json()["error"]["message"]["value"] == "Data already exists"
    missing = requests.post(url, json={"Topic": "Accounts"}, headers=_bearer(mine), timeout=5)
    assert missing.status_code == 400

    assert requests.delete(f"{url}(guid'{sub_id}')", headers=_bearer(theirs), timeout=5).status_code == 404
    assert requests.delete(f"{url}(guid'{sub_id}')", headers=_bearer(mine), timeout=5).status_code == 204
    assert requests.delete(f"{url}(guid'{sub_id}')", headers=_bearer(mine), timeout=5).status_code == 404
    assert sorted(s.topic for s in exact.webhook_subscriptions if s.client_id == CLIENT_ID) == ["Items"]
    calls = [(c.method, c.status, c.client_id) for c in exact.webhook_calls]
    assert calls == [
        ("POST", 201, CLIENT_ID),
        ("POST", 201, CLIENT_ID),
        ("POST", 201, OTHER_ID),
        ("GET", 200, CLIENT_ID),
        ("GET", 200, OTHER_ID),
        ("GET", 200, CLIENT_ID),
        ("POST", 500, CLIENT_ID),
        ("POST", 400, CLIENT_ID),
        ("DELETE", 404, OTHER_ID),
        ("DELETE", 204, CLIENT_ID),
        ("DELETE", 404, CLIENT_ID),
    ]
    deleted = [c for c in exact.webhook_calls if c.method == "DELETE" and c.status == 204][0]
    assert (deleted.id, deleted.topic, deleted.callback_url) == (sub_id, "Accounts", receiver.url + "/a")


def test_failed_validation_marks_the_subscription_and_it_gets_no_events(receiver):
    with _emulator(webhook_validation_delay=0.3) as exact:
        tokens = _connect(exact, "piet@example.nl")
        receiver.status_for["/broken"] = 500
        _subscribe(exact, tokens, receiver.url + "/broken", topic="Accounts")
        _subscribe(exact, tokens, receiver.url + "/moved", topic="Items")  # a redirect is not followed
        _subscribe(exact, tokens, "http://127.0.0.1:9/closed", topic="SalesOrders")  # nobody listens
        _subscribe(exact, tokens, receiver.url + "/fine", topic="Contacts")
        # before the validation call nothing is delivered
        assert exact.emit_webhook(CLIENT_ID, "Contacts", DIVISION) == []
        assert exact.wait_for_webhook_validations(5)
        by_topic = {s.topic: s for s in exact.webhook_subscriptions}
        assert (by_topic["Accounts"].validated, by_topic["Accounts"].validation_status) == (False, 500)
        assert (by_topic["Items"].validated, by_topic["Items"].validation_status) == (False, 302)
        assert receiver.on("/landed") == []
        closed = by_topic["SalesOrders"]
        assert (closed.validated, closed.validation_status) == (False, None) and closed.validation_error
        assert by_topic["Contacts"].validated is True
        assert exact.emit_webhook(CLIENT_ID, "Accounts", DIVISION) == []
        assert exact.emit_webhook(CLIENT_ID, "Contacts", DIVISION) == [(receiver.url + "/fine", 200)]


def test_https_callbacks_can_be_required_and_webhook_secrets_default(receiver):
    with ExactOnlineEmulator(clients={CLIENT_ID: CLIENT_SECRET}, require_https_callbacks=True) as exact:
        tokens = _connect(exact, "piet@example.nl")
        refused = _subscribe(exact, tokens, receiver.url + "/hooks")
        assert refused.status_code == 400 and exact.webhook_subscriptions == []
        assert len(exact.webhook_secret(CLIENT_ID)) >= 24  # every app has one
