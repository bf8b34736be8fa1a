"""Cross-cutting REST API pieces: one error shape and pagination."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import exception_handler as drf_exception_handler

from common.errors import ServiceError


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


def _error_body(code: str, message: str, fields: dict | None = None) -> dict:
    body: dict = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return body


def exception_handler(exc, context):
    """Every API error answers ``{"error": {"code", "message", "fields"?}}``."""
    invalid_code = "invalid"
    if isinstance(exc, ServiceError):
        if exc.status_code == 400:
            invalid_code = exc.code  # keep the rule's reason, e.g. "last_admin"
            exc = exceptions.ValidationError(exc.errors or {"non_field_errors": [exc.message]})
        else:
            response = Response(_error_body(exc.code, exc.message), status=exc.status_code)
            if getattr(exc, "retry_after", None):
                response["Retry-After"] = str(max(int(exc.retry_after), 1))
            return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            non_field = detail.pop("non_field_errors", None)
            if non_field:
                message = str(non_field[0])
            elif len(detail) == 1:
                errors = next(iter(detail.values()))
                message = str(errors[0] if isinstance(errors, list) and errors else errors)
            else:
                message = "Some fields are not valid."
            fields = {
                name: [str(e) for e in (errors if isinstance(errors, list) else [errors])]
                for name, errors in detail.items()
            }
            response.data = _error_body(invalid_code, message, fields)
        else:
            errors = detail if isinstance(detail, list) else [detail]
            response.data = _error_body(invalid_code, " ".join(str(e) for e in errors))
    else:
        detail = getattr(exc, "detail", str(exc))
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = _error_body(str(code), str(detail))
    return response


class OptionalSlashRouter(SimpleRouter):
    """Routes that answer with or without a trailing slash (``…/token`` and ``…/token/``)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"
