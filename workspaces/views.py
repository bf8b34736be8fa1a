from datetime import datetime, timedelta

from allauth.account.adapter import get_adapter
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import FormView, TemplateView

from audit.services import Actor
from common.crypto import decrypt, encrypt
from common.errors import ServiceError
from common.forms import add_service_error

from . import selectors, services
from .auditlog import audit_row
from .forms import ApiKeyForm, InvitationForm, RoleForm, WorkspaceCreateForm, WorkspaceRenameForm
from .models import Role
from .tenancy import WorkspaceViewMixin


def home(request):
    """Send people to their current workspace, or show what Tokenkeeper is."""
    if not request.user.is_authenticated:
        return render(request, "home.html")
    workspaces = selectors.workspaces_for_user(user=request.user)
    current = workspaces.filter(slug=request.session.get("workspace")).first() or workspaces.first()
    if current is None:
        return redirect("workspace-create")
    return redirect("workspace-overview", workspace_slug=current.slug)


class WorkspaceCreateView(LoginRequiredMixin, FormView):
    template_name = "workspaces/create.html"
    form_class = WorkspaceCreateForm

    def form_valid(self, form):
        try:
            workspace = services.workspace_create(
                user=self.request.user, actor=Actor.from_request(self.request), **form.cleaned_data
            )
        except ServiceError as error:
            add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"Workspace “{workspace.name}” created. You are its admin.")
        return redirect("workspace-overview", workspace_slug=workspace.slug)


class LeaveView(WorkspaceViewMixin, View):
    def post(self, request):
        try:
            services.membership_leave(workspace=self.workspace, user=request.user, actor=self.actor)
        except ServiceError as error:
            messages.error(request, error.message)
            return redirect("workspace-overview", workspace_slug=self.workspace.slug)
        request.session.pop("workspace", None)
        messages.success(request, f"You left “{self.workspace.name}”.")
        return redirect("home")


class AdminConsoleView(WorkspaceViewMixin, TemplateView):
    required_role = Role.ADMIN
    template_name = "workspaces/console/index.html"


class SettingsView(WorkspaceViewMixin, FormView):
    required_role = Role.ADMIN
    template_name = "workspaces/console/settings.html"
    form_class = WorkspaceRenameForm

    def get_initial(self):
        return {"name": self.workspace.name}

    def form_valid(self, form):
        try:
            services.workspace_rename(workspace=self.workspace, name=form.cleaned_data["name"], actor=self.actor)
        except ServiceError as error:
            add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, "Workspace renamed.")
        return redirect("workspace-settings", workspace_slug=self.workspace.slug)


class MembersView(WorkspaceViewMixin, TemplateView):
    required_role = Role.ADMIN
    template_name = "workspaces/console/members.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("invite_form", InvitationForm())
        members = list(selectors.members_list(workspace=self.workspace))
        only_admin = [m for m in members if m.is_admin]
        context["members"] = members
        # The only admin can be neither demoted nor removed: their row says why instead of offering it.
        context["sole_admin_id"] = only_admin[0].id if len(only_admin) == 1 else None
        context["invitations"] = selectors.invitations_pending(workspace=self.workspace)
        context["roles"] = Role.choices
        context["invitation_days"] = settings.INVITATION_LIFETIME_DAYS
        return context

    def post(self, request):
        form = InvitationForm(request.POST)
        if form.is_valid():
            try:
                invitation, _ = services.invitation_create(
                    workspace=self.workspace, actor=self.actor, **form.cleaned_data
                )
            except ServiceError as error:
                add_service_error(form, error)
            else:
                messages.success(request, f"Invitation sent to {invitation.email}.")
                return redirect("workspace-members", workspace_slug=self.workspace.slug)
        return self.render_to_response(self.get_context_data(invite_form=form))


class MemberRoleView(WorkspaceViewMixin, View):
    required_role = Role.ADMIN

    def post(self, request, membership_id):
        membership = selectors.member_get(workspace=self.workspace, membership_id=membership_id)
        if membership is None:
            return _not_found(request, "That member no longer exists.", "workspace-members", self.workspace)
        form = RoleForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a valid role.")
        else:
            try:
                services.membership_change_role(
                    workspace=self.workspace, membership=membership, role=form.cleaned_data["role"], actor=self.actor
                )
                messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
            except ServiceError as error:
                messages.error(request, error.message)
        return redirect("workspace-members", workspace_slug=self.workspace.slug)


class MemberRemoveView(WorkspaceViewMixin, View):
    required_role = Role.ADMIN

    def post(self, request, membership_id):
        membership = selectors.member_get(workspace=self.workspace, membership_id=membership_id)
        if membership is None:
            return _not_found(request, "That member no longer exists.", "workspace-members", self.workspace)
        try:
            services.membership_remove(workspace=self.workspace, membership=membership, actor=self.actor)
            messages.success(request, f"{membership.user.email} was removed from the workspace.")
        except ServiceError as error:
            messages.error(request, error.message)
        return redirect("workspace-members", workspace_slug=self.workspace.slug)


