"""Secrets at rest: FIELD_ENCRYPTION_KEYS' first key encrypts, every key decrypts, nothing leaks on failure."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from common.crypto import (
    DecryptionError,
    EncryptedTextField,
    Secret,
    decrypt,
    encrypt,
    is_encrypted_with_primary_key,
    rotate,
)

OLD, NEW, OTHER = (Fernet.generate_key().decode() for _ in range(3))
SECRET = "client-secret-ÄÖÜ-🔑"


@pytest.fixture
def keys(settings):
    def use(*keys: str) -> None:
        settings.FIELD_ENCRYPTION_KEYS = list(keys)

    return use


def test_encrypted_value_round_trips_and_is_not_the_plaintext(keys):
    keys(NEW)
    ciphertext = encrypt(SECRET)
    assert SECRET not in ciphertext
    assert decrypt(ciphertext) == SECRET


def test_same_value_encrypts_differently_each_time(keys):
    keys(NEW)
    assert encrypt(SECRET) != encrypt(SECRET)


def test_first_key_encrypts(keys):
    keys(NEW, OLD)
    ciphertext = encrypt(SECRET)
    assert Fernet(NEW.encode()).decrypt(ciphertext.encode()).decode() == SECRET
    assert is_encrypted_with_primary_key(ciphertext)


def test_every_key_decrypts(keys):
    keys(OLD)
    written_before_rotation = encrypt(SECRET)
    keys(NEW, OLD)
    assert decrypt(written_before_rotation) == SECRET
    assert not is_encrypted_with_primary_key(written_before_rotation)


def test_rotation_re_encrypts_with_the_first_key(keys):
    keys(OLD)
    written_before_rotation = encrypt(SECRET)
    keys(NEW, OLD)
    rotated = rotate(written_before_rotation)
    assert is_encrypted_with_primary_key(rotated)
    keys(NEW)
    assert decrypt(rotated) == SECRET


@pytest.mark.parametrize("operation", [decrypt, rotate])
def test_value_no_key_decrypts_raises_a_clear_error_without_the_ciphertext(keys, operation):
    keys(OTHER)
    ciphertext = encrypt(SECRET)
    keys(NEW, OLD)
    with pytest.raises(DecryptionError) as raised:
        operation(ciphertext)
    message = str(raised.value)
    assert message == (
        "A stored secret could not be decrypted with any key in FIELD_ENCRYPTION_KEYS; "
        "the key that encrypted it is missing."
    )
    assert ciphertext not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_garbage_that_is_not_ciphertext_raises_decryption_error(keys):
    keys(NEW)
    with pytest.raises(DecryptionError):
        decrypt("not-a-fernet-token")


@pytest.mark.parametrize("bad_keys", [["not-a-fernet-key"], [NEW, "short"]])
def test_invalid_key_is_a_configuration_error_that_says_how_to_make_one(keys, bad_keys):
    keys(*bad_keys)
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS holds an invalid key; make one with"):
        encrypt(SECRET)


def test_no_key_is_a_configuration_error(keys):
    keys()
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS is empty"):
        encrypt(SECRET)


def test_decrypted_secret_hides_itself_in_repr():
    assert repr(Secret(SECRET)) == "Secret('********')"
    assert SECRET not in repr({"client_secret": Secret(SECRET)})


def test_encrypted_field_stores_ciphertext_and_reads_back_a_hidden_secret(keys):
    keys(NEW)
    field = EncryptedTextField()
    stored = field.get_prep_value(SECRET)
    assert SECRET not in stored
    read = field.from_db_value(stored, None, None)
    assert (read, type(read)) == (SECRET, Secret)
    assert field.get_prep_value("") == "" and field.from_db_value("", None, None) == ""


def test_encrypted_field_refuses_to_hand_out_a_value_no_key_decrypts(keys):
    keys(OTHER)
    stored = EncryptedTextField().get_prep_value(SECRET)
    keys(NEW)
    with pytest.raises(DecryptionError):
        EncryptedTextField().from_db_value(stored, None, None)
