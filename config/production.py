"""What production mode refuses to start with. Each problem names the variable and the fix."""

from cryptography.fernet import Fernet

MAKE_FERNET_KEY = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
MAKE_SECRET_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def _is_fernet_key(key: str) -> bool:
    try:
        Fernet(key.encode())
    except ValueError:
        return False
    return True


def production_problems(
    *,
    secret_key: str,
    dev_secret_key: str,
    field_keys: list[str],
    dev_field_key: str,
    insecure_urls: bool,
    database_engine: str,
    redis_url: str,
) -> list[str]:
    problems = []
    if secret_key == dev_secret_key:
        problems.append(
            "SECRET_KEY is the development key from the settings file, which anyone can read. "
            f"Set SECRET_KEY to a new random value, e.g. from `{MAKE_SECRET_KEY}`."
        )
    if dev_field_key in field_keys:
        problems.append(
            "FIELD_ENCRYPTION_KEYS holds the development key from the settings file, which anyone can read. "
            f"Make a key with `{MAKE_FERNET_KEY}` and use only that; secrets already encrypted with the "
            "development key: run `manage.py rotate_encryption_keys` once in development mode with the new key "
            "first and the development key after it, then start production with the new key alone."
        )
    for number, key in enumerate(field_keys, start=1):
        if key != dev_field_key and not _is_fernet_key(key):
            problems.append(
                f"FIELD_ENCRYPTION_KEYS: key number {number} is not a Fernet key (32 url-safe base64-encoded "
                f"bytes). Make one with `{MAKE_FERNET_KEY}`."
            )
    if insecure_urls:
        problems.append(
            "OAUTH_ALLOW_INSECURE_URLS is on: it lets http and private or loopback provider URLs through "
            "(server-side request forgery). Remove it from the production environment."
        )
    if database_engine.endswith("sqlite3"):
        problems.append(
            "DATABASE_URL is SQLite (or not set): production needs PostgreSQL, whose row locks keep two "
            "workers from refreshing one connection. Set DATABASE_URL=postgres://user:password@host:5432/tokenkeeper."
        )
    if not redis_url:
        problems.append(
            "REDIS_URL is not set: production needs Redis so that login rate limits are shared by every web "
            "process (not kept per process) and Celery has a broker. Set REDIS_URL=redis://host:6379/0."
        )
    return problems
