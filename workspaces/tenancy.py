"""The tenant, resolved once per request, for browser views and API views.

A caller who is not a member of the workspace in the URL gets 404 (the
workspace might as well not exist); a member without the role, or an API key
without the scope, gets 403. An API key of another workspace gets 404.
"""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, permissions

from audit.services import Actor

from .models import ApiKey, Role, Workspace
from .selectors import membership_for

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def role_satisfies(role: str, required: str) -> bool:
    return required == Role.MEMBER or role == Role.ADMIN


class WorkspaceViewMixin(LoginRequiredMixin):
    """Browser views under ``/w/<workspace>/``: sets workspace, membership, actor."""

    required_role = Role.MEMBER

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = membership_for(user=request.user, workspace_slug=kwargs["workspace"])
        if membership is None:
            raise Http404("No such workspace.")
        if not role_satisfies(membership.role, self.required_role):
            raise PermissionDenied("Only workspace admins can open this page.")
        self.membership = membership
        self.workspace = membership.workspace
        self.actor = Actor.from_request(request)
        request.session["workspace"] = self.workspace.slug
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(workspace=self.workspace, membership=self.membership)
        return context


class IsUserOrApiKey(permissions.BasePermission):
    """Default for every API view: a signed-in user or a valid API key."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) or isinstance(request.auth, ApiKey)


class WorkspacePermission(IsUserOrApiKey):
    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        view.resolve_workspace(request)
        return True


class WorkspaceAPIMixin:
    """API views under ``/api/v1/workspaces/<workspace>/``.

    ``scope_map`` gives the API-key scope per HTTP method and ``role_map`` the
    member role; ``action_scopes``/``action_roles`` override them per viewset
    action. Set ``api_keys_allowed = False`` for endpoints only people may use.
    """

    permission_classes = [WorkspacePermission]
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    scope_map = {
        "GET": "read",
        "HEAD": "read",
        "OPTIONS": "read",
        "POST": "write",
        "PUT": "write",
        "PATCH": "write",
        "DELETE": "write",
    }
    role_map = {
        "GET": Role.MEMBER,
        "HEAD": Role.MEMBER,
        "OPTIONS": Role.MEMBER,
        "POST": Role.ADMIN,
        "PUT": Role.ADMIN,
        "PATCH": Role.ADMIN,
        "DELETE": Role.ADMIN,
    }
    action_scopes: dict[str, str] = {}
    action_roles: dict[str, str] = {}
    api_keys_allowed = True

    workspace: Workspace
    membership = None
    actor: Actor

    def required_scope(self, request) -> str:
        # An unlisted method needs the strictest scope, so it ends in 403/405, never a crash.
        return self.action_scopes.get(getattr(self, "action", None), self.scope_map.get(request.method, "write"))

    def required_role(self, request) -> str:
        return self.action_roles.get(getattr(self, "action", None), self.role_map.get(request.method, Role.ADMIN))

    def resolve_workspace(self, request) -> None:
        slug = self.kwargs["workspace"]
        if isinstance(request.auth, ApiKey):
            key = request.auth
            if key.workspace.slug != slug:
                raise exceptions.NotFound("No such workspace.")
            if not self.api_keys_allowed:
                raise exceptions.PermissionDenied("API keys cannot use this endpoint; sign in as a workspace admin.")
            scope = self.required_scope(request)
            if not key.has_scope(scope):
                raise exceptions.PermissionDenied(f"This API key lacks the “{scope}” scope.")
            self.workspace = key.workspace
        else:
            membership = membership_for(user=request.user, workspace_slug=slug)
            if membership is None:
                raise exceptions.NotFound("No such workspace.")
            if not role_satisfies(membership.role, self.required_role(request)):
                raise exceptions.PermissionDenied("Only workspace admins can do this.")
            self.membership = membership
            self.workspace = membership.workspace
        self.actor = Actor.from_request(request)
