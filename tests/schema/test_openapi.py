"""The OpenAPI schema is valid and tells the truth about errors, nulls and required fields.

``test_schemathesis.py`` checks the schema against the running API; these
check what every operation must say, whoever wrote it.
"""

import json

import pytest
from django.core.management import call_command

from common.schema import ERROR_SCHEMA

ERROR_REF = "#/components/schemas/Error"
WRITES = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def openapi(tmp_path_factory) -> dict:
    """The schema as ``manage.py spectacular --validate --fail-on-warn`` writes it (which fails on any warning)."""
    path = tmp_path_factory.mktemp("schema") / "openapi.json"
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(path))
    return json.loads(path.read_text())


def operations(openapi: dict):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def resolve(openapi: dict, response: dict) -> dict:
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[1]
        return openapi["components"]["responses"][name]
    return response


def test_every_error_response_has_the_one_error_shape(openapi):
    assert openapi["components"]["schemas"]["Error"] == ERROR_SCHEMA
    for path, method, operation in operations(openapi):
        for status, response in operation["responses"].items():
            if status == "default" or int(status) < 400:
                continue
            content = resolve(openapi, response)["content"]
            if "/proxy/" in path:  # Tokenkeeper's Error, or the provider's answer passed through with its status
                assert content["application/json"]["schema"]["anyOf"][0] == {"$ref": ERROR_REF}, (method, path)
                continue
            assert content == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (method, path, status)


def test_every_operation_documents_the_errors_its_kind_can_give(openapi):
    for path, method, operation in operations(openapi):
        documented = set(operation["responses"])
        expected = {"401", "403"}  # every operation needs a key or a session
        if "{" in path:
            expected.add("404")
        if method in WRITES:
            expected |= {"400", "413", "415"}
        assert expected <= documented, (method, path, sorted(expected - documented))


def test_the_token_endpoint_documents_its_conflicts_and_retry_after(openapi):
    [token] = [op for path, method, op in operations(openapi) if path.endswith("/token/")]

    assert {"200", "409", "503"} <= set(token["responses"])
    assert "Retry-After" in token["responses"]["503"]["headers"]


def test_responses_mark_every_field_required(openapi):
    """DRF writes every readable field; clients may rely on all of them being there."""
    for name, schema in openapi["components"]["schemas"].items():
        if name.endswith("Request") or "properties" not in schema or name == "Error":
            continue
        assert set(schema.get("required", [])) == set(schema["properties"]), name


def test_fields_that_can_be_null_say_so(openapi):
    schemas = openapi["components"]["schemas"]
    for component, field in [
        ("Connection", "owner"),  # made with an API key
        ("ApiKey", "created_by"),  # made by the system, or its creator left
        ("Invitation", "invited_by"),
        ("Workspace", "role"),  # an API key has none
    ]:
        assert schemas[component]["properties"][field].get("nullable"), (component, field)
