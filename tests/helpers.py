"""Assertions shared by the tests of every app."""


def assert_error(
    response, status: int, message: str | None = None, code: str | None = None, *, field: str | None = None
) -> dict:
    """The response is a ``status`` error in the API's one error shape; returns the error.

    ``message`` is found in the error's message or, for invalid fields, in one
    of the fields' messages; ``code`` is the error's code; ``field`` is among
    the invalid fields.
    """
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert set(error) <= {"code", "message", "fields"}, error
    if message is not None:
        assert message in error["message"] or any(
            message in m for messages in error.get("fields", {}).values() for m in messages
        ), error
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert field in error.get("fields", {}), error
    return error
