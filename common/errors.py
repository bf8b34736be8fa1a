class ServiceError(Exception):
    """A business rule refused the request; nothing was changed.

    ``field`` names the input at fault (or None for the request as a whole);
    ``code`` is a stable machine-readable reason.
    """

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


class ConflictError(ServiceError):
    status_code = 409

    def __init__(self, message: str, *, code: str = "conflict"):
        super().__init__(message, code=code)
