"""Browser pages (the Admin console's Webhooks, a connection's Exact Online webhooks)
and Exact Online's webhook receiver."""

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.utils.functional import cached_property
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from common.errors import ServiceError
from common.forms import add_service_error
from connections.selectors import connection_get
from workspaces.models import Role
from workspaces.tenancy import WorkspaceViewMixin

from . import exact_subscriptions, selectors, services
from .exact_events import Receipt, exact_webhook_receive
from .forms import ExactTopicsForm, WebhookEndpointEditForm, WebhookEndpointForm
from .models import EventType

MAX_EXACT_BODY = 64 * 1024
DELIVERIES_SHOWN = 50


# --- Exact Online's calls ----------------------------------------------------------------------------


@csrf_exempt
@require_POST
def exact_online_webhook(request, oauth_client_id):
    """``{PUBLIC_BASE_URL}/webhooks/exact-online/<oauth client id>/``: validation calls and events."""
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_EXACT_BODY:
        return _answer(413, "too_large", "The body is too large for an Exact Online event.")
    receipt = exact_webhook_receive(oauth_client_id=oauth_client_id, body=request.body)
    if receipt == Receipt.BAD_SIGNATURE:
        return _answer(401, "bad_signature", "The HashCode is missing or does not match the content.")
    if receipt == Receipt.MALFORMED:
        return _answer(400, "invalid", "The body is not an Exact Online event.")
    if receipt == Receipt.UNKNOWN_CLIENT:
        return _answer(404, "not_found", "No Exact Online client here.")
    return JsonResponse({"status": str(receipt)}, status=200)


def _answer(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


# --- Admin console: webhook endpoints ---------------------------------------------------------------


class EndpointAdminMixin(WorkspaceViewMixin):
    required_role = Role.ADMIN

    @cached_property
    def endpoint(self):
        endpoint = selectors.webhook_endpoint_get(workspace=self.workspace, endpoint_id=self.kwargs["endpoint_id"])
        if endpoint is None:
            raise Http404("No such webhook endpoint.")
        return endpoint

    def back(self):
        return redirect("webhook-endpoint-detail", workspace_slug=self.workspace.slug, endpoint_id=self.endpoint.id)

    def shown_once(self, context: dict):
        # Rendered, not redirected: the secret exists only in this response, which no cache may keep.
        response = self.render_to_response(context)
        response["Cache-Control"] = "no-store"
        return response


class EndpointListView(EndpointAdminMixin, TemplateView):
    template_name = "integrations/endpoints.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", WebhookEndpointForm())
        context["endpoints"] = selectors.webhook_endpoints_list(workspace=self.workspace)
        return context

    def post(self, request):
        form = WebhookEndpointForm(request.POST)
        if form.is_valid():
            try:
                endpoint, secret = services.webhook_endpoint_create(
                    workspace=self.workspace, actor=self.actor, **form.cleaned_data
                )
            except ServiceError as error:
                add_service_error(form, error)
            else:
                context = self.get_context_data(new_endpoint=endpoint, new_secret=secret, form=WebhookEndpointForm())
                return self.shown_once(context)
        return self.render_to_response(self.get_context_data(form=form))


class EndpointDetailView(EndpointAdminMixin, TemplateView):
    template_name = "integrations/endpoint_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        endpoint = self.endpoint
        context.setdefault(
            "form",
            WebhookEndpointEditForm(
                initial={
                    "url": endpoint.url,
                    "description": endpoint.description,
                    "event_types": endpoint.event_types,
                    "enabled": endpoint.enabled,
                }
            ),
        )
        context["endpoint"] = endpoint
        context["deliveries"] = selectors.webhook_deliveries_list(workspace=self.workspace, endpoint=endpoint)[
            :DELIVERIES_SHOWN
        ]
        context["event_type_labels"] = dict(EventType.choices)
        return context

    def post(self, request, endpoint_id):
        form = WebhookEndpointEditForm(request.POST)
        if form.is_valid():
            try:
                services.webhook_endpoint_update(
                    workspace=self.workspace, endpoint=self.endpoint, actor=self.actor, **form.cleaned_data
                )
            except ServiceError as error:
                add_service_error(form, error)
            else:
                messages.success(request, "Webhook endpoint saved.")
                return self.back()
        return self.render_to_response(self.get_context_data(form=form))


