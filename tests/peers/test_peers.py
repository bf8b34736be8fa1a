"""Proof that the live OAuth peers behave: plain pytest, no Django DB needed.

Run:  .venv/bin/python -m pytest tests/peers -q -p no:django -p no:cacheprovider
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from .exact_online import ExactOnlineEmulator

CLIENT_ID = "3b7f1c7e-0000-4000-8000-000000000001"
CLIENT_SECRET = "s3cr3t!"
REDIRECT_URI = "https://tokenkeeper.test/oauth/callback/exact"
DOT_REDIRECT = "http://127.0.0.1:9/oauth/callback/dot"

# The emulator bare but for this client; a DOT server with 300 s tokens and an app for DOT_REDIRECT.
pytestmark = [
    pytest.mark.exact_online(app=False, clients={CLIENT_ID: CLIENT_SECRET}),
    pytest.mark.dot_server(redirect_uri=DOT_REDIRECT, access_token_lifetime=300),
]


# --------------------------------------------------------------------------- helpers


class _Forms(HTMLParser):
    """Collect <form>s with their inputs/selects/buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": a.get("method"), "fields": {}, "buttons": []})
        elif not self.forms:
            return
        elif tag == "input":
            if a.get("type") == "submit":
                self.forms[-1]["buttons"].append((a.get("name"), a.get("value")))
            elif a.get("name"):
                self.forms[-1]["fields"][a["name"]] = a.get("value") or ""
        elif tag == "button":
            self.forms[-1]["buttons"].append((a.get("name"), a.get("value")))
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select:
            fields = self.forms[-1]["fields"]
            if "selected" in a or self._select not in fields:
                fields[self._select] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def parse_form(html_text: str) -> dict:
    parser = _Forms()
    parser.feed(html_text)
    assert parser.forms, f"no form in page:\n{html_text[:2000]}"
    return parser.forms[0]


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


# --------------------------------------------------------------------------- Exact Online emulator


def _exchange(exact, code, redirect_uri=REDIRECT_URI, **extra):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **extra,
    }
    return requests.post(exact.token_url, data=data, timeout=5)


def _refresh(exact, refresh_token, timeout=5, session=None):
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    return (session or requests).post(exact.token_url, data=data, timeout=timeout)


