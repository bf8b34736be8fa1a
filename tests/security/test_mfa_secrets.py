"""Two-factor secrets (TOTP key, recovery-code seed) are encrypted at rest and never shown to staff."""

import importlib
import time
from io import StringIO

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client

from common import crypto
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def totp_code(secret: str) -> str:
    """What the person's authenticator app shows now."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def log_in(email: str) -> tuple[Client, str]:
    browser = Client()
    response = browser.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[-1500:]
    return browser, response["Location"]


@pytest.fixture
def dora():
    """Dora turns on TOTP through allauth's own pages, as a person would."""
    cache.clear()
    user = UserFactory(email="dora@example.com")
    browser, _ = log_in(user.email)
    response = browser.get("/accounts/2fa/totp/activate/")
    assert response["Location"] == "/accounts/reauthenticate/?next=%2Faccounts%2F2fa%2Ftotp%2Factivate%2F"
    response = browser.post(response["Location"], {"password": PASSWORD})  # "confirm it is you"
    assert response["Location"] == "/accounts/2fa/totp/activate/"
    page = browser.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    response = browser.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302, response.content.decode()[-1500:]
    totp = Authenticator.objects.get(user=user, type="totp")
    recovery = Authenticator.objects.get(user=user, type="recovery_codes")
    seed = crypto.decrypt(recovery.data["seed"])
    return user, secret, seed, RecoveryCodes(recovery).generate_codes(), totp


def raw_authenticators() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM mfa_authenticator")
        return repr(cursor.fetchall())


def test_totp_key_and_recovery_seed_are_not_stored_in_clear(dora):
    user, secret, seed, codes, totp = dora

    stored = raw_authenticators()
    assert secret not in stored and seed not in stored
    assert not any(code in stored for code in codes)
    assert crypto.decrypt(totp.data["secret"]) == secret  # encrypted with FIELD_ENCRYPTION_KEYS

    out = StringIO()
    call_command("dumpdata", stdout=out)
    assert secret not in out.getvalue() and seed not in out.getvalue()


def test_staff_never_see_the_secrets_in_the_django_admin(dora, admin_client):
    user, secret, seed, codes, totp = dora
    recovery = Authenticator.objects.get(user=user, type="recovery_codes")
    hidden = [secret, seed, totp.data["secret"], recovery.data["seed"]]

    for authenticator in (totp, recovery):
        base = f"/django-admin/mfa/authenticator/{authenticator.pk}"
        for url in ("/django-admin/mfa/authenticator/", f"{base}/change/", f"{base}/delete/", f"{base}/history/"):
            page = admin_client.get(url)
            assert page.status_code == 200, url
            assert not any(value in page.content.decode() for value in hidden), url
        change_page = admin_client.get(f"{base}/change/").content.decode()
        assert 'name="data"' not in change_page and "dora@example.com" in change_page


def test_totp_and_recovery_codes_still_log_in(dora):
    user, secret, seed, codes, totp = dora

    browser, next_step = log_in(user.email)
    assert next_step == "/accounts/2fa/authenticate/"
    response = browser.post(next_step, {"code": totp_code(secret)})
    assert response.status_code == 302 and response["Location"] == "/"
    assert browser.session["_auth_user_id"] == str(user.pk)

    cache.clear()  # allauth's login rate limits
    other, next_step = log_in(user.email)
    response = other.post(next_step, {"code": codes[0]})
    assert response.status_code == 302 and other.session["_auth_user_id"] == str(user.pk)


def test_authenticators_stored_before_encryption_are_encrypted_by_the_migration():
    user = UserFactory(email="erin@example.com")
    legacy_totp = Authenticator.objects.create(user=user, type="totp", data={"secret": "JBSWY3DPEHPK3PXPJBSWY3DP"})
    legacy_codes = Authenticator.objects.create(
        user=user, type="recovery_codes", data={"seed": "ab" * 40, "used_mask": 3, "migrated_codes": ["12345678"]}
    )
    migration = importlib.import_module("accounts.migrations.0002_encrypt_mfa_secrets")

    migration.encrypt_secrets(apps, None)
    migration.encrypt_secrets(apps, None)  # running it again changes nothing

    assert "JBSWY3DPEHPK3PXPJBSWY3DP" not in raw_authenticators() and "ab" * 40 not in raw_authenticators()
    legacy_totp.refresh_from_db()
    legacy_codes.refresh_from_db()
    assert crypto.decrypt(legacy_totp.data["secret"]) == "JBSWY3DPEHPK3PXPJBSWY3DP"
    assert crypto.decrypt(legacy_codes.data["seed"]) == "ab" * 40
    assert [crypto.decrypt(c) for c in legacy_codes.data["migrated_codes"]] == ["12345678"]
    assert legacy_codes.data["used_mask"] == 3
    assert RecoveryCodes(legacy_codes).validate_code("12345678")


def test_key_rotation_re_encrypts_the_two_factor_secrets(dora, settings):
    user, secret, seed, codes, totp = dora
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *settings.FIELD_ENCRYPTION_KEYS]

    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)

    assert "mfa.Authenticator: 2/2 rows checked, 2 re-encrypted" in out.getvalue()
    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is gone
    totp.refresh_from_db()
    recovery = Authenticator.objects.get(user=user, type="recovery_codes")
    assert crypto.decrypt(totp.data["secret"]) == secret
    assert crypto.decrypt(recovery.data["seed"]) == seed
    browser, next_step = log_in(user.email)
    assert browser.post(next_step, {"code": totp_code(secret)})["Location"] == "/"
