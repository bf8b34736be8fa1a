"""The OpenAPI schema's shared truths, stated once for every endpoint.

drf-spectacular documents what a view declares: its serializers and its
success status. What no view declares is stated here, by rule, so that new
endpoints are covered without a decorator:

- every error answer has one shape, the ``Error`` component
  (``{"error": {"code", "message", "fields"?}}``, see ``common.api``);
- the errors an operation can give, from what it is: 401 and 403 where a
  caller must be authenticated; 404 under a path parameter (the workspace or
  an object) or on a paginated list (a page past the end); on every write
  400, 413 and 415 (the parsers refuse a body that cannot be parsed, is too
  large or comes in a media type they do not read, even when only the CSRF
  check reads it, and the services refuse invalid input); 400 on a read
  with filters or query parameters read by a serializer (a value that is
  not valid); 429 where the view throttles;
- a response lists every field as required: DRF always writes every
  readable field, and a client may rely on it.

An operation adds what only it knows (409, 503) with
``extend_schema(responses={200: …, 409: error("…")})``; what it declares
wins over the rules.
"""

from dataclasses import dataclass, field

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import permissions, serializers

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error the API answers has this shape.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "A stable, machine-readable reason: `invalid`, `parse_error`, `too_large`, "
                    "`not_authenticated`, `authentication_failed`, `permission_denied`, `not_found`, `throttled`, "
                    "or the rule's own code (e.g. `last_admin`, `needs_reauth`, `refresh_failing`).",
                },
                "message": {"type": "string", "description": "What went wrong, as a sentence for people."},
                "fields": {
                    "type": "object",
                    "description": "For invalid input: each field at fault, with its messages.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                "retry_after": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "When the state may have changed: seconds to wait before asking again "
                    "(also in the `Retry-After` header).",
                },
            },
            "required": ["code", "message"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}


class ErrorSerializer(serializers.Serializer):
    """Stands for ``ERROR_SCHEMA`` in ``extend_schema``; never serializes anything."""


class ErrorSchema(OpenApiSerializerExtension):
    target_class = ErrorSerializer

    def get_name(self, auto_schema, direction) -> str:
        return "Error"

    def map_serializer(self, auto_schema, direction) -> dict:
        return ERROR_SCHEMA


def error(description: str) -> OpenApiResponse:
    """An error response in the API's one shape, for ``extend_schema(responses={409: error("…")})``."""
    return OpenApiResponse(ErrorSerializer, description=description)


@dataclass(frozen=True)
class ErrorResponse:
    """An error response every operation of a kind can give, kept once under ``components/responses``."""

    status: str
    name: str
    description: str
    headers: dict = field(default_factory=dict)


RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 1},
        "description": "Seconds to wait before trying again, when known.",
    }
}

INVALID = ErrorResponse(
    "400",
    "Invalid",
    "The request is not valid and nothing was changed: invalid input (`invalid`, with `fields` naming each "
    "field at fault, or a rule's own code such as `last_admin`), or a body that cannot be parsed (`parse_error`).",
)
INVALID_FILTER = ErrorResponse("400", "InvalidFilter", "A filter value is not valid (`invalid`, with `fields`).")
UNAUTHENTICATED = ErrorResponse(
    "401",
    "Unauthenticated",
    "No credentials (`not_authenticated`), or an API key that is not valid or was revoked (`authentication_failed`).",
    {"WWW-Authenticate": {"schema": {"type": "string"}, "description": 'How to authenticate: `Bearer realm="…"`.'}},
)
FORBIDDEN = ErrorResponse(
    "403",
    "Forbidden",
    "The caller may not do this (`permission_denied`): a member without the role, an API key without the scope "
    "or on an endpoint for signed-in people only, or a signed-in request without its CSRF token.",
)
NOT_FOUND = ErrorResponse(
    "404",
    "NotFound",
    "Not found (`not_found`): the caller is not a member of the workspace (or the API key belongs to another), "
    "the object does not exist there, or the page is past the end of the list.",
)
TOO_LARGE = ErrorResponse("413", "TooLarge", "The request body is larger than the API accepts (`too_large`).")
UNSUPPORTED_MEDIA_TYPE = ErrorResponse(
    "415",
    "UnsupportedMediaType",
    "The body's Content-Type is not one the API reads (`unsupported_media_type`): send JSON, a form or multipart.",
)
THROTTLED = ErrorResponse(
    "429", "Throttled", "Too many requests (`throttled`); `Retry-After` says when to try again.", RETRY_AFTER
)


class AutoSchema(SpectacularAutoSchema):
    """Adds the error responses every operation can give and marks response fields required."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for response in self.error_responses():
            if response.status not in responses:
                responses[response.status] = self._error_response_ref(response, direction)
        for status, response in responses.items():
            if status in ("429", "503") and "content" in response:  # declared by the view: say when to come back
                response.setdefault("headers", {}).update(RETRY_AFTER)
        return dict(sorted(responses.items()))

    def error_responses(self) -> list[ErrorResponse]:
        """The errors this operation can give by the rules in the module's docstring."""
        writes = self.method not in permissions.SAFE_METHODS
        found = []
        if writes:
            found.append(INVALID)
        elif self._get_filter_parameters() or self._declares_query_parameters():
            found.append(INVALID_FILTER)
        if self._needs_authentication():
            found += [UNAUTHENTICATED, FORBIDDEN]
        if "{" in self.path or (self._is_list_view() and self._get_paginator()):
            found.append(NOT_FOUND)
        if writes:
            found += [TOO_LARGE, UNSUPPORTED_MEDIA_TYPE]
        if self.view.get_throttles():
            found.append(THROTTLED)
        return found

    def _error_response_ref(self, response: ErrorResponse, direction) -> dict:
        body = self._get_response_for_code(error(response.description), response.status, direction=direction)
        if response.headers:
            body["headers"] = response.headers
        component = ResolvedComponent(
            name=response.name, type=ResolvedComponent.RESPONSE, object=response.name, schema=body
        )
        self.registry.register_on_missing(component)
        return component.ref

    def _declares_query_parameters(self) -> bool:
        """A read whose query parameters are declared by a serializer validates them with it (400 on a bad one)."""
        return any(not isinstance(parameter, OpenApiParameter) for parameter in self.get_override_parameters())

    def _needs_authentication(self) -> bool:
        return not all(isinstance(permission, permissions.AllowAny) for permission in self.view.get_permissions())

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response" and schema.get("properties"):
            # DRF writes every readable field of a response; only a missing attribute on a field
            # that is not required would be left out, and no response here is built from such.
            schema["required"] = sorted(schema["properties"])
        return schema
