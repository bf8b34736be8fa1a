from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from . import keycache
from .models import ApiKey
from .selectors import api_key_for_raw
from .services import api_key_touch

BEARER_REALM = 'Bearer realm="tokenkeeper"'


def api_key_from_request(request) -> ApiKey | None:
    """The API key of ``Authorization: Bearer tk_…``; None without a bearer header.

    A key seen in the last few seconds comes from this process's cache
    (``workspaces.keycache``: revocation takes effect within
    ``API_KEY_CACHE_SECONDS``). Raises AuthenticationFailed for a malformed
    header or a key that is unknown or revoked.
    """
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Send the key as `Authorization: Bearer <key>`.")
    raw = parts[1].decode("latin-1")
    key = keycache.recent(raw)
    if key is None:
        key = api_key_for_raw(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid or has been revoked.")
        keycache.remember(key)
    api_key_touch(key)
    return key


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer tk_…``: the request acts as the key, not as a user.

    ``request.user`` stays anonymous and ``request.auth`` is the ApiKey; the
    tenancy permission checks the key's workspace and scopes.
    """

    def authenticate(self, request):
        key = api_key_from_request(request)
        return None if key is None else (AnonymousUser(), key)

    def authenticate_header(self, request) -> str:
        return BEARER_REALM
