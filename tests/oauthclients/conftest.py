"""OAuth clients in both workspaces, with secrets distinctive enough to search for.

``acme_client``: Alice's Exact Online client in Acme; ``globex_client``: Charlie's
generic client in Globex. Every secret ends in a marker no other text contains.
"""

import socket
from types import SimpleNamespace

import pytest

from audit.services import Actor
from oauthclients.services import oauth_client_create

ACME_SECRET = "acme-client-secret-Zq8wX3"
ACME_WEBHOOK = "acme-webhook-secret-Vk5pR1"
GLOBEX_SECRET = "globex-client-secret-Lm2tY7"
NEW_SECRET = "acme-replaced-secret-Hj4nC9"


@pytest.fixture
def acme_client(team):
    return oauth_client_create(
        workspace=team.a,
        actor=Actor(user=team.alice),
        provider="exact_online",
        site="nl",
        name="Exact Online NL",
        client_id="acme-exact-id",
        client_secret=ACME_SECRET,
        webhook_secret=ACME_WEBHOOK,
        access_token_expires_in=3599999,
        refresh_token_expires_in=7775999999,
    )


@pytest.fixture
def globex_client(team):
    return oauth_client_create(
        workspace=team.b,
        actor=Actor(user=team.charlie),
        provider="generic",
        name="Globex CRM",
        client_id="globex-crm-id",
        client_secret=GLOBEX_SECRET,
        authorization_url="https://login.globex.example/authorize",
        token_url="https://login.globex.example/token",
        access_token_expires_in=3600000,
        refresh_token_expires_in=0,
    )


@pytest.fixture
def dns(monkeypatch):
    """Names resolve as ``dns.records`` says (no network); other names do not resolve.

    Preloaded: two names that point at the machine itself, one in the private
    network, and public hosts for the happy paths.
    """
    records = {
        "intranet.example.com": ["127.0.0.1"],
        "v6-loopback.example.com": ["::1"],
        "db.corp.example.com": ["10.1.2.3"],
        "rebind.example.com": ["93.184.215.14", "192.168.1.10"],
        "login.example.com": ["93.184.215.14"],
        "start.exactonline.nl": ["52.157.1.1"],
        "start.exactonline.be": ["52.157.1.2"],
    }

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in records:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, 0))
            for ip in records[host]
        ]

    monkeypatch.setattr("common.netguard.socket.getaddrinfo", getaddrinfo)
    return SimpleNamespace(records=records)


@pytest.fixture
def strict_urls(settings, dns):
    """Production rules: https to public hosts only (test settings allow http and loopback)."""
    settings.OAUTH_ALLOW_INSECURE_URLS = False
    return settings
