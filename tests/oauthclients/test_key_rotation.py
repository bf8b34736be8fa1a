"""Rotating FIELD_ENCRYPTION_KEYS: put a new key first, run the command, drop the old key."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection

from audit.services import Actor
from common.crypto import DecryptionError
from connections.models import Connection
from oauthclients.models import OAuthClient
from oauthclients.services import oauth_client_create
from tests.fixtures.oauthclients import ACME_SECRET, ACME_WEBHOOK, GLOBEX_SECRET

NEW_KEY = Fernet.generate_key().decode()


def rotate(batch_size: int = 500) -> str:
    out = StringIO()
    call_command("rotate_encryption_keys", batch_size=batch_size, stdout=out)
    return out.getvalue()


def raw(table: str, *columns: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {', '.join(columns)} FROM {table}")  # noqa: S608 - our own constants
        return {str(row[0]).replace("-", ""): row[1:] for row in cursor.fetchall()}


def stored_ciphertexts() -> dict:
    return {
        **{("client", k): v for k, v in raw("oauthclients_oauthclient", "client_secret", "webhook_secret").items()},
        **{("connection", k): v for k, v in raw("connections_connection", "access_token", "refresh_token").items()},
    }


def readable_with(key: str, ciphertext: str) -> bool:
    try:
        Fernet(key.encode()).decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


@pytest.fixture
def secrets_everywhere(team, acme_client, globex_client):
    """Clients in both workspaces (one without a webhook secret), a connection with tokens, and a few more clients."""
    Connection.objects.create(
        workspace=team.a,
        oauth_client=acme_client,
        name="Acme BV",
        status="active",
        access_token="access-token-Ab1",
        refresh_token="refresh-token-Cd2",
    )
    for n in range(5):
        oauth_client_create(
            workspace=team.b,
            actor=Actor(user=team.charlie),
            provider="exact_online",
            name=f"EO {n}",
            client_id=f"id-{n}",
            client_secret=f"secret-{n}",
        )


def plaintexts() -> dict:
    clients = {c.name: (str(c.client_secret), str(c.webhook_secret)) for c in OAuthClient.objects.all()}
    tokens = {c.name: (str(c.access_token), str(c.refresh_token)) for c in Connection.objects.all()}
    return {**clients, **tokens}


def test_after_adding_a_new_first_key_the_command_reencrypts_every_row(settings, secrets_everywhere):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    before, secrets = stored_ciphertexts(), plaintexts()
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, old_key]

    output = rotate(batch_size=3)

    assert "oauthclients.OAuthClient: 7/7 rows checked, 7 re-encrypted" in output
    assert "connections.Connection: 1/1 rows checked, 1 re-encrypted" in output
    assert "Done: 8 rows re-encrypted with the first key." in output
    after = stored_ciphertexts()
    assert after.keys() == before.keys()
    for row, values in after.items():
        for old, new in zip(before[row], values, strict=True):
            if old:  # an empty secret stays empty
                assert new != old and readable_with(NEW_KEY, new) and not readable_with(old_key, new), row
            else:
                assert new == old == "", row
    assert plaintexts() == secrets


def test_once_rotated_the_old_key_can_be_dropped_and_everything_still_decrypts(settings, api, team, secrets_everywhere):
    secrets = plaintexts()
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, settings.FIELD_ENCRYPTION_KEYS[0]]
    rotate()

    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]

    assert plaintexts() == secrets
    acme = OAuthClient.objects.get(name="Exact Online NL")
    assert (acme.client_secret, acme.webhook_secret) == (ACME_SECRET, ACME_WEBHOOK)
    assert OAuthClient.objects.get(name="Globex CRM").client_secret == GLOBEX_SECRET
    # The app keeps working: listing, and a new secret written with the new key.
    assert api.as_user(team.alice).get("/api/v1/workspaces/acme/oauth-clients/").status_code == 200
    response = api.as_user(team.alice).patch(
        f"/api/v1/workspaces/acme/oauth-clients/{acme.id}/", {"client_secret": "after-rotation"}, format="json"
    )
    assert response.status_code == 200
    assert OAuthClient.objects.get(id=acme.id).client_secret == "after-rotation"


def test_running_the_command_again_changes_nothing(settings, secrets_everywhere):
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, settings.FIELD_ENCRYPTION_KEYS[0]]
    rotate()
    rotated = stored_ciphertexts()

    output = rotate()

    assert "Done: 0 rows re-encrypted with the first key." in output
    assert stored_ciphertexts() == rotated


def test_rows_written_while_both_keys_are_configured_use_the_new_key(settings, team):
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, settings.FIELD_ENCRYPTION_KEYS[0]]

    client = oauth_client_create(
        workspace=team.a,
        actor=Actor(user=team.alice),
        provider="exact_online",
        name="New",
        client_id="id",
        client_secret="fresh",
    )

    [(secret, _)] = raw("oauthclients_oauthclient", "client_secret", "webhook_secret").values()
    assert readable_with(NEW_KEY, secret)
    assert "Done: 0 rows re-encrypted" in rotate()
    assert OAuthClient.objects.get(id=client.id).client_secret == "fresh"


def test_a_missing_key_stops_the_command_with_a_clear_error_and_changes_nothing(settings, secrets_everywhere):
    before = stored_ciphertexts()
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]  # the key that encrypted the rows is gone

    with pytest.raises(CommandError) as error:
        rotate()

    message = str(error.value)
    assert message.startswith("oauthclients.OAuthClient ")
    assert (
        "field client_secret: A stored secret could not be decrypted with any key in FIELD_ENCRYPTION_KEYS; "
        "the key that encrypted it is missing." in message
    )
    assert stored_ciphertexts() == before


def test_reading_a_secret_whose_key_is_missing_fails_clearly_without_showing_ciphertext(settings, acme_client):
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]

    with pytest.raises(DecryptionError, match="the key that encrypted it is missing") as error:
        OAuthClient.objects.get(id=acme_client.id)

    [(ciphertext, _)] = raw("oauthclients_oauthclient", "client_secret", "webhook_secret").values()
    assert ciphertext not in str(error.value)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "FIELD_ENCRYPTION_KEYS is empty"),
        (["not-a-fernet-key"], "FIELD_ENCRYPTION_KEYS holds an invalid key"),
    ],
)
def test_no_or_a_malformed_key_is_a_clear_configuration_error(settings, acme_client, keys, message):
    settings.FIELD_ENCRYPTION_KEYS = keys

    with pytest.raises(ImproperlyConfigured, match=message):
        rotate()
