"""Request body parsers for the API: bounded in size and in nesting.

DRF's parsers read the whole body, however large, and a JSON document nested
a thousand deep ends in a RecursionError (a 500). These answer 413 and 400
in the API's error shape instead.
"""

import io

from django.conf import settings
from rest_framework import exceptions, parsers

MAX_JSON_DEPTH = 32  # no Tokenkeeper API takes more than a few levels


class BodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "too_large"
    default_detail = "The request body is too large."


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {limit} bytes, the most this API accepts.")


def _bounded(stream, parser_context: dict | None):
    """The body as a stream, read up to DATA_UPLOAD_MAX_MEMORY_SIZE; larger bodies are refused."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream
    request = (parser_context or {}).get("request")
    declared = request.META.get("CONTENT_LENGTH") if request is not None else None
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)  # refused before reading it
    body = stream.read(limit + 1)  # a body without (or with a wrong) Content-Length
    if len(body) > limit:
        raise too_large(limit)
    return io.BytesIO(body)


def _deeper_than(data, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        too_deep = exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        try:
            data = super().parse(_bounded(stream, parser_context), media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if _deeper_than(data, MAX_JSON_DEPTH):
            raise too_deep
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return super().parse(_bounded(stream, parser_context), media_type, parser_context)


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return super().parse(_bounded(stream, parser_context), media_type, parser_context)
