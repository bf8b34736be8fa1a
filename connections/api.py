import time

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from common import metrics
from common.api import api_error_response, json_response
from common.errors import ServiceError
from common.schema import error
from oauthclients.selectors import oauth_client_get
from workspaces.authentication import BEARER_REALM
from workspaces.schema import WorkspaceSchema
from workspaces.tenancy import WorkspaceAPIMixin, api_key_access

from . import flow, proxy, selectors, services
from .access import connection_access_token
from .filters import ConnectionFilter
from .models import Connection
from .refresh import Outcome
from .serializers import (
    AccessTokenSerializer,
    ConnectionCreateSerializer,
    ConnectionEventSerializer,
    ConnectionRefreshedSerializer,
    ConnectionSerializer,
    ConnectionUpdateSerializer,
    ConnectUrlSerializer,
    RefreshScheduledSerializer,
    TokenQuerySerializer,
)

TOKEN_DESCRIPTION = """A valid access token now: from the database, or refreshed on demand when due.

Needs the `tokens` scope (or a member's session). 409 when the connection needs re-authorization, is
revoked or not yet authorized; 503 when the token has expired and refreshing it keeps failing.

`?min_valid=N`: a token valid at least `N` more seconds (at most half the token's lifetime; Exact
Online: 300). When the current one expires sooner it is refreshed first if the provider allows it now;
Exact Online accepts a refresh only in a token's last 30 s, so the request may wait for that window (at
most 35 s, `TOKEN_MIN_VALID_MAX_WAIT`); a longer wait, or a refresh that fails, is a 409
`not_valid_long_enough` with `retry_after` and `Retry-After`.

```
curl -H "Authorization: Bearer $TOKENKEEPER_KEY" \\
  "https://tokenkeeper.example/api/v1/workspaces/acme/connections/$CONNECTION/token?min_valid=120"
```

```python
import time
import requests

url = f"https://tokenkeeper.example/api/v1/workspaces/acme/connections/{connection_id}/token"
while True:
    answer = requests.get(url, params={"min_valid": 120}, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    if answer.status_code == 409 and answer.json()["error"]["code"] == "not_valid_long_enough":
        time.sleep(int(answer.headers["Retry-After"]))
        continue
    answer.raise_for_status()
    break
access_token = answer.json()["access_token"]  # valid for at least 120 s more
```
"""