class InvitationActionView(WorkspaceViewMixin, View):
    """An admin's action on one pending invitation, from the members page and back to it."""

    required_role = Role.ADMIN

    def act(self, invitation) -> str:
        """Carry the action out (a service call); the message that says it was done."""
        raise NotImplementedError

    def post(self, request, invitation_id):
        invitation = selectors.invitations_list(workspace=self.workspace).filter(id=invitation_id).first()
        if invitation is None:
            return _not_found(request, "That invitation no longer exists.", "workspace-members", self.workspace)
        try:
            messages.success(request, self.act(invitation))
        except ServiceError as error:
            messages.error(request, error.message)
        return redirect("workspace-members", workspace_slug=self.workspace.slug)


class InvitationRevokeView(InvitationActionView):
    def act(self, invitation) -> str:
        services.invitation_revoke(workspace=self.workspace, invitation=invitation, actor=self.actor)
        return f"Invitation for {invitation.email} withdrawn."


class InvitationResendView(InvitationActionView):
    def act(self, invitation) -> str:
        services.invitation_resend(workspace=self.workspace, invitation=invitation, actor=self.actor)
        return f"Invitation sent again to {invitation.email}, with a new link; the earlier link no longer works."


NEW_KEY_SESSION = "new_api_key"
NEW_KEY_SHOWN_FOR = timedelta(minutes=10)


class ApiKeysView(WorkspaceViewMixin, TemplateView):
    required_role = Role.ADMIN
    template_name = "workspaces/console/api_keys.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", ApiKeyForm())
        context["api_keys"] = selectors.api_keys_list(workspace=self.workspace)
        return context

    def get(self, request):
        response = self.render_to_response(self.get_context_data(**self._new_key()))
        response["Cache-Control"] = "no-store"  # the page may show a new key
        return response

    def post(self, request):
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                key, raw = services.api_key_create(workspace=self.workspace, actor=self.actor, **form.cleaned_data)
            except ServiceError as error:
                add_service_error(form, error)
            else:
                # Post/Redirect/Get: the key waits (encrypted) in the session for the next page, which
                # shows it once; reloading that page creates nothing and shows nothing.
                request.session[NEW_KEY_SESSION] = {
                    "id": str(key.id),
                    "secret": encrypt(raw),
                    "at": timezone.now().isoformat(),
                    "workspace": str(self.workspace.id),
                }
                return redirect("workspace-api-keys", workspace_slug=self.workspace.slug)
        response = self.render_to_response(self.get_context_data(form=form))
        response["Cache-Control"] = "no-store"
        return response

    def _new_key(self) -> dict:
        """The key created just before this page, once: taken out of the session as it is shown."""
        stash = self.request.session.pop(NEW_KEY_SESSION, None)
        if not stash or stash.get("workspace") != str(self.workspace.id):
            return {}
        if timezone.now() - datetime.fromisoformat(stash["at"]) > NEW_KEY_SHOWN_FOR:
            return {}
        key = selectors.api_keys_list(workspace=self.workspace).filter(id=stash["id"], revoked_at__isnull=True).first()
        if key is None:
            return {}
        return {"new_key": key, "new_key_raw": decrypt(stash["secret"])}


class ApiKeyRevokeView(WorkspaceViewMixin, View):
    required_role = Role.ADMIN

    def post(self, request, key_id):
        key = selectors.api_keys_list(workspace=self.workspace).filter(id=key_id).first()
        if key is None:
            return _not_found(request, "That key no longer exists.", "workspace-api-keys", self.workspace)
        try:
            services.api_key_revoke(workspace=self.workspace, api_key=key, actor=self.actor)
            messages.success(request, f"Key “{key.name}” revoked; requests with it are now refused.")
        except ServiceError as error:
            messages.error(request, error.message)
        return redirect("workspace-api-keys", workspace_slug=self.workspace.slug)


class AuditLogView(WorkspaceViewMixin, TemplateView):
    required_role = Role.ADMIN
    template_name = "workspaces/console/audit.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        events = selectors.audit_events_list(workspace=self.workspace)
        page = Paginator(events, 50).get_page(self.request.GET.get("page"))
        context["page"] = page
        context["rows"] = [audit_row(event) for event in page]
        return context


class InvitationView(View):
    """The link in the invitation e-mail: sign up or log in, then accept."""

    template_name = "workspaces/invitation.html"

    def get(self, request, token):
        invitation = selectors.invitation_by_token(token=token)
        user = request.user if request.user.is_authenticated else None
        problem = services.invitation_problem(invitation, user)
        if invitation is not None and user is None and problem is None:
            # Whoever opened the e-mailed link controls that address: sign-up
            # with it needs no second verification e-mail.
            get_adapter(request).stash_verified_email(request, invitation.email)
        return render(
            request,
            self.template_name,
            {
                "invitation": invitation,
                "problem": problem,
                "token": token,
                "next": reverse("invitation", kwargs={"token": token}),
            },
            status=200 if problem is None else 410 if invitation else 404,
        )

    def post(self, request, token):
        if not request.user.is_authenticated:
            return redirect(f"{reverse('account_login')}?next={request.path}")
        try:
            membership = services.invitation_accept(token=token, user=request.user, actor=Actor.from_request(request))
        except ServiceError as error:
            messages.error(request, error.message)
            return redirect("invitation", token=token)
        messages.success(request, f"Welcome to “{membership.workspace.name}”.")
        request.session["workspace"] = membership.workspace.slug
        return redirect("workspace-overview", workspace_slug=membership.workspace.slug)


def _not_found(request, message, url_name, workspace):
    messages.error(request, message)
    return redirect(url_name, workspace_slug=workspace.slug)
