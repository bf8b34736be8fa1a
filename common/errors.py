import re


class ServiceError(Exception):
    """A business rule refused the request; nothing was changed.

    ``field`` names the input at fault (or None for the request as a whole);
    ``errors`` maps several fields to their messages at once; ``code`` is a
    stable machine-readable reason.
    """

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str = "invalid",
        errors: dict[str, list[str]] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code
        self.errors = errors or ({field: [message]} if field else {})


class ConflictError(ServiceError):
    """``retry_after`` (seconds), when known: the state may have changed by then."""

    status_code = 409

    def __init__(self, message: str, *, code: str = "conflict", retry_after: float | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class UnavailableError(ServiceError):
    """The request is fine but cannot be served right now; try again later."""

    status_code = 503

    def __init__(self, message: str, *, code: str = "unavailable", retry_after: float | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


# C0 and C1 control characters (CR, LF, NUL, tab, escape …), DEL, and the Unicode
# line and paragraph separators: never part of a name, and in an e-mail subject
# or a log line they forge headers and lines.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CONTROL_CHARACTERS_MESSAGE = "Line breaks, tabs and other control characters are not allowed here."


def has_control_characters(value: str) -> bool:
    return bool(_CONTROL_CHARACTERS.search(value))


def refuse_control_characters(value: str, *, field: str) -> str:
    if has_control_characters(value):
        raise ServiceError(CONTROL_CHARACTERS_MESSAGE, field=field)
    return value


def clean_name(value: str | None, *, empty_message: str, field: str = "name", max_length: int = 100) -> str:
    """A required display name: stripped, not empty, one line without control characters, not too long."""
    value = (value or "").strip()
    if not value:
        raise ServiceError(empty_message, field=field)
    if has_control_characters(value):
        raise ServiceError("The name cannot contain line breaks, tabs or other control characters.", field=field)
    if len(value) > max_length:
        raise ServiceError(f"The name can be at most {max_length} characters.", field=field)
    return value
