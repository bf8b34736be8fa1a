"""dumpdata writes ciphertext, never a secret; loaddata of that export brings back working secrets."""

import pytest
from allauth.mfa.models import Authenticator
from django.core.management import call_command

from audit.services import Actor
from common import crypto
from connections.models import Connection
from oauthclients.models import OAuthClient
from oauthclients.services import oauth_client_create

CLIENT_SECRET = "client-secret-in-no-export-4Kd"
WEBHOOK_SECRET = "webhook-secret-in-no-export-8Rt"
ACCESS_TOKEN = "access-token-in-no-export-2Vn"
REFRESH_TOKEN = "refresh-token-in-no-export-6Hs"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
SECRETS = [CLIENT_SECRET, WEBHOOK_SECRET, ACCESS_TOKEN, REFRESH_TOKEN, TOTP_SECRET]


@pytest.fixture
def secrets_stored(team):
    client = oauth_client_create(
        workspace=team.a,
        actor=Actor(user=team.alice),
        provider="generic",
        name="Provider",
        client_id="tokenkeeper",
        client_secret=CLIENT_SECRET,
        webhook_secret=WEBHOOK_SECRET,
        authorization_url="https://login.example.com/authorize",
        token_url="https://login.example.com/token",
        access_token_expires_in=3_600_000,
        refresh_token_expires_in=0,
    )
    Connection.objects.create(
        workspace=team.a,
        oauth_client=client,
        name="Books",
        status="active",
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
    )
    Authenticator.objects.create(user=team.alice, type="totp", data={"secret": crypto.encrypt(TOTP_SECRET)})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", ["json", "jsonl", "xml", "yaml"])
def test_an_export_holds_no_secret_and_loads_back_with_working_secrets(secrets_stored, tmp_path, fmt):
    export = tmp_path / f"export.{fmt}"
    call_command("dumpdata", format=fmt, output=str(export), verbosity=0)

    text = export.read_text()
    assert not [secret for secret in SECRETS if secret in text]
    assert text.count(crypto.EXPORT_PREFIX) == 4  # client and webhook secret, access and refresh token

    call_command("flush", interactive=False, inhibit_post_migrate=True, verbosity=0)
    assert not OAuthClient.objects.exists() and not Connection.objects.exists()
    call_command("loaddata", str(export), verbosity=0)

    client = OAuthClient.objects.get()
    assert (client.client_secret, client.webhook_secret) == (CLIENT_SECRET, WEBHOOK_SECRET)
    connection = Connection.objects.get()
    assert (connection.access_token, connection.refresh_token) == (ACCESS_TOKEN, REFRESH_TOKEN)
    assert crypto.decrypt(Authenticator.objects.get().data["secret"]) == TOTP_SECRET


@pytest.mark.django_db
def test_a_marked_value_typed_as_a_secret_is_only_text(team):
    """Only loaddata decrypts exported values: a form or API cannot be made to decrypt ciphertext."""
    ciphertext = crypto.EXPORT_PREFIX + crypto.encrypt("someone else's secret")
    field = OAuthClient._meta.get_field("client_secret")

    assert field.to_python(ciphertext) == ciphertext
    assert field.clean(ciphertext, None) == ciphertext
