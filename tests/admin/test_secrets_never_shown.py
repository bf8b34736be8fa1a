"""No admin page shows a secret: every list, change, delete and history page of every
registered model (ours and third-party), for support staff and superusers, with a
recognisable secret in every place one is stored."""

from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit.services import Actor
from common import crypto
from common.crypto import EncryptedTextField
from common.hashing import sha256_hex
from connections.models import AuthorizationState, Connection, ConnectionEvent, ConnectLink, EventKind, Status
from integrations.models import EventType, ExactSubscription, WebhookDelivery, WebhookEndpoint, WorkspaceEvent
from oauthclients.services import oauth_client_create
from workspaces.services import api_key_create, invitation_create

pytestmark = pytest.mark.django_db

CLIENT_SECRET = "client-secret-Kq2v9Z"
WEBHOOK_SECRET = "webhook-secret-Bf7m3X"
ACCESS_TOKEN = "access-token-Wn4p8L"
REFRESH_TOKEN = "refresh-token-Jt6c1R"
PKCE_VERIFIER = "pkce-verifier-Ys5d2H"
CONNECT_LINK = "connect-link-Gh3k7M"
TOTP_SECRET = "JBSWY3DPEHPK3PXPKQ2V9ZAB"
RECOVERY_SEED = "5eed" * 10
ENDPOINT_SECRET = "whsec_ZW5kcG9pbnQtc2VjcmV0LVFwOHQ="
REMOVAL_TOKEN = "removal-token-Vx2n6Q"


@pytest.fixture
def secrets_everywhere(team, admin_user, support_user):
    """A row with a distinctive secret wherever one is stored; returns every text no page may contain."""
    alice = Actor(user=team.alice)
    client = oauth_client_create(
        workspace=team.a,
        actor=alice,
        provider="generic",
        name="Books provider",
        client_id="books-client-id",
        client_secret=CLIENT_SECRET,
        webhook_secret=WEBHOOK_SECRET,
        authorization_url="https://login.example.com/authorize",
        token_url="https://login.example.com/token",
        access_token_expires_in=3_600_000,
        refresh_token_expires_in=0,
    )
    now = timezone.now()
    conn = Connection.objects.create(
        workspace=team.a,
        oauth_client=client,
        owner=team.alice,
        name="Books",
        status=Status.REFRESH_FAILING,
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
        access_token_expires_at=now + timedelta(minutes=10),
        refresh_due_at=now + timedelta(minutes=5),
        last_error="The provider answered HTTP 503 (temporarily_unavailable).",
        last_error_at=now,
        account_division=777001,
        account_details={"Division": 777001},
    )
    ConnectionEvent.objects.create(
        connection=conn, kind=EventKind.REFRESH_FAILED, detail="HTTP 503", data={"status": 503}
    )
    AuthorizationState.objects.create(
        connection=conn,
        state_hash=sha256_hex("state"),
        session_binding=sha256_hex("binding"),
        code_verifier=PKCE_VERIFIER,
        expires_at=now + timedelta(minutes=10),
    )
    ConnectLink.objects.create(
        connection=conn, token_hash=sha256_hex(CONNECT_LINK), expires_at=now + timedelta(minutes=15)
    )
    key, raw_key = api_key_create(workspace=team.a, name="ETL", scopes=["read"], actor=alice)
    invitation, invitation_token = invitation_create(
        workspace=team.a, email="dave@example.com", role="member", actor=alice
    )
    Authenticator.objects.create(user=team.bob, type="totp", data={"secret": crypto.encrypt(TOTP_SECRET)})
    Authenticator.objects.create(
        user=team.bob, type="recovery_codes", data={"seed": crypto.encrypt(RECOVERY_SEED), "used_mask": 0}
    )
    endpoint = WebhookEndpoint.objects.create(
        workspace=team.a, url="https://hooks.example.com/in", event_types=[], secret=ENDPOINT_SECRET
    )
    event = WorkspaceEvent.objects.create(
        workspace=team.a, connection=conn, cursor=1, type=EventType.CONNECTION_REFRESH_FAILED, published_at=now
    )
    WebhookDelivery.objects.create(workspace=team.a, endpoint=endpoint, event=event)
    ExactSubscription.objects.create(
        workspace=team.a, connection=conn, topic="Accounts", division="777001", removal_token=REMOVAL_TOKEN
    )
    passwords = [user.password for user in (team.alice, team.bob, admin_user, support_user)]
    return [
        ENDPOINT_SECRET,
        REMOVAL_TOKEN,
        CLIENT_SECRET,
        WEBHOOK_SECRET,
        ACCESS_TOKEN,
        REFRESH_TOKEN,
        PKCE_VERIFIER,
        CONNECT_LINK,
        sha256_hex(CONNECT_LINK),
        TOTP_SECRET,
        RECOVERY_SEED,
        raw_key,
        key.key_hash,
        invitation_token,
        invitation.token_hash,
        *passwords,
        # Not even the start of a hash or salt (Django's own password widget shows six characters of each).
        *[password.rsplit("$", 1)[-1][:6] for password in passwords],
        *[password.split("$")[2][:6] for password in passwords],
        key.key_hash[:8],
        invitation.token_hash[:8],
        raw_key.rsplit("_", 1)[-1][:8],  # the secret part of the key (its prefix is shown on purpose)
        *stored_ciphertexts(),
    ]


