from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .selectors import api_key_for_raw
from .services import api_key_touch


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer tk_…``: the request acts as the key, not as a user.

    ``request.user`` stays anonymous and ``request.auth`` is the ApiKey; the
    tenancy permission checks the key's workspace and scopes.
    """

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send the key as `Authorization: Bearer <key>`.")
        key = api_key_for_raw(parts[1].decode("latin-1"))
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid or has been revoked.")
        api_key_touch(key)
        return AnonymousUser(), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="tokenkeeper"'
