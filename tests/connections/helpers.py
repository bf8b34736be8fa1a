"""Driving the two live OAuth peers and Tokenkeeper from tests, without a browser.

Tokenkeeper is driven with Django's test ``Client``; the provider side (the
consent page) with ``requests``, as a person's browser would. Shared by the
flow tests here and ``tests/refresh/test_lifetimes.py``.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import requests
from django.db import connection as db_connection

from tests.peers.dot import DjangoOAuthToolkitServer


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def path_and_query(url: str) -> str:
    """``http://host/oauth2/callback?code=…`` -> ``/oauth2/callback?code=…`` for Django's test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "fields": {}})
        elif self.forms and tag == "input" and a.get("name") and a.get("type") != "submit":
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def form_fields(html_text: str) -> dict[str, str]:
    parser = _Forms()
    parser.feed(html_text)
    assert parser.forms, f"no form in page:\n{html_text[:1000]}"
    return parser.forms[0]["fields"]


# --- Exact Online emulator ------------------------------------------------------------


def exact_consent(authorize_url: str, *, decision: str = "allow", **fields) -> str:
    """Answer the emulator's consent page; returns where it redirects (the callback URL)."""
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    data = {**form_fields(page.text), **fields, "decision": decision}
    resp = requests.post(authorize_url.split("?")[0], data=data, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    return resp.headers["Location"]


# --- django-oauth-toolkit peer ----------------------------------------------------------


def dot_session(dot: DjangoOAuthToolkitServer) -> requests.Session:
    """A browser session logged in at the DOT server."""
    session = requests.Session()
    page = session.get(dot.login_url, timeout=10)
    data = {**form_fields(page.text), "username": dot.username, "password": dot.password, "next": "/healthz"}
    resp = session.post(dot.login_url, data=data, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    return session


def dot_consent(dot: DjangoOAuthToolkitServer, authorize_url: str, *, allow: bool = True) -> str:
    """Log in at DOT and answer its consent page; returns the callback URL it redirects to."""
    session = dot_session(dot)
    page = session.get(authorize_url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, f"{page.status_code} {page.headers.get('Location')} {page.text[:500]}"
    data = form_fields(page.text)
    if allow:
        data["allow"] = "Authorize"
    resp = session.post(authorize_url.split("?")[0], data=data, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    return resp.headers["Location"]


# --- Tokenkeeper -------------------------------------------------------------------------


def start_flow(client, connection) -> str:
    """Click Connect on the connection page: returns the provider's authorization URL."""
    url = f"/w/{connection.workspace.slug}/connections/{connection.id}/connect/"
    response = client.post(url)
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def raw_rows(table: str = "connections_connection") -> str:
    """Every row of ``table`` as raw SQL returns it, as one string to search."""
    with db_connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names from tests
        return repr(cursor.fetchall())


def raw_tokens(name: str) -> tuple[str, str]:
    """The stored (encrypted) access and refresh token columns of the connection called ``name``."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM connections_connection WHERE name = %s", [name])
        return cursor.fetchone()


def detail_url(connection) -> str:
    return f"/w/{connection.workspace.slug}/connections/{connection.id}/"


def api_url(connection=None, suffix: str = "", workspace: str = "acme") -> str:
    base = f"/api/v1/workspaces/{workspace}/connections/"
    return f"{base}{connection.id}/{suffix}" if connection is not None else base


def finish_flow(client, callback_url: str):
    """The browser follows the provider's redirect to Tokenkeeper's callback (and on to the page)."""
    return client.get(path_and_query(callback_url), follow=True)
