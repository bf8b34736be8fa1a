"""Cross-cutting REST API pieces: one error shape and pagination."""

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpResponse
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import exception_handler as drf_exception_handler

from common.errors import ServiceError
from common.parsers import too_large


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_paginated_response_schema(self, schema: dict) -> dict:
        paginated = super().get_paginated_response_schema(schema)
        paginated["required"] = ["count", "next", "previous", "results"]  # always written; next/previous may be null
        return paginated


def _error_body(code: str, message: str, fields: dict | None = None) -> dict:
    body: dict = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return body


def error_messages(errors, path: str = "") -> list[str]:
    """Readable messages from DRF's nested errors: ``{1: ["…"]}`` becomes ``["[1]: …"]``, never a repr."""
    if isinstance(errors, dict):
        return [
            message
            for key, value in errors.items()
            for message in error_messages(
                value, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
            )
        ]
    if isinstance(errors, list | tuple):
        return [message for error in errors for message in error_messages(error, path)]
    return [f"{path}: {errors}" if path else str(errors)]


def _validation_body(detail, code: str) -> dict:
    if not isinstance(detail, dict):
        return _error_body(code, " ".join(error_messages(detail)))
    detail = dict(detail)
    non_field = error_messages(detail.pop("non_field_errors", []))
    fields = {name: error_messages(errors) for name, errors in detail.items()}
    if non_field:
        message = non_field[0]
    elif len(fields) == 1 and next(iter(fields.values())):
        message = next(iter(fields.values()))[0]
    else:
        message = "Some fields are not valid."
    return _error_body(code, message, fields)


def exception_handler(exc, context):
    """Every API error answers ``{"error": {"code", "message", "fields"?}}``."""
    invalid_code = "invalid"
    if isinstance(exc, ServiceError):
        if exc.status_code == 400:
            invalid_code = exc.code  # keep the rule's reason, e.g. "last_admin"
            exc = exceptions.ValidationError(exc.errors or {"non_field_errors": [exc.message]})
        else:
            body = _error_body(exc.code, exc.message)
            response = Response(body, status=exc.status_code)
            if getattr(exc, "retry_after", None):
                seconds = max(int(exc.retry_after), 1)
                body["error"]["retry_after"] = seconds
                response["Retry-After"] = str(seconds)
            for name, value in getattr(exc, "headers", {}).items():
                response[name] = value
            return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):  # Django's own limit, e.g. on multipart fields
        exc = too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = _validation_body(exc.detail, invalid_code)
    else:
        detail = getattr(exc, "detail", str(exc))
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = _error_body(str(code), " ".join(error_messages(detail)))
    return response


# What DRF adds to every answer of a GET-only action; views served without DRF's
# dispatch (common.fastpath) send the same, so both paths look alike.
_DRF_HEADERS = {"Allow": "GET, HEAD, OPTIONS"}


def json_response(data, *, status: int = 200, headers: dict | None = None) -> HttpResponse:
    """``data`` rendered as DRF's JSONRenderer renders it (the same bytes), without a DRF Response."""
    return HttpResponse(
        JSONRenderer().render(data),
        status=status,
        content_type="application/json",
        headers={**_DRF_HEADERS, **(headers or {})},
    )


def api_error_response(exc: Exception, *, auth_header: str = "") -> HttpResponse:
    """The API's error answer for ``exc`` outside DRF's dispatch, as ``APIView.handle_exception``
    would give it (401 with ``WWW-Authenticate: auth_header``); re-raises what the API does not handle."""
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        exc.auth_header = auth_header
    response = exception_handler(exc, {})
    if response is None:
        raise exc
    headers = {name: value for name, value in response.items() if name.lower() != "content-type"}
    return json_response(response.data, status=response.status_code, headers=headers)


class OptionalSlashRouter(SimpleRouter):
    """Routes that answer with or without a trailing slash (``…/token`` and ``…/token/``)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"