def _connect(exact, user=None):
    code = exact.issue_code(CLIENT_ID, REDIRECT_URI, user=user)
    resp = _exchange(exact, code)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_exact_consent_page_allow_code_exchange_and_me(exact):
    s = requests.Session()
    params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code", "state": "st/1 x"}
    page = s.get(exact.authorization_url, params=params, timeout=5)
    assert page.status_code == 200
    form = parse_form(page.text)
    assert form["action"] == "/api/oauth2/auth" and form["method"] == "post"
    assert ("decision", "allow") in form["buttons"] and ("decision", "deny") in form["buttons"]
    assert form["fields"]["state"] == "st/1 x" and form["fields"]["division"] == "123456"

    resp = s.post(exact.authorization_url, data={**form["fields"], "decision": "allow"}, allow_redirects=False)
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?code=")
    assert "%21" in location and "!" not in location  # Exact URL-encodes the "!" in codes
    q = query_of(location)
    assert "!" in q["code"] and q["state"] == "st/1 x"

    # A client that forgets to URL-decode fails.
    raw_code = location.split("code=")[1].split("&")[0]
    assert _exchange(exact, raw_code).json() == {"error": "invalid_grant"}

    tok = _exchange(exact, q["code"])
    assert tok.status_code == 200, tok.text
    body = tok.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == "600"  # a JSON string
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}

    again = _exchange(exact, q["code"])
    assert again.status_code == 400 and again.json() == {"error": "invalid_grant"}

    me = requests.get(exact.me_url, headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=5)
    assert me.status_code == 200
    [result] = me.json()["d"]["results"]
    user = exact.get_user()
    assert result["UserID"] == user.user_id and result["CurrentDivision"] == 123456
    for key in ("UserName", "FullName", "Email", "DivisionCustomerName", "LanguageCode"):
        assert result[key]
    assert requests.get(exact.me_url, headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
    assert requests.get(exact.me_url, timeout=5).status_code == 401
    assert exact.count("ok") == 1 and exact.count("invalid_grant") == 2


def test_exact_deny_unknown_client_and_client_auth(exact):
    params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code", "state": "abc"}
    form = parse_form(requests.get(exact.authorization_url, params=params, timeout=5).text)
    resp = requests.post(
        exact.authorization_url, data={**form["fields"], "decision": "deny"}, allow_redirects=False, timeout=5
    )
    assert resp.status_code == 302
    assert query_of(resp.headers["Location"]) == {"error": "access_denied", "state": "abc"}

    bad = requests.get(exact.authorization_url, params={**params, "client_id": "nope"}, timeout=5)
    assert bad.status_code == 400 and "Client with identifier 'nope' not found" in bad.text

    code = exact.issue_code(CLIENT_ID, REDIRECT_URI)
    basic = requests.post(
        exact.token_url,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=5,
    )
    assert basic.status_code == 400 and basic.json()["error"] == "invalid_client"
    wrong = _exchange(exact, code, client_secret="wrong")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_client"
    assert exact.count("bad_client") == 2
    # the code was not burnt by failed client authentication
    assert _exchange(exact, code).status_code == 200


def test_exact_code_expiry_redirect_mismatch_and_pkce(exact):
    code = exact.issue_code(CLIENT_ID, REDIRECT_URI)
    assert _exchange(exact, code, redirect_uri=REDIRECT_URI + "x").json() == {"error": "invalid_grant"}

    code = exact.issue_code(CLIENT_ID, REDIRECT_URI)
    exact.advance(181)
    assert _exchange(exact, code).json() == {"error": "invalid_grant"}

    verifier, challenge = pkce_pair()
    code = exact.issue_code(CLIENT_ID, REDIRECT_URI, code_challenge=challenge, code_challenge_method="S256")
    assert _exchange(exact, code, code_verifier="wrong").status_code == 400
    code = exact.issue_code(CLIENT_ID, REDIRECT_URI, code_challenge=challenge, code_challenge_method="S256")
    assert _exchange(exact, code, code_verifier=verifier).status_code == 200
    details = [r.detail for r in exact.token_requests if r.outcome == "invalid_grant"]
    assert details == ["redirect_uri_mismatch", "code_expired", "pkce_mismatch"]


def test_exact_refresh_window_rotation_and_errors(exact):
    tokens = _connect(exact, user="piet@example.nl")

    early = _refresh(exact, tokens["refresh_token"])
    assert early.status_code == 400
    assert early.headers["Reason"] == "TooEarlyToRefreshTokens"
    assert early.json() == {
        "error": "access_denied",
        "error_description": "Rate limit exceeded: access_token not expired",
    }

    exact.advance(600 - 25)
    new = _refresh(exact, tokens["refresh_token"])
    assert new.status_code == 200, new.text
    new_tokens = new.json()
    assert new_tokens["refresh_token"] != tokens["refresh_token"]
    assert new_tokens["access_token"] != tokens["access_token"]
    assert new_tokens["expires_in"] == "600"
    [lead] = exact.refresh_leads
    assert 24 <= lead <= 26

    old = _refresh(exact, tokens["refresh_token"])
    assert old.status_code == 401
    assert old.json() == {"error": "unauthorized_client", "error_description": "Old refresh token used."}

    unknown = _refresh(exact, "stampNL001.nope!nope")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"

    # access token expiry -> Me 401; refresh after expiry is fine (negative lead)
    exact.advance(601)
    auth = {"Authorization": f"Bearer {new_tokens['access_token']}"}
    assert requests.get(exact.me_url, headers=auth, timeout=5).status_code == 401
    late = _refresh(exact, new_tokens["refresh_token"])
    assert late.status_code == 200
    assert exact.refresh_leads[-1] < 0

    exact.advance(30 * 24 * 3600 + 1)
    expired = _refresh(exact, late.json()["refresh_token"])
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_request"
    assert expired.json()["error_description"].startswith("The refresh token expired at ")

    assert exact.outcomes == {
        "ok": 3,
        "too_early": 1,
        "old_refresh_token": 1,
        "invalid_grant": 1,
        "expired_refresh_token": 1,
    }
    assert exact.count("ok", grant_type="refresh_token") == 2
    assert exact.max_concurrent_refreshes_per_chain == 1


def test_exact_injected_clock_and_revoke_all():
    now = [1_700_000_000.0]
    with ExactOnlineEmulator(clients={CLIENT_ID: CLIENT_SECRET}, clock=lambda: now[0], refresh_window=60) as exact:
        tokens = _connect(exact)
        now[0] += 600 - 59
        resp = _refresh(exact, tokens["refresh_token"])
        assert resp.status_code == 200
        assert exact.refresh_leads == [59]
        assert exact.token_requests[-1].time == now[0]
        exact.revoke_all()
        assert _refresh(exact, resp.json()["refresh_token"]).json() == {"error": "invalid_grant"}
        assert _refresh(exact, tokens["refresh_token"]).json() == {"error": "invalid_grant"}
        auth = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        assert requests.get(exact.me_url, headers=auth, timeout=5).status_code == 401


def test_exact_failure_injection(exact):
    tokens = _connect(exact)
    exact.advance(590)

    exact.fail_next(1, status=500)
    assert _refresh(exact, tokens["refresh_token"]).status_code == 500
    exact.fail_next(1, status=429, retry_after=2)
    r = _refresh(exact, tokens["refresh_token"])
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert exact.count("injected") == 2

    # hang (then process): the client times out, the provider still rotates afterwards
    exact.hang_next(1, 0.4, then="drop")
    with pytest.raises(requests.ConnectionError):
        _refresh(exact, tokens["refresh_token"], timeout=2)
    assert exact.count("dropped") == 1

    exact.hang_next(1, 0.3)
    with pytest.raises(requests.Timeout):
        _refresh(exact, tokens["refresh_token"], timeout=0.1)
    # processed after the hang: the token rotated although the client never saw it
    wait_for(lambda: exact.count("ok", grant_type="refresh_token") == 1)
    assert _refresh(exact, tokens["refresh_token"]).status_code == 401

    # rotate-then-hang: the provider rotated immediately, the answer is late
    grant = exact.grant_for(tokens["refresh_token"])
    exact.expire_access_token(grant.id)
    current = grant.refresh_token
    exact.rotate_then_hang_next(1, 0.4)
    with pytest.raises(requests.Timeout):
        _refresh(exact, current, timeout=0.15)
    wait_for(lambda: exact.count("ok", grant_type="refresh_token") == 2)
    assert exact.token_requests[-1].injected == "rotate_then_hang"
    dead = _refresh(exact, current)
    assert dead.status_code == 401 and dead.json()["error_description"] == "Old refresh token used."
    assert grant.refresh_token != current  # only the emulator knows the live one now
    assert exact.max_concurrent_refreshes_per_chain == 1


def test_exact_concurrent_refreshes_are_detected():
    with ExactOnlineEmulator(clients={CLIENT_ID: CLIENT_SECRET}, latency=0.05) as exact:
        tokens = _connect(exact)
        exact.advance(590)
        barrier = threading.Barrier(2)
        results = []

        def worker():
            barrier.wait()
            results.append(_refresh(exact, tokens["refresh_token"]).status_code)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200, 401]
        assert exact.max_concurrent_refreshes_per_chain == 2
        assert exact.overlapping_refreshes == 1


