from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import FormView, TemplateView
from django_htmx.http import HttpResponseClientRefresh

from common.errors import ServiceError
from common.forms import add_service_error
from common.http import client_ip
from workspaces.models import Role
from workspaces.selectors import membership_for
from workspaces.tenancy import WorkspaceViewMixin

from . import flow, ratebudget, selectors, services
from .forms import ConnectionForm, RenameForm
from .models import EventKind, Status
from .overview import workspace_overview
from .refresh import Outcome
from .timeline import connection_timeline

# Healthy first, then what needs a look, then what is not in use.
STATUS_ORDER = [Status.ACTIVE, Status.REFRESH_FAILING, Status.NEEDS_REAUTH, Status.PENDING, Status.REVOKED]
STATUS_FILTERS = [("", "All"), *((value, Status(value).label) for value in STATUS_ORDER)]


def token_url(connection) -> str:
    """The token endpoint of a connection, as an integration calls it."""
    path = reverse("connection-token", kwargs={"workspace_slug": connection.workspace.slug, "pk": connection.pk})
    return f"{settings.PUBLIC_BASE_URL}{path}"


class LiveMixin:
    """Pages whose parts poll with htmx (``?partial=…``): a poll that finds the
    session gone reloads the page (which then asks to log in) instead of
    pasting the login form into a table."""

    def handle_no_permission(self):
        if getattr(self.request, "htmx", False):
            return HttpResponseClientRefresh()
        return super().handle_no_permission()

    @property
    def partial(self) -> str:
        return self.request.GET.get("partial", "") if self.request.htmx else ""


class ConnectionMixin(LiveMixin, WorkspaceViewMixin):
    def get_connection(self):
        connection = selectors.connection_get(
            workspace=self.workspace, membership=self.membership, connection_id=self.kwargs["connection_id"]
        )
        if connection is None:
            raise Http404("No such connection.")
        return connection

    def back_to(self, connection):
        return redirect("connection-detail", workspace_slug=self.workspace.slug, connection_id=connection.id)


class OverviewView(WorkspaceViewMixin, TemplateView):
    """The workspace's dashboard: what needs attention, what is coming, how refreshing goes."""

    template_name = "workspaces/overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(workspace_overview(workspace=self.workspace, membership=self.membership))
        labels = dict(Status.choices)
        context["status_filters"] = [(value, labels[value], context["counts"][value]) for value in STATUS_ORDER]
        first = context["first_connection"]
        context["token_curl_url"] = token_url(first) if first else ""
        return context