def stored_ciphertexts() -> list[str]:
    """Every encrypted value as the database holds it (Fernet tokens start with gAAAAA)."""
    found = []
    with connection.cursor() as cursor:
        for model in (
            m for m in admin.site._registry if any(isinstance(f, EncryptedTextField) for f in m._meta.fields)
        ):
            columns = [f.column for f in model._meta.fields if isinstance(f, EncryptedTextField)]
            cursor.execute(f"SELECT {', '.join(columns)} FROM {model._meta.db_table}")  # noqa: S608 (our names)
            found += [value for row in cursor.fetchall() for value in row if value]
        cursor.execute("SELECT data FROM mfa_authenticator")
        found += [str(row[0]) for row in cursor.fetchall()]
    assert found, "no ciphertext found: the fixture stores none?"
    return found


VIEWS = ("change", "delete", "history")


def admin_pages(model) -> list[str]:
    """The list page, the add page, and the change, delete and history pages of every row.

    Lists and change pages must render (200); add, delete and history pages may be refused (403)."""
    opts = model._meta
    urls = [reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")]
    urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    for pk in model._default_manager.values_list("pk", flat=True):
        urls += [reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[pk]) for view in VIEWS]
    return urls


@pytest.mark.parametrize("viewer", ["support", "superuser"])
def test_no_admin_page_shows_a_secret(request, secrets_everywhere, viewer):
    client = request.getfixturevalue("support_client" if viewer == "support" else "admin_client")
    rendered = 0
    for model in admin.site._registry:
        for url in admin_pages(model):
            response = client.get(url)
            may_refuse = url.endswith(("/add/", "/delete/", "/history/"))
            assert response.status_code == 200 or (may_refuse and response.status_code == 403), (
                url,
                response.status_code,
            )
            text = response.content.decode()
            leaked = [secret for secret in secrets_everywhere if secret in text]
            assert not leaked, f"{url} shows {leaked}"
            assert "gAAAAA" not in text, f"{url} shows ciphertext"
            rendered += response.status_code == 200
    assert rendered >= 30  # every list and change page at least, as either viewer


def test_no_admin_form_offers_a_secret_field(admin_user, rf):
    """Not even a superuser can type a secret in: no encrypted or hash field is in any form."""
    request = rf.get("/django-admin/")
    request.user = admin_user
    hidden = {"password", "token_hash", "key_hash", "state_hash", "code_verifier", "data"}
    for model, model_admin in admin.site._registry.items():
        encrypted = {f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)}
        obj = model._default_manager.first()
        form = model_admin.get_form(request, obj, change=obj is not None)
        offered = set(form.base_fields) & (encrypted | hidden)
        if model._meta.label == "accounts.User":
            offered -= {"password"}  # Django's disabled, read-only field: never rendered (fieldsets), never saved
        assert not offered, f"{model._meta.label} offers {offered}"


def test_searching_for_a_secret_finds_nothing(secrets_everywhere, admin_client):
    for model in admin.site._registry:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        for secret in (CLIENT_SECRET, ACCESS_TOKEN, TOTP_SECRET):
            response = admin_client.get(url, {"q": secret})
            assert response.status_code == 200, url
            changelist = response.context["cl"]
            assert not changelist.search_fields or changelist.result_count == 0, (url, secret)