class EndpointRotateSecretView(EndpointDetailView):
    def get(self, request, endpoint_id):
        return self.back()

    def post(self, request, endpoint_id):
        secret = services.webhook_endpoint_rotate_secret(
            workspace=self.workspace, endpoint=self.endpoint, actor=self.actor
        )
        return self.shown_once(self.get_context_data(new_secret=secret))


class EndpointDeleteView(EndpointAdminMixin, View):
    def post(self, request, endpoint_id):
        services.webhook_endpoint_delete(workspace=self.workspace, endpoint=self.endpoint, actor=self.actor)
        messages.success(request, f"Webhook endpoint {self.endpoint.url} deleted.")
        return redirect("webhook-endpoint-list", workspace_slug=self.workspace.slug)


class DeliveryResendView(EndpointAdminMixin, View):
    def post(self, request, endpoint_id, delivery_id):
        found = selectors.webhook_delivery_get(
            workspace=self.workspace, endpoint=self.endpoint, delivery_id=delivery_id
        )
        if found is None:
            raise Http404("No such delivery.")
        try:
            services.webhook_delivery_resend(workspace=self.workspace, delivery_obj=found, actor=self.actor)
            messages.success(request, "Delivery queued to be sent again.")
        except ServiceError as error:
            messages.error(request, error.message)
        return self.back()


# --- A connection's Exact Online webhooks ------------------------------------------------------------


class ConnectionExactWebhooksView(WorkspaceViewMixin, TemplateView):
    template_name = "integrations/exact_webhooks.html"
    required_role = Role.ADMIN

    @cached_property
    def connection(self):
        connection = connection_get(
            workspace=self.workspace, membership=self.membership, connection_id=self.kwargs["connection_id"]
        )
        if connection is None or connection.oauth_client.provider != exact_subscriptions.EXACT_ONLINE:
            raise Http404("No such Exact Online connection.")
        return connection

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        subscriptions = list(selectors.exact_subscriptions_of(connection=self.connection))
        chosen = [s.topic for s in subscriptions if s.selected]
        context.setdefault(
            "form",
            ExactTopicsForm(
                initial={
                    "topics": [t for t in chosen if t in exact_subscriptions.KNOWN_TOPICS],
                    "other_topics": ", ".join(t for t in chosen if t not in exact_subscriptions.KNOWN_TOPICS),
                }
            ),
        )
        context.update(
            connection=self.connection,
            subscriptions=subscriptions,
            callback_url=exact_subscriptions.callback_url(self.connection.oauth_client),
            callback_is_https=exact_subscriptions.callback_is_https(),
            has_failed=any(s.state == "failed" for s in subscriptions),
        )
        return context

    def post(self, request, connection_id):
        form = ExactTopicsForm(request.POST)
        if form.is_valid():
            try:
                exact_subscriptions.exact_topics_set(
                    workspace=self.workspace, connection=self.connection, topics=form.chosen(), actor=self.actor
                )
            except ServiceError as error:
                add_service_error(form, error)
            else:
                messages.success(request, "Webhook topics saved; Tokenkeeper is updating the subscriptions at Exact.")
                return redirect(
                    "connection-exact-webhooks", workspace_slug=self.workspace.slug, connection_id=self.connection.id
                )
        return self.render_to_response(self.get_context_data(form=form))


class ConnectionExactWebhooksRetryView(ConnectionExactWebhooksView):
    def get(self, request, connection_id):
        return redirect("connection-exact-webhooks", workspace_slug=self.workspace.slug, connection_id=connection_id)

    def post(self, request, connection_id):
        count = exact_subscriptions.exact_subscriptions_retry(
            workspace=self.workspace, connection=self.connection, actor=self.actor
        )
        messages.success(request, f"Trying {count} subscription{'s' if count != 1 else ''} again.")
        return redirect("connection-exact-webhooks", workspace_slug=self.workspace.slug, connection_id=connection_id)