class ConnectionListView(ConnectionMixin, TemplateView):
    template_name = "connections/list.html"

    def get_template_names(self):
        return ["connections/_rows.html"] if self.partial == "rows" else [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        status = self.request.GET.get("status", "")
        status = status if status in Status.values else ""
        visible = selectors.connections_visible(workspace=self.workspace, membership=self.membership)
        counts = selectors.status_counts(workspace=self.workspace, membership=self.membership)
        context.update(
            connections=visible.filter(status=status) if status else visible,
            status=status,
            filters=[
                (value, label, counts[value] if value else sum(counts.values())) for value, label in STATUS_FILTERS
            ],
        )
        return context


class ConnectionCreateView(ConnectionMixin, FormView):
    template_name = "connections/create.html"

    def get_form(self, form_class=None):
        return ConnectionForm(**self.get_form_kwargs(), workspace=self.workspace)

    def get_initial(self):
        return {"oauth_client": self.request.GET.get("client")}

    def form_valid(self, form):
        try:
            connection = services.connection_create(
                workspace=self.workspace, owner=self.request.user, actor=self.actor, **form.cleaned_data
            )
        except ServiceError as error:
            add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(
            self.request, f"Connection “{connection.name}” created. Click Connect to authorize it at the provider."
        )
        return self.back_to(connection)


class ConnectionDetailView(ConnectionMixin, TemplateView):
    template_name = "connections/detail.html"

    def get_template_names(self):
        return ["connections/_live.html"] if self.partial == "live" else [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        connection = self.get_connection()
        revoked = None
        if connection.status == Status.REVOKED:
            revoked = selectors.connection_last_event(connection=connection, kind=EventKind.REVOKED)
        context.update(
            connection=connection,
            events=selectors.connection_events(connection=connection, limit=50),
            timeline=connection_timeline(connection),
            disconnected_at=revoked.created_at if revoked else None,
            rename_form=RenameForm(initial={"name": connection.name}),
            token_curl_url=token_url(connection),
            rate_budget=_rate_budget_for_page(connection),
            can_refresh=self.membership.role == Role.ADMIN
            and connection.status in (Status.ACTIVE, Status.REFRESH_FAILING),
        )
        return context


def _rate_budget_for_page(connection) -> dict | None:
    budget = ratebudget.connection_budget(connection)
    if budget is None:
        return None
    limits = connection.oauth_client.provider_spec.api_rate_limits

    def as_time(ms: int | None) -> datetime | None:
        return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None

    return {
        **budget,
        "per_minute": limits.per_minute,
        "per_day": limits.per_day,
        "minutely_reset_at": as_time(budget["minutely_reset"]),
        "daily_reset_at": as_time(budget["daily_reset"]),
    }


class ConnectView(ConnectionMixin, View):
    """Connect or Reconnect: off to the provider's consent page."""

    def post(self, request, connection_id):
        connection = self.get_connection()
        return redirect(flow.flow_start(connection=connection, session=request.session, started_by=request.user))


class RefreshNowView(ConnectionMixin, View):
    """An admin's "Refresh now": at once, or when the provider's window opens (Exact Online)."""

    required_role = Role.ADMIN

    def post(self, request, connection_id):
        connection = self.get_connection()
        try:
            result = services.connection_refresh_now(workspace=self.workspace, connection=connection, actor=self.actor)
        except ServiceError as error:
            messages.error(request, error.message)
            return self.back_to(connection)
        level, text = _refresh_message(result)
        level(request, text)
        return self.back_to(connection)


def _refresh_message(result):
    if result.outcome == Outcome.REFRESHED:
        expires = result.connection.access_token_expires_at
        return messages.success, f"Refreshed: the new access token is valid until {expires:%H:%M:%S} UTC."
    if result.outcome == Outcome.SCHEDULED:
        return messages.info, f"Refresh scheduled. {result.message}"
    if result.outcome == Outcome.NEEDS_REAUTH:
        return messages.error, f"The provider refused the refresh: {result.message}"
    if result.outcome == Outcome.FAILED:
        retry = f" Tokenkeeper tries again at {result.retry_at:%H:%M:%S} UTC." if result.retry_at else ""
        return messages.error, f"The refresh failed: {result.message}{retry}"
    return messages.info, f"Not refreshed: {result.message}"


class DisconnectView(ConnectionMixin, View):
    def post(self, request, connection_id):
        connection = services.connection_disconnect(
            workspace=self.workspace, connection=self.get_connection(), actor=self.actor
        )
        messages.success(request, f"“{connection.name}” disconnected: its tokens were deleted.")
        return self.back_to(connection)


class RenameView(ConnectionMixin, View):
    def post(self, request, connection_id):
        connection = self.get_connection()
        form = RenameForm(request.POST)
        try:
            if not form.is_valid():
                raise ServiceError("Enter a name of at most 100 characters.", field="name")
            services.connection_rename(
                workspace=self.workspace, connection=connection, actor=self.actor, name=form.cleaned_data["name"]
            )
            messages.success(request, "Connection renamed.")
        except ServiceError as error:
            messages.error(request, error.message)
        return self.back_to(connection)


class DeleteView(ConnectionMixin, View):
    def post(self, request, connection_id):
        connection = self.get_connection()
        services.connection_delete(workspace=self.workspace, connection=connection, actor=self.actor)
        messages.success(request, f"Connection “{connection.name}” deleted.")
        return redirect("connection-list", workspace_slug=self.workspace.slug)


def _can_view(request, connection) -> bool:
    membership = membership_for(user=request.user, workspace_slug=connection.workspace.slug)
    if membership is None:
        return False
    return membership.is_admin or connection.owner_id == request.user.id


def _result(request, connection, *, ok: bool, message: str):
    if connection is not None and request.user.is_authenticated and _can_view(request, connection):
        # A failure the flow wrote on the connection shows there as its last error: not twice.
        if ok or connection.last_error != message:
            (messages.success if ok else messages.error)(request, message)
        return redirect("connection-detail", workspace_slug=connection.workspace.slug, connection_id=connection.id)
    # Post/Redirect/Get: reloading the result page must not replay the callback.
    request.session["oauth_flow_result"] = {"ok": ok, "message": message}
    return redirect("oauth-result")


def oauth_result(request):
    """Where a browser without access to the connection (an end user of a connect link) lands."""
    result = request.session.get("oauth_flow_result")
    if result is None:
        result = {"ok": False, "message": "There is no authorization result to show in this browser."}
    return render(request, "connections/flow_result.html", result, status=200 if result["ok"] else 400)


def oauth_callback(request):
    """``{PUBLIC_BASE_URL}/oauth2/callback``: the redirect URI of every OAuth client."""
    try:
        result = flow.flow_complete(session=request.session, params=request.GET, ip=client_ip(request))
    except flow.FlowError as error:
        return _result(request, error.connection, ok=False, message=error.message)
    connection = result.connection
    account = connection.account_name or connection.account_email
    verb = "reconnected" if result.reconnected else "connected"
    message = f"“{connection.name}” is {verb}{f' as {account}' if account else ''} and ready to use."
    if result.replaced_duplicate:
        provider = connection.oauth_client.provider_spec.name
        message = (
            f"{provider} keeps one authorization per app and account, and {account or 'this account'} was already "
            f"connected here as “{connection.name}”: that connection is reconnected with the new authorization, "
            f"and the new connection “{result.replaced_duplicate}” was removed."
        )
    return _result(request, connection, ok=True, message=message)


def connect_link(request, token):
    """An API-started flow: bind it to this browser and go to the provider."""
    try:
        url = flow.connect_link_redeem(token=token, session=request.session)
    except flow.FlowError as error:
        return render(request, "connections/flow_result.html", {"ok": False, "message": error.message}, status=400)
    return redirect(url)