class ConnectionViewSet(WorkspaceAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Connections. Members create them and manage their own; admins and API keys see all."""

    serializer_class = ConnectionSerializer
    queryset = Connection.objects.none()
    filterset_class = ConnectionFilter
    role_map = dict.fromkeys(("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"), "member")
    action_scopes = {"token": "tokens"}
    action_roles = {"refresh": "admin"}

    def get_queryset(self):
        return selectors.connections_visible(workspace=self.workspace, membership=self.membership).order_by("name")

    @extend_schema(request=ConnectionCreateSerializer, responses={201: ConnectionSerializer})
    def create(self, request):
        data = ConnectionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        client = oauth_client_get(workspace=self.workspace, client_id=data.validated_data["oauth_client"])
        if client is None:
            raise ServiceError("No OAuth client with that id in this workspace.", field="oauth_client")
        owner = request.user if request.user.is_authenticated else None
        connection = services.connection_create(
            workspace=self.workspace,
            oauth_client=client,
            owner=owner,
            actor=self.actor,
            name=data.validated_data["name"],
        )
        return Response(ConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ConnectionUpdateSerializer, responses=ConnectionSerializer)
    def partial_update(self, request, pk):
        data = ConnectionUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        connection = services.connection_rename(
            workspace=self.workspace, connection=self.get_object(), actor=self.actor, name=data.validated_data["name"]
        )
        return Response(ConnectionSerializer(connection).data)

    def destroy(self, request, pk):
        services.connection_delete(workspace=self.workspace, connection=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=ConnectUrlSerializer)
    @action(detail=True, methods=["post"], url_path="authorize")
    def authorize(self, request, pk):
        """A single-use Tokenkeeper URL that an end user opens in a browser to (re)authorize."""
        link, url = flow.connect_link_create(workspace=self.workspace, connection=self.get_object(), actor=self.actor)
        return Response({"connect_url": url, "expires_at": link.expires_at}, headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses=ConnectionSerializer)
    @action(detail=True, methods=["post"], url_path="disconnect")
    def disconnect(self, request, pk):
        connection = services.connection_disconnect(
            workspace=self.workspace, connection=self.get_object(), actor=self.actor
        )
        return Response(ConnectionSerializer(connection).data)

    @extend_schema(responses=ConnectionEventSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="events", filter_backends=[])
    def events(self, request, pk):
        connection = self.get_object()
        page = self.paginate_queryset(connection.events.order_by("-created_at"))
        return self.get_paginated_response(ConnectionEventSerializer(page, many=True).data)

    @extend_schema(
        description=TOKEN_DESCRIPTION,
        parameters=[TokenQuerySerializer],
        responses={
            200: AccessTokenSerializer,
            409: error(
                "The connection cannot give tokens: `pending` (not authorized yet), `needs_reauth` or `revoked`; "
                "or, with `min_valid`, no token valid that long can be had within the wait "
                "(`not_valid_long_enough`, with `retry_after` and a `Retry-After` header)."
            ),
            503: error(
                "The token has expired and refreshing it failed (`refresh_failing`); Tokenkeeper keeps retrying."
            ),
        },
    )
    @action(detail=True, methods=["get"], url_path="token")
    def token(self, request, pk):
        """A valid access token now: from the database, or refreshed on demand when due.

        Needs the ``tokens`` scope (or a member's session). 409 when the
        connection needs re-authorization, is revoked or not yet authorized.
        Requests with an API key and no query string are answered by
        ``connection_token_for_api_key`` (the same checks and answers, without
        DRF's dispatch); this view serves the rest and documents the endpoint.
        """
        query = TokenQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        body = token_body(
            workspace=self.workspace,
            membership=self.membership,
            connection_id=pk,
            min_valid=query.validated_data.get("min_valid"),
        )
        return Response(body, headers=TOKEN_HEADERS)

    def initial(self, request, *args, **kwargs):
        self.started = time.perf_counter()
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        if self.action == "token":
            metrics.token_api_answered(response.status_code, getattr(self, "started", time.perf_counter()))
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        request=None,
        responses={
            200: ConnectionRefreshedSerializer,
            202: RefreshScheduledSerializer,
            409: error(
                "Not refreshed: the connection cannot be refreshed (`not_refreshable`: pending, needs "
                "re-authorization or revoked), or the provider's budget is spent (`provider_budget`)."
            ),
        },
    )
    @action(detail=True, methods=["post"], url_path="refresh")
    def refresh(self, request, pk):
        """Force a refresh now (admins). Respects the provider's window: answers when it will happen."""
        connection = self.get_object()
        result = services.connection_refresh_now(workspace=self.workspace, connection=connection, actor=self.actor)
        if result.outcome == Outcome.SCHEDULED:
            return Response(
                {"status": "scheduled", "refresh_at": result.retry_at, "detail": result.message},
                status=status.HTTP_202_ACCEPTED,
            )
        body = ConnectionSerializer(result.connection).data
        body["refresh_result"] = str(result.outcome)
        body["refresh_detail"] = result.message
        return Response(body)


TOKEN_HEADERS = {"Cache-Control": "no-store"}


def token_body(*, workspace, membership, connection_id, min_valid: int | None = None, recent: bool = False) -> dict:
    """The token answer, one implementation for the DRF view and the fast path (``recent``: see
    ``selectors.connection_for_token``)."""
    connection = selectors.connection_for_token(
        workspace=workspace, membership=membership, connection_id=connection_id, recent=recent
    )
    if connection is None:
        raise exceptions.NotFound()
    return connection_access_token(connection=connection, min_valid=min_valid).as_dict(timezone.now())


def connection_token_for_api_key(request, *, workspace_slug: str, pk: str) -> HttpResponse:
    """``GET …/connections/{id}/token`` with an API key, without DRF's dispatch (``common.fastpath``).

    The hottest request Tokenkeeper serves (integrations ask before every job):
    the same tenancy checks (``workspaces.tenancy.api_key_access``), body,
    headers and errors as ``ConnectionViewSet.token``, which serves browser
    sessions and requests with a query string, and documents the endpoint.
    """
    started = time.perf_counter()
    try:
        _, workspace = api_key_access(
            request, workspace_slug=workspace_slug, scope=ConnectionViewSet.action_scopes["token"]
        )
        response = json_response(
            token_body(workspace=workspace, membership=None, connection_id=pk, recent=True), headers=TOKEN_HEADERS
        )
    except Exception as exc:
        response = api_error_response(exc, auth_header=BEARER_REALM)  # re-raises what the API does not handle
    metrics.token_api_answered(response.status_code, started)
    return response


class _AnyAccept(BaseContentNegotiation):
    """The proxy answers what the provider sends, whatever the caller accepts; its own errors are JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PROXY_FAST_METHODS = (*PROXY_METHODS, "HEAD")  # HEAD is sent on as HEAD, as the DRF view does (Django's GET)
PROXY_PATH = OpenApiParameter(
    "path",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The API path under the OAuth client's API base URL, e.g. `current/Me` or "
    "`{division}/crm/Accounts` (Exact Online). No `.`/`..` or empty segments, no absolute URL, backslash, `@`, "
    "control character or encoded `/`, `\\`, `.` or `%`.",
)
PROXY_DESCRIPTION = """Calls the provider's API with this connection's access token.

`…/proxy/{path}?{query}` goes to `{API base URL}/{path}?{query}` with the connection's bearer token, the
request's `Accept`, `Content-Type` and body; the answer comes back as the provider gave it (status, body,
`Content-Type`, `ETag`, `Location`, the `X-RateLimit-*` headers and `Retry-After`), marked
`X-Tokenkeeper-Proxy: provider`. Bodies are streamed both ways. Needs the `tokens` scope.

A 401 from the provider leads to one refresh and one retry when the provider allows a refresh now (Exact
Online: only in the token's last 30 s) and the request body was at most 64 KiB. For Exact Online,
Tokenkeeper keeps the 60-a-minute and 5,000-a-day budget per company (division) for every caller and
answers 429 `rate_budget_spent` itself when it is spent. Errors of Tokenkeeper's own have the API's error
shape (no `X-Tokenkeeper-Proxy` header). docs/proxy.md has the details.

```
curl -H "Authorization: Bearer $TOKENKEEPER_KEY" -H "Accept: application/json" \\
  "https://tokenkeeper.example/api/v1/workspaces/acme/connections/$CONNECTION/proxy/123456/crm/Accounts?\\$select=ID,Name&\\$top=5"
```

```python
import requests

proxy = f"https://tokenkeeper.example/api/v1/workspaces/acme/connections/{connection_id}/proxy"
headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
me = requests.get(f"{proxy}/current/Me", headers=headers).json()["d"]["results"][0]
division = me["CurrentDivision"]
answer = requests.post(f"{proxy}/{division}/crm/Accounts", json={"Name": "Bakkerij Jansen"}, headers=headers)
if answer.status_code == 429:
    wait = int(answer.headers["Retry-After"])  # the company's rate budget is spent
```
"""


def _proxy_schema(method: str):
    body = {"application/json": OpenApiTypes.OBJECT} if method in ("POST", "PUT", "PATCH") else None
    return extend_schema(
        operation_id=f"connections_proxy_{method.lower()}",
        summary=f"{method} through the provider proxy",
        description=PROXY_DESCRIPTION,
        parameters=[PROXY_PATH],
        request=body,
        responses={
            200: OpenApiResponse(OpenApiTypes.ANY, description="The provider's answer, passed through."),
            "default": OpenApiResponse(
                OpenApiTypes.ANY, description="The provider's answer with its own status (`X-Tokenkeeper-Proxy`)."
            ),
            400: error("The path would leave the API base URL (`path_refused`), or the request is not valid."),
            409: error(
                "The connection cannot give tokens (`pending`, `needs_reauth`, `revoked`, `refresh_paused`) or its "
                "OAuth client has no API base URL (`no_api_base_url`)."
            ),
            429: error(
                "The provider's rate budget for this company is spent (`rate_budget_spent`); counted by "
                "Tokenkeeper across every caller. `Retry-After` and the spent family's `X-RateLimit-*` headers "
                "say when it frees."
            ),
            411: error(
                "A chunked request body reached a web server that cannot pass one on (`length_required`; "
                "gunicorn, the production server, can): send the body with a `Content-Length`."
            ),
            502: error(
                "The provider's API could not be reached (`provider_unreachable`), redirected "
                "(`provider_redirect`, never followed) or its URL is refused (`provider_url_refused`)."
            ),
            503: error("The token has expired and refreshing it failed (`refresh_failing`)."),
            504: error("The provider's API did not answer in time (`provider_timeout`)."),
        },
    )


class ProxySchema(WorkspaceSchema):
    """The proxy passes the provider's answers through with the provider's own status, body and content
    type, so every status it documents may also carry the provider's body: each response is "the API's
    ``Error`` (Tokenkeeper's own answer, without ``X-Tokenkeeper-Proxy``) or anything (the provider's)".
    """

    PASSTHROUGH = {
        "application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/Error"}, {}]}},
        "*/*": {"schema": {}},
    }

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, response in list(responses.items()):
            if code in ("200", "default"):
                continue
            if "$ref" in response:  # a shared error component: described inline here instead
                name = response["$ref"].rsplit("/", 1)[1]
                response = {"description": f"{name}: Tokenkeeper's own answer, or the provider's with this status."}
            responses[code] = {**response, "content": self.PASSTHROUGH}
        return responses


class ConnectionProxyView(WorkspaceAPIMixin, APIView):
    """The provider proxy for browser sessions and the schema; API keys take ``connection_proxy_for_api_key``."""

    schema = ProxySchema()

    scope_map = dict.fromkeys((*PROXY_METHODS, "HEAD", "OPTIONS"), "tokens")
    role_map = dict.fromkeys((*PROXY_METHODS, "HEAD", "OPTIONS"), "member")
    content_negotiation_class = _AnyAccept
    renderer_classes = [JSONRenderer]

    def _proxy(self, request, pk, path):
        return proxy_response(
            request._request, workspace=self.workspace, membership=self.membership, connection_id=pk, path=path
        )

    @_proxy_schema("GET")
    def get(self, request, pk, path):
        return self._proxy(request, pk, path)

    @_proxy_schema("POST")
    def post(self, request, pk, path):
        return self._proxy(request, pk, path)

    @_proxy_schema("PUT")
    def put(self, request, pk, path):
        return self._proxy(request, pk, path)

    @_proxy_schema("PATCH")
    def patch(self, request, pk, path):
        return self._proxy(request, pk, path)

    @_proxy_schema("DELETE")
    def delete(self, request, pk, path):
        return self._proxy(request, pk, path)


def proxy_response(request, *, workspace, membership, connection_id, path, recent: bool = False):
    """One implementation of the proxy's answer for the DRF view and the fast path."""
    connection = selectors.connection_for_proxy(
        workspace=workspace, membership=membership, connection_id=connection_id, recent=recent
    )
    if connection is None:
        raise exceptions.NotFound()
    return proxy.forward(request, connection=connection, path=path)


def connection_proxy_for_api_key(request, *, workspace_slug: str, pk, path: str) -> HttpResponse:
    """``…/connections/{id}/proxy/{path}`` with an API key, without DRF's dispatch (``common.fastpath``):
    the same tenancy checks and errors as ``ConnectionProxyView``."""
    if request.method not in PROXY_FAST_METHODS:
        return api_error_response(exceptions.MethodNotAllowed(request.method))
    try:
        _, workspace = api_key_access(request, workspace_slug=workspace_slug, scope="tokens")
        return proxy_response(request, workspace=workspace, membership=None, connection_id=pk, path=path, recent=True)
    except Exception as exc:
        return api_error_response(exc, auth_header=BEARER_REALM)  # re-raises what the API does not handle
