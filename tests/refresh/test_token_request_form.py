"""The refresh's token request form (``connections.token_requests.token_request``) is what Authlib builds."""

from types import SimpleNamespace

import pytest
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from connections.token_requests import HEADERS, token_request

TOKENS = [
    "gAAAAAplain" + "Q" * 600,
    "Stuff!with=&+/ %*~()'reserved",
    "ünïcødé-токен-令牌",
    "",
]


def authlib(client, refresh_token):
    extra = {"scope": client.scopes} if client.scopes else {}
    body = prepare_token_request("refresh_token", refresh_token=refresh_token, **extra)
    auth = ClientAuth(client.client_id, client.client_secret, client.token_endpoint_auth_method)
    return auth.prepare("POST", client.token_url, dict(HEADERS), body)


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "none"])
@pytest.mark.parametrize("scopes", ["", "openid offline_access"])
@pytest.mark.parametrize("refresh_token", TOKENS)
def test_the_form_is_what_authlib_builds(method, scopes, refresh_token):
    client = SimpleNamespace(
        client_id="app&id=1",
        client_secret="s3cr+t/with spaces=",
        token_endpoint_auth_method=method,
        scopes=scopes,
        token_url="https://start.exactonline.nl/api/oauth2/token",
    )

    assert token_request(client, refresh_token=refresh_token) == authlib(client, refresh_token)
