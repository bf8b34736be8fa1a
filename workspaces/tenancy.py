"""The tenant, resolved once per request, for browser views and API views.

Every URL of a workspace carries its slug as ``workspace_slug``
(``/w/<workspace_slug>/…``, ``/api/v1/workspaces/<workspace_slug>/…``). The
mixins below take that argument off the request before any handler runs
(in ``dispatch``) and turn it into objects, once:

- ``self.workspace``: the Workspace;
- ``self.membership``: the caller's Membership (``None`` for an API key);
- ``self.actor``: who is acting, for the audit trail.

Handlers never see the slug: they take only their own URL arguments
(``def post(self, request, membership_id)``, ``def destroy(self, request, pk)``)
and use ``self.workspace``. "workspace" in this code base always means the
object, never the slug.

Browser views resolve the tenant in ``dispatch``. DRF views resolve it in
``initial()``, at its authentication step (``perform_authentication``), as
Sentry's organization endpoints do in ``convert_args``; DRF's permission
classes then only check what the caller may do there, so every error has the
API's error shape and comes in this order: not signed in and no valid key
(401/403); not a member of the workspace, or an API key of another workspace:
404 (the workspace might as well not exist); a member without the role, or
an API key without the scope: 403.
"""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, permissions

from audit.services import Actor

from .authentication import api_key_from_request
from .models import ApiKey, Membership, Role, Workspace
from .schema import WorkspaceSchema
from .selectors import membership_for


def role_satisfies(role: str, required: str) -> bool:
    return required == Role.MEMBER or role == Role.ADMIN


class WorkspaceViewMixin(LoginRequiredMixin):
    """Browser views under ``/w/<workspace_slug>/``: sets workspace, membership, actor."""

    required_role = Role.MEMBER

    workspace: Workspace
    membership: Membership
    actor: Actor

    def dispatch(self, request, *args, workspace_slug: str, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = membership_for(user=request.user, workspace_slug=workspace_slug)
        if membership is None:
            raise Http404("No such workspace.")
        # The "not allowed" page keeps this workspace in its header (workspaces.context_processors).
        request.tenant_membership = membership
        if not role_satisfies(membership.role, self.required_role):
            raise PermissionDenied("Only workspace admins can open this page.")
        self.membership = membership
        self.workspace = membership.workspace
        self.actor = Actor.from_request(request)
        if request.session.get("workspace") != self.workspace.slug:  # no session write on every poll
            request.session["workspace"] = self.workspace.slug
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(workspace=self.workspace, membership=self.membership)
        return context


def api_key_workspace(key: ApiKey, *, workspace_slug: str) -> Workspace:
    """The workspace an API key acts in at this URL: its own, else 404 (as if it did not exist)."""
    if key.workspace.slug != workspace_slug:
        raise exceptions.NotFound("No such workspace.")
    return key.workspace


def api_key_check_scope(key: ApiKey, scope: str) -> None:
    if not key.has_scope(scope):
        raise exceptions.PermissionDenied(f"This API key lacks the “{scope}” scope.")


def api_key_access(request, *, workspace_slug: str, scope: str) -> tuple[ApiKey, Workspace]:
    """The tenancy checks of ``WorkspaceAPIMixin`` for a request with an API key, in the same
    order and with the same errors, for the few endpoints served without DRF's dispatch
    (``common.fastpath``): no valid key 401, another workspace 404, a missing scope 403.
    """
    key = api_key_from_request(request)
    if key is None:
        raise exceptions.NotAuthenticated()
    workspace = api_key_workspace(key, workspace_slug=workspace_slug)
    api_key_check_scope(key, scope)
    return key, workspace


class IsUserOrApiKey(permissions.BasePermission):
    """Default for every API view: a signed-in user or a valid API key."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) or isinstance(request.auth, ApiKey)


class HasWorkspaceAccess(permissions.BasePermission):
    """The role (people) or scope (API keys) this request needs, in the workspace the view resolved."""

    def has_permission(self, request, view) -> bool:
        if getattr(view, "workspace", None) is None:
            return False
        if isinstance(request.auth, ApiKey):
            if refusal := view.api_key_refusal(request):
                raise exceptions.PermissionDenied(refusal)
            api_key_check_scope(request.auth, view.required_scope(request))
            return True
        if not role_satisfies(view.membership.role, view.required_role(request)):
            raise exceptions.PermissionDenied("Only workspace admins can do this.")
        return True


class WorkspaceAPIMixin:
    """API views under ``/api/v1/workspaces/<workspace_slug>/``.

    ``scope_map`` gives the API-key scope per HTTP method and ``role_map`` the
    member role; ``action_scopes``/``action_roles`` override them per viewset
    action. Set ``api_keys_allowed = False`` for endpoints only people may use.
    """

    permission_classes = [IsUserOrApiKey, HasWorkspaceAccess]
    schema = WorkspaceSchema()
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

    workspace_slug: str
    workspace: Workspace | None = None
    membership: Membership | None = None
    actor: Actor

    def dispatch(self, request, *args, workspace_slug: str, **kwargs):
        self.workspace_slug = workspace_slug
        return super().dispatch(request, *args, **kwargs)

    def perform_authentication(self, request) -> None:
        """Who is asking, and in which workspace: the tenant is resolved here, once per request."""
        super().perform_authentication(request)
        if isinstance(request.auth, ApiKey):
            self.workspace = self._workspace_of_key(request.auth)
        elif request.user.is_authenticated:
            self.membership = self._membership_of_user(request.user)
            self.workspace = self.membership.workspace
        else:
            return  # IsUserOrApiKey refuses the request
        self.actor = Actor.from_request(request)

    def required_scope(self, request) -> str:
        # An unlisted method needs the strictest scope, so it ends in 403/405, never a crash.
        return self.action_scopes.get(getattr(self, "action", None), self.scope_map.get(request.method, "write"))

    def required_role(self, request) -> str:
        return self.action_roles.get(getattr(self, "action", None), self.role_map.get(request.method, Role.ADMIN))

    def api_key_refusal(self, request) -> str | None:
        """Why API keys may not make this request, or ``None`` when they may."""
        if not self.api_keys_allowed:
            return "API keys cannot use this endpoint; sign in as a workspace admin."
        return None

    def _workspace_of_key(self, key: ApiKey) -> Workspace:
        return api_key_workspace(key, workspace_slug=self.workspace_slug)

    def _membership_of_user(self, user) -> Membership:
        membership = membership_for(user=user, workspace_slug=self.workspace_slug)
        if membership is None:
            raise exceptions.NotFound("No such workspace.")
        return membership