def test_exact_data_api_and_rate_limits():
    with ExactOnlineEmulator(clients={CLIENT_ID: CLIENT_SECRET}, minutely_limit=2) as exact:
        tokens = _connect(exact)
        exact.set_api_results("crm/Accounts", [{"ID": "a1", "Name": "Acme"}])
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        url = f"{exact.base_url}/api/v1/123456/crm/Accounts"
        r = requests.get(url, headers=auth, timeout=5)
        assert r.status_code == 200 and r.json() == {"d": {"results": [{"ID": "a1", "Name": "Acme"}]}}
        assert r.headers["X-RateLimit-Minutely-Remaining"] == "1"
        assert r.headers["X-RateLimit-Remaining"] == "4999"
        assert len(r.headers["X-RateLimit-Reset"]) >= 13  # epoch milliseconds
        empty = requests.get(f"{exact.base_url}/api/v1/123456/logistics/Items", headers=auth, timeout=5)
        assert empty.json() == {"d": {"results": []}}
        limited = requests.get(url, headers=auth, timeout=5)
        assert limited.status_code == 429
        assert "X-RateLimit-Minutely-Reset" in limited.headers and "X-RateLimit-Reset" not in limited.headers
        assert requests.get(url, timeout=5).status_code == 401
        assert [a.status for a in exact.api_requests] == [200, 200, 429, 401]


