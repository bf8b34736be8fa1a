"""allauth's two-factor secrets (TOTP key, recovery-code seed) encrypted at rest.

allauth stores them in ``Authenticator.data`` and calls its MFA adapter's
``encrypt``/``decrypt`` hooks around them; this adapter uses the same keys as
every other secret (``FIELD_ENCRYPTION_KEYS``), so ``rotate_encryption_keys``
re-encrypts them too. Decryption is strict: a value no key decrypts raises
``DecryptionError``. Rows written before encryption was turned on are
encrypted by migration ``accounts.0002``.
"""

from collections.abc import Callable

from allauth.mfa.adapter import DefaultMFAAdapter

from common import crypto

# The values in Authenticator.data that allauth passes through encrypt().
SECRET_KEYS = ("secret", "seed")  # TOTP key; recovery-code seed
SECRET_LISTS = ("migrated_codes",)  # recovery codes imported from elsewhere


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text)


def map_secrets(data: dict, convert: Callable[[str], str]) -> dict:
    """A copy of an authenticator's ``data`` with ``convert`` applied to each secret in it."""
    data = dict(data)
    for key in SECRET_KEYS:
        if isinstance(data.get(key), str):
            data[key] = convert(data[key])
    for key in SECRET_LISTS:
        if isinstance(data.get(key), list):
            data[key] = [convert(value) for value in data[key]]
    return data
