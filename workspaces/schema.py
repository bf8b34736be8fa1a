"""OpenAPI (drf-spectacular) pieces of the workspaces API: API-key security, the tenant path parameter."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter

from common.schema import AutoSchema


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "workspaces.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A workspace API key: `Authorization: Bearer tk_…`.",
        }


WORKSPACE_SLUG = OpenApiParameter(
    "workspace_slug",
    {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    OpenApiParameter.PATH,
    description="The workspace's slug, as in its URLs (e.g. `acme`). Not a member, or an API key of "
    "another workspace: 404.",
)


class WorkspaceSchema(AutoSchema):
    """Every endpoint under ``/api/v1/workspaces/{workspace_slug}/`` documents its tenant parameter."""

    def get_override_parameters(self):
        return [WORKSPACE_SLUG, *super().get_override_parameters()]