def test_exact_scales_to_thousands_of_connections():
    with ExactOnlineEmulator(clients={CLIENT_ID: CLIENT_SECRET}) as exact:
        t0 = time.monotonic()
        seeded = [exact.issue_tokens(CLIENT_ID, user=f"user{i}@example.nl", access_expires_in=10) for i in range(5000)]
        assert time.monotonic() - t0 < 3
        assert len(exact.grants) == 5000

        def work(chunk):
            with requests.Session() as s:
                for tok in chunk:
                    assert _refresh(exact, tok["refresh_token"], session=s).status_code == 200

        threads = [threading.Thread(target=work, args=(seeded[i:300:8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert exact.count("ok") == 300
        assert all(0 < lead <= 10 for lead in exact.refresh_leads)
        assert exact.max_concurrent_refreshes_per_chain == 1


# --------------------------------------------------------------------------- django-oauth-toolkit peer


def _dot_login(dot) -> requests.Session:
    s = requests.Session()
    page = s.get(dot.login_url, timeout=10)
    form = parse_form(page.text)
    assert ("Log in" in page.text) and {"username", "password", "csrfmiddlewaretoken"} <= set(form["fields"])
    resp = s.post(
        dot.login_url,
        data={**form["fields"], "username": dot.username, "password": dot.password, "next": "/healthz"},
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 302, resp.text
    return s


def test_dot_full_authorization_code_flow_with_pkce_and_rotation(dot):
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": dot.client_id,
        "redirect_uri": DOT_REDIRECT,
        "scope": "read write",
        "state": "xyz",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    # anonymous -> login page
    anon = requests.get(dot.authorization_url, params=params, allow_redirects=False, timeout=10)
    assert anon.status_code == 302 and anon.headers["Location"].startswith("/accounts/login/?next=")

    s = _dot_login(dot)
    consent = s.get(dot.authorization_url, params=params, timeout=10)
    assert consent.status_code == 200, consent.text
    form = parse_form(consent.text)
    assert ("allow", "Authorize") in form["buttons"]
    resp = s.post(
        dot.authorization_url, data={**form["fields"], "allow": "Authorize"}, allow_redirects=False, timeout=10
    )
    assert resp.status_code == 302, resp.text
    q = query_of(resp.headers["Location"])
    assert resp.headers["Location"].startswith(DOT_REDIRECT) and q["state"] == "xyz"

    token_data = {
        "grant_type": "authorization_code",
        "code": q["code"],
        "redirect_uri": DOT_REDIRECT,
        "client_id": dot.client_id,
        "client_secret": dot.client_secret,
        "code_verifier": verifier,
    }
    tok = requests.post(dot.token_url, data=token_data, timeout=10)
    assert tok.status_code == 200, tok.text
    body = tok.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300 and body["scope"] == "read write"
    assert requests.post(dot.token_url, data=token_data, timeout=10).json()["error"] == "invalid_grant"

    me = requests.get(dot.userinfo_url, headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10)
    assert me.status_code == 200 and me.json()["username"] == "alice" and me.json()["email"] == "alice@example.com"
    assert requests.get(dot.userinfo_url, headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401

    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": dot.client_id,
        "client_secret": dot.client_secret,
    }
    new = requests.post(dot.token_url, data=refresh, timeout=10)
    assert new.status_code == 200, new.text
    assert new.json()["refresh_token"] != body["refresh_token"]
    reuse = requests.post(dot.token_url, data=refresh, timeout=10)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # the old access token is revoked by the rotation
    old_me = requests.get(dot.userinfo_url, headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10)
    assert old_me.status_code == 401

    # HTTP Basic client authentication works too at DOT
    new_rt = new.json()["refresh_token"]
    basic = requests.post(
        dot.token_url,
        data={"grant_type": "refresh_token", "refresh_token": new_rt},
        auth=(dot.client_id, dot.client_secret),
        timeout=10,
    )
    assert basic.status_code == 200, basic.text

    assert dot.expire_access_tokens() >= 1
    auth = {"Authorization": f"Bearer {basic.json()['access_token']}"}
    assert requests.get(dot.userinfo_url, headers=auth, timeout=10).status_code == 401
    state = dot.state()
    assert state["valid_access_tokens"] == 0 and state["revoked_refresh_tokens"] >= 2


def test_dot_requires_pkce_and_supports_extra_apps(dot):
    client_id, client_secret = dot.setup_app("http://127.0.0.1:9/other", client_id="second", client_secret="p!ain")
    assert (client_id, client_secret) == ("second", "p!ain")
    s = _dot_login(dot)
    params = {"response_type": "code", "client_id": "second", "redirect_uri": "http://127.0.0.1:9/other", "state": "s"}
    resp = s.get(dot.authorization_url, params=params, allow_redirects=False, timeout=10)
    # without code_challenge DOT refuses: redirect back with an error, no code
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert q["error"] == "invalid_request" and q["error_description"] == "Code challenge required." and "code" not in q

    deny_form = parse_form(s.get(dot.authorization_url, params={**params, **_challenge_params()}, timeout=10).text)
    denied = s.post(dot.authorization_url, data=deny_form["fields"], allow_redirects=False, timeout=10)
    assert denied.status_code == 302 and query_of(denied.headers["Location"])["error"] == "access_denied"


def _challenge_params():
    _, challenge = pkce_pair()
    return {"code_challenge": challenge, "code_challenge_method": "S256"}
